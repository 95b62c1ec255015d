"""Configuration: built-in MeshNet variants, overridden or extended by ``meshrelease.toml``.

A config file is found at ``--config PATH``, else ``$MESHRELEASE_CONFIG``, else ``./meshrelease.toml``.
Relative paths inside it resolve against the file's folder.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ConfigError, InvalidTagError, UnknownVariantError
from .model.spec import ARC_DILATIONS, MeshNetSpec
from .verify.parity import DEFAULT_THRESHOLDS, Thresholds

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

INT8_METHODS = ("weight-only", "dynamic", "static")
INT8_CHOICES = INT8_METHODS + ("none",)  # "none": release no int8 file (for models int8 cannot serve)
RELEASE_KEYS = {"out", "crop", "random_size", "tfjs_crop", "tfjs_weights", "seed", "int8_method", "opset", "samples"}
TFJS_WEIGHTS = ("float32", "float16", "uint8")
DEFAULT_LABELS = ("background", "lesion")


@dataclass(frozen=True)
class VariantConfig:
    """One releasable model: its architecture and where its weights come from."""

    name: str
    spec: MeshNetSpec
    expected_params: int | None = None
    checkpoint: str | None = None
    sha256: str | None = None
    labels: tuple[str, ...] = DEFAULT_LABELS
    results: str | None = None  # results.json with test metrics, for the model card
    repo: str | None = None  # Hub repo id to publish to
    int8_method: str | None = None  # overrides [release] int8_method for this variant
    size_allowance: int = 0  # bytes added to each size budget: fixed graph overhead that matters for tiny models
    description: str = ""


@dataclass(frozen=True)
class Config:
    variants: dict[str, VariantConfig]
    samples: tuple[str, ...] = ()
    out: str = "releases"
    crop: int = 96
    random_size: int = 32
    tfjs_crop: int = 32
    tfjs_weights: str = "float32"
    seed: int = 0
    int8_method: str = "weight-only"
    opset: int = 17
    thresholds: dict[str, Thresholds] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    source: Path | None = None  # the file this came from

    def variant(self, name: str) -> VariantConfig:
        if name in self.variants:
            return self.variants[name]
        close = difflib.get_close_matches(name, list(self.variants), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        known = ", ".join(sorted(self.variants))
        raise UnknownVariantError(f"unknown variant {name!r}{hint} (known: {known})")


BUILTIN_VARIANTS: dict[str, VariantConfig] = {
    name: VariantConfig(name=name, spec=MeshNetSpec(channels=c), expected_params=p, description=f"MeshNet-{c}")
    for name, c, p in (("meshnet_5", 5, 5_682), ("meshnet_16", 16, 56_194), ("meshnet_26", 26, 147_474))
}

_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_tag(tag: str) -> str:
    """A tag usable as a git tag and a Hub revision: letters, digits, '.', '_', '-'; not a commit-like hex."""
    if not _TAG.match(tag) or ".." in tag or tag.endswith((".lock", ".")):
        raise InvalidTagError(
            f"invalid tag {tag!r}: use letters, digits, '.', '_' and '-' (start with a letter or digit, e.g. v1 or v1.2.0)"
        )
    if re.fullmatch(r"[0-9a-f]{40}", tag):
        raise InvalidTagError(f"invalid tag {tag!r}: a 40-hex tag would be mistaken for a commit id")
    return tag


def find_config(explicit: str | os.PathLike | None = None) -> Path | None:
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise ConfigError(f"config {p}: no such file")
        return p
    env = os.environ.get("MESHRELEASE_CONFIG")
    if env:
        return find_config(env)
    here = Path.cwd() / "meshrelease.toml"
    return here if here.is_file() else None


def load_config(explicit: str | os.PathLike | None = None) -> Config:
    path = find_config(explicit)
    if path is None:
        return Config(variants=dict(BUILTIN_VARIANTS))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path}: {exc}") from None
    return parse_config(data, path)


def _rel(base: Path, value: str | None) -> str | None:
    """Resolve a config path against the config's folder; URLs and absolute paths pass through."""
    if value is None or "://" in value or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


def parse_config(data: dict, path: Path | None = None) -> Config:
    base = path.parent if path else Path.cwd()
    where = f"config {path}" if path else "config"
    known_top = {"release", "parity", "variants"}
    if unknown := set(data) - known_top:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}")
    rel = dict(data.get("release", {}))
    if bad := set(rel) - RELEASE_KEYS:
        raise ConfigError(f"{where}: [release] unknown key(s) {', '.join(sorted(bad))}")

    def integer(key: str, default: int) -> int:
        value = rel.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: [release] {key} must be an integer, got {value!r}")
        return value
    variants = dict(BUILTIN_VARIANTS)
    for name, raw in data.get("variants", {}).items():
        try:
            variants[name] = _parse_variant(name, dict(raw), variants.get(name), base, where)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: [variants.{name}] bad value ({exc})") from None
    thresholds = dict(DEFAULT_THRESHOLDS)
    for precision, raw in data.get("parity", {}).items():
        bad = set(raw) - {"max_abs", "agreement", "dice", "min_foreground"}
        if bad:
            raise ConfigError(f"{where}: [parity.{precision}] unknown key(s) {', '.join(sorted(bad))}")
        try:
            thresholds[precision] = Thresholds(**{k: (int(v) if k == "min_foreground" else float(v))
                                                  for k, v in raw.items()})
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: [parity.{precision}] bad value ({exc})") from None
    int8 = rel.get("int8_method", "weight-only")
    if int8 not in INT8_CHOICES:
        raise ConfigError(f"{where}: int8_method {int8!r} is not one of {', '.join(INT8_CHOICES)}")
    tfjs_weights = rel.get("tfjs_weights", "float32")
    if tfjs_weights not in TFJS_WEIGHTS:
        raise ConfigError(f"{where}: tfjs_weights {tfjs_weights!r} is not one of {', '.join(TFJS_WEIGHTS)}")
    samples = tuple(_rel(base, s) for s in rel.get("samples", []))
    return Config(
        variants=variants,
        samples=samples,  # type: ignore[arg-type]
        out=_rel(base, rel["out"]) if "out" in rel else "releases",  # type: ignore[arg-type]
        crop=integer("crop", 96),
        random_size=integer("random_size", 32),
        tfjs_crop=integer("tfjs_crop", 32),
        tfjs_weights=tfjs_weights,
        seed=integer("seed", 0),
        int8_method=int8,
        opset=integer("opset", 17),
        thresholds=thresholds,
        source=path,
    )


def _parse_variant(name: str, raw: dict, builtin: VariantConfig | None, base: Path, where: str) -> VariantConfig:
    allowed = {"channels", "classes", "dilations", "in_channels", "params", "checkpoint", "sha256", "labels",
               "results", "repo", "description", "size_allowance", "int8_method"}
    if bad := set(raw) - allowed:
        raise ConfigError(f"{where}: [variants.{name}] unknown key(s) {', '.join(sorted(bad))}")
    spec = builtin.spec if builtin else None
    if spec is None and "channels" not in raw:
        raise ConfigError(f"{where}: [variants.{name}] needs 'channels' (it is not a built-in variant)")
    spec = replace(
        spec or MeshNetSpec(channels=int(raw["channels"])),
        channels=int(raw.get("channels", spec.channels if spec else raw["channels"])),
        classes=int(raw.get("classes", spec.classes if spec else 2)),
        in_channels=int(raw.get("in_channels", spec.in_channels if spec else 1)),
        dilations=tuple(int(d) for d in raw.get("dilations", spec.dilations if spec else ARC_DILATIONS)),
    )
    expected = raw.get("params", builtin.expected_params if builtin and builtin.spec == spec else None)
    labels = tuple(raw.get("labels", DEFAULT_LABELS if spec.classes == 2 else [f"class_{i}" for i in range(spec.classes)]))
    if len(labels) != spec.classes:
        raise ConfigError(f"{where}: [variants.{name}] has {len(labels)} labels for {spec.classes} classes")
    return VariantConfig(
        name=name,
        spec=spec,
        expected_params=int(expected) if expected is not None else None,
        checkpoint=_rel(base, raw.get("checkpoint", builtin.checkpoint if builtin else None)),
        sha256=raw.get("sha256"),
        labels=labels,
        results=_rel(base, raw.get("results")),
        repo=raw.get("repo"),
        size_allowance=int(raw.get("size_allowance", 0)),
        int8_method=_int8_choice(raw.get("int8_method"), f"{where}: [variants.{name}]"),
        description=str(raw.get("description", builtin.description if builtin else "")),
    )


def _int8_choice(value: str | None, where: str) -> str | None:
    if value is not None and value not in INT8_CHOICES:
        raise ConfigError(f"{where} int8_method {value!r} is not one of {', '.join(INT8_CHOICES)}")
    return value
