"""The release build: checkpoint -> model -> export -> verify -> document, one record flowing through.

``build_release`` writes into a staging folder beside the final one and renames it into place only
when every check passed, so a failed or interrupted build never leaves a half-written release.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .checkpoint.load import build_model, read_state_dict
from .checkpoint.pull import pull_checkpoint
from .config import INT8_CHOICES, TFJS_WEIGHTS, Config, load_config, validate_tag
from .document import card as card_doc
from .document import manifest as manifest_doc
from .document.provenance import collect as collect_provenance
from .document.github import check_tag as check_pushed_tag
from .errors import ConfigError, OutputError, VerificationError
from .export.onnx_artifacts import ONNX_FILES, export_onnx
from .export.tfjs_artifacts import export_tfjs, verify_tfjs
from .model.fold import fold_batchnorm
from .progress import Reporter
from .record import Release
from .verify.mri import center_crop, load_sample
from .verify.onnx_parity import ReferenceCache, onnx_parity, parity_inputs
from .verify.size import activation_estimate, size_checks


@dataclass
class BuildOptions:
    """What to build; ``None`` fields fall back to the config, then to built-in defaults."""

    variant: str
    tag: str
    checkpoint: str | None = None
    sha256: str | None = None
    out: str | os.PathLike | None = None
    samples: list[str] | None = None
    crop: int | None = None
    full: bool = False
    random_size: int | None = None
    tfjs_crop: int | None = None
    tfjs_weights: str | None = None
    seed: int | None = None
    int8_method: str | None = None
    opset: int | None = None
    config: Config | None = None
    config_path: str | None = None
    repo: str | None = None  # Hub repo the release is for (model card usage); default: the variant's
    previous_manifest: dict | None = None  # the repo's previous release, for the card's changelog
    results: str | None = None  # results.json of the checkpoint (default: the variant's, for its own checkpoint only)
    extra: dict = field(default_factory=dict)


def resolve(opts: BuildOptions) -> tuple[Config, dict]:
    """Validate options cheaply (before any heavy work) and merge them with the config."""
    cfg = opts.config or load_config(opts.config_path)
    variant = cfg.variant(opts.variant)
    validate_tag(opts.tag)
    check_pushed_tag(opts.tag)
    checkpoint = opts.checkpoint or variant.checkpoint
    if not checkpoint:
        raise ConfigError(f"no checkpoint for {variant.name}: pass --checkpoint or set it in meshrelease.toml")
    sha = opts.sha256 if opts.sha256 is not None else (variant.sha256 if not opts.checkpoint else None)
    results = card_doc.results_for(variant, opts.checkpoint, opts.results)
    int8 = opts.int8_method or variant.int8_method or cfg.int8_method
    if int8 not in INT8_CHOICES:
        raise ConfigError(f"int8 method {int8!r} is not one of {', '.join(INT8_CHOICES)}")
    crop = 256 if opts.full else _given(opts.crop, cfg.crop)
    random_size = _given(opts.random_size, cfg.random_size)
    tfjs_crop = _given(opts.tfjs_crop, cfg.tfjs_crop)
    tfjs_weights = opts.tfjs_weights or cfg.tfjs_weights
    if tfjs_weights not in TFJS_WEIGHTS:
        raise ConfigError(f"TF.js weights {tfjs_weights!r} is not one of {', '.join(TFJS_WEIGHTS)}")
    for name, value in (("crop", crop), ("random size", random_size), ("TF.js crop", tfjs_crop)):
        if not 4 <= value <= 256:
            raise ConfigError(f"{name} {value} must be between 4 and 256 voxels")
    resolved = {
        "variant": variant,
        "checkpoint": checkpoint,
        "sha256": sha,
        "results": results,
        "out": Path(opts.out or cfg.out),
        "samples": list(opts.samples if opts.samples is not None else cfg.samples),
        "crop": crop,
        "random_size": random_size,
        "tfjs_crop": tfjs_crop,
        "tfjs_weights": tfjs_weights,
        "seed": opts.seed if opts.seed is not None else cfg.seed,
        "int8_method": int8,
        "opset": opts.opset or cfg.opset,
        "thresholds": cfg.thresholds,
    }
    return cfg, resolved


def _given(value: int | None, default: int) -> int:
    """An option's value, or the config's when it was not given (0 is a given value, and invalid)."""
    return default if value is None else value


def prepare_output(out: Path, variant: str, tag: str) -> tuple[Path, Path]:
    """Create ``out/variant`` and a staging folder in it; fail early with one line if it is not writable."""
    parent = out / variant
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{tag}.partial-", dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot write release folder {parent}: {exc.strerror or exc}") from None
    return parent / tag, staging


def commit_output(staging: Path, final: Path) -> None:
    """Swap the finished staging folder into place (an older build of the same tag is replaced)."""
    os.chmod(staging, 0o755)  # mkdtemp creates 0700; a release folder is meant to be shared
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def timed(release: Release, reporter: Reporter, name: str) -> Iterator[None]:
    start = time.perf_counter()
    with reporter.stage(name):
        yield
    release.timings[name] = time.perf_counter() - start


def build_release(opts: BuildOptions, reporter: Reporter | None = None) -> Release:
    """Build, verify and document one release; returns the record of the committed folder.

    Raises a :class:`~meshrelease.errors.MeshreleaseError` subclass on any bad input or failed
    check; the release folder is then left exactly as it was.
    """
    reporter = reporter or Reporter()
    cfg, r = resolve(opts)
    samples = {Path(s).name: load_sample(s) for s in r["samples"]}  # fail on a bad sample before heavy work
    metrics = card_doc.read_metrics(r["results"])  # likewise a bad results.json
    created_parent = not (r["out"] / r["variant"].name).exists()
    final, staging = prepare_output(r["out"], r["variant"].name, opts.tag)
    release = Release(variant=r["variant"], tag=opts.tag, workdir=staging, metrics=metrics)
    release.settings = {
        "crop": r["crop"], "random_size": r["random_size"], "seed": r["seed"], "int8_method": r["int8_method"],
        "tfjs_crop": r["tfjs_crop"], "tfjs_weights": r["tfjs_weights"],
        "opset": r["opset"], "samples": list(samples), "thresholds": {k: t.to_dict() for k, t in r["thresholds"].items()},
    }
    try:
        with timed(release, reporter, "pull"):
            release.source = pull_checkpoint(r["checkpoint"], r["sha256"], progress=reporter.download)
        with timed(release, reporter, "load"):
            state = read_state_dict(release.source.path, release.source.uri)
            model = build_model(state, release.spec, release.variant.name, release.variant.expected_params)
            layers = fold_batchnorm(model)
        with timed(release, reporter, "export"):
            calibration = [center_crop(v, 48) for v in samples.values()] if r["int8_method"] == "static" else None
            export_onnx(release, layers, opset=r["opset"], int8_method=r["int8_method"], calibration=calibration)
            export_tfjs(release, layers, precision=r["tfjs_weights"])  # tfjs/: BrainChop folder (model.json, shards, colormap, entry)
        with timed(release, reporter, "verify"):
            inputs = parity_inputs(samples, r["crop"], r["random_size"], r["seed"])
            reference = ReferenceCache(model)
            for precision, rel in ONNX_FILES.items():
                if not (staging / rel).is_file():  # int8 method "none"
                    continue
                results = onnx_parity(staging / rel, artifact=rel, precision=precision, inputs=inputs,
                                      reference=reference, thresholds=r["thresholds"][precision])
                release.parity += results
                for res in results:
                    reporter.note(f"{rel} on {res.input}: max |Δ| {res.max_abs:.2e}, agreement {res.agreement:.4%}, "
                                  f"Dice {res.dice:.4f} {'ok' if res.passed else 'FAIL'}")
            release.sizes = size_checks(release)
            tfjs_results = verify_tfjs(release, model, r["samples"], note=reporter.note)  # real tfjs, LIA input
            release.parity += tfjs_results
            for res in tfjs_results:
                reporter.note(f"{res.artifact} in {res.runtime} on {res.input}: max |Δ| {res.max_abs:.2e}, "
                              f"agreement {res.agreement:.4%} {'ok' if res.passed else 'FAIL'}")
            release.estimates["activation_memory"] = activation_estimate(release)
            if not release.passed:  # fail here, so the verify stage is the one marked as failed
                raise VerificationError(_failure_line(release))
        with timed(release, reporter, "document"):
            release.provenance = collect_provenance(release.source.to_dict())
            manifest_doc.write_report(release)
            release.add_file("report.md", "markdown", document=True)
            card_doc.write_card(release, repo_id=card_doc.default_repo_id(release.variant, opts.repo),
                                previous=opts.previous_manifest)
            manifest_doc.write_manifest(release)
        commit_output(staging, final)
        release.out_dir = final
        release.workdir = final
        return release
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if created_parent:
            with contextlib.suppress(OSError):  # only if still empty: other tags may live there
                staging.parent.rmdir()
        if isinstance(exc, VerificationError):
            exc.release = release  # type: ignore[attr-defined]
        raise


def _failure_line(release: Release) -> str:
    failures = release.failures
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return f"verification failed: {failures[0]}{more}; nothing was written"

