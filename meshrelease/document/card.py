"""The model card: ``README.md`` at the release root, rendered from ``model_cards/`` through huggingface_hub.

The card is a function of the release manifest (plus the repo id and, for the changelog, the previous
release's manifest), so the build, ``meshrelease card --from DIR`` and a publish that learns the previous
tag late all render the same text from the same inputs. It carries no build time: two builds of the
same inputs give byte-identical cards, so re-publishing a tag is recognised as the same release.

The YAML header is made by :class:`huggingface_hub.ModelCardData` (license, tags, pipeline tag,
datasets, ``model-index`` with the test metrics of the checkpoint's ``results.json``), so it is what
the Hub parses. Rendering needs no network.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CardError
from ..record import MANIFEST_NAME, Release

CARD_NAME = "README.md"
TEMPLATES_ENV = "MESHRELEASE_MODEL_CARDS"  # folder of card templates, overriding the checkout's model_cards/
DEFAULT_TEMPLATE = "meshnet.md.j2"
USAGE_MARKER = "<!-- meshrelease:usage-python -->"  # the Python usage block follows it (tests run that block)
DEFAULT_HUB_URL = "https://huggingface.co"

LICENSE = "apache-2.0"  # arc-meshchop, which trained these weights, is Apache-2.0
LIBRARY_NAME = "onnx"
PIPELINE_TAG = "image-segmentation"
BASE_TAGS = ("meshnet", "onnx", "medical-imaging", "segmentation", "3d", "mri", "neuroimaging")
TFJS_TAGS = ("tfjs", "brainchop")
ARC_TAGS = ("stroke", "lesion-segmentation")

DATASET_ID = "hugging-science/arc-aphasia-bids"
DATASET_NAME = "Aphasia Recovery Cohort (ARC)"
TASK_NAME = "Stroke lesion segmentation"
MODALITY = "T2-weighted"  # arc-meshchop trains on the ARC T2w (SPACE) scans


@dataclass(frozen=True)
class MetricSpec:
    key: str  # suffix in results.json: test_<key>, per_subject_<key>
    name: str  # shown in the card
    hub_type: str  # model-index metric type
    better: str


METRICS = (
    MetricSpec("dice", "Dice", "dice", "higher"),
    MetricSpec("avd", "AVD", "avd", "lower"),
    MetricSpec("mcc", "MCC", "matthews_correlation", "higher"),
)


@dataclass(frozen=True)
class PaperReference:
    """One row of Table 1 of Fedorov et al. (arXiv:2503.05531): mean (SD) over the paper's runs on ARC."""

    model: str
    channels: int
    parameters: int
    values: dict[str, tuple[float, float]]


ARC_DILATION_LIST = [1, 2, 4, 8, 16, 16, 8, 4, 2]
PAPER_TABLE_1 = (
    PaperReference("MeshNet-26", 26, 147_474, {"dice": (0.876, 0.016), "avd": (0.245, 0.036), "mcc": (0.760, 0.030)}),
    PaperReference("MeshNet-16", 16, 56_194, {"dice": (0.873, 0.007), "avd": (0.249, 0.033), "mcc": (0.757, 0.013)}),
    PaperReference("MeshNet-5", 5, 5_682, {"dice": (0.848, 0.023), "avd": (0.280, 0.060), "mcc": (0.708, 0.042)}),
)


# ---- inputs -------------------------------------------------------------------------------------
def templates_dir() -> Path:
    """``$MESHRELEASE_MODEL_CARDS``, else the checkout's top-level ``model_cards/`` (editable install)."""
    env = os.environ.get(TEMPLATES_ENV)
    folder = Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "model_cards"
    if not folder.is_dir():
        where = f"${TEMPLATES_ENV}={env}" if env else f"{folder} (the checkout's model_cards/)"
        raise CardError(
            f"model card templates not found at {where}; install meshrelease from its checkout "
            f"(pip install -e .) or set {TEMPLATES_ENV} to a folder holding {DEFAULT_TEMPLATE}"
        )
    return folder


def template_path(template: str | os.PathLike | None = None) -> Path:
    """A template file: an explicit path, a name inside :func:`templates_dir`, or the default."""
    if template is not None and Path(template).is_file():
        return Path(template)
    name = str(template) if template is not None else DEFAULT_TEMPLATE
    path = templates_dir() / name
    if not path.is_file():
        raise CardError(f"model card template {name!r} not found in {path.parent}")
    return path


def results_for(variant: Any, checkpoint: str | None, explicit: str | None = None) -> str | None:
    """The results.json describing the checkpoint being released: ``explicit``, else the variant's own
    ``results`` when ``checkpoint`` is unset or the configured one (never another checkpoint's numbers)."""
    if explicit:
        return explicit
    configured = variant.checkpoint
    if not variant.results or not configured:
        return None
    if not checkpoint or checkpoint == configured:
        return variant.results
    if "://" not in checkpoint and "://" not in configured:
        if Path(checkpoint).expanduser().resolve() == Path(configured).expanduser().resolve():
            return variant.results
    return None


def read_metrics(path: str | os.PathLike | None) -> dict[str, Any] | None:
    """Test metrics from an arc-meshchop ``results.json``, as they go into the manifest; ``None`` without one.

    ``mean`` is the file's ``test_<metric>`` (the paper's statistic); median and SD are computed from
    the per-subject lists when the file has them.
    """
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise CardError(f"results {p}: no such file")
    raw = p.read_bytes()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CardError(f"results {p}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CardError(f"results {p}: expected a JSON object")
    out: dict[str, Any] = {
        "file": p.name,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "outer_fold": data.get("outer_fold"),
        "restart": data.get("restart"),
        "seed": data.get("seed"),
        "checkpoint_path": data.get("checkpoint_path"),
        "subjects": None,
        "values": {},
    }
    for m in METRICS:
        mean = data.get(f"test_{m.key}")
        if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean):
            raise CardError(f"results {p}: 'test_{m.key}' is missing or not a finite number")
        per = data.get(f"per_subject_{m.key}")
        per = [float(v) for v in per] if isinstance(per, list) and per else None
        if per is not None:
            out["subjects"] = len(per)
        out["values"][m.key] = {
            "mean": float(mean),
            "median": statistics.median(per) if per else None,
            "sd": statistics.stdev(per) if per and len(per) > 1 else None,
        }
    return out


def paper_reference(arch: dict[str, Any]) -> PaperReference | None:
    """The paper row for this exact architecture (channels, ARC dilations, 2 classes, 1 input channel)."""
    for ref in PAPER_TABLE_1:
        if (arch.get("channels") == ref.channels and list(arch.get("dilations", [])) == ARC_DILATION_LIST
                and arch.get("classes") == 2 and arch.get("in_channels", 1) == 1
                and arch.get("parameters") == ref.parameters):
            return ref
    return None


# ---- the YAML header ----------------------------------------------------------------------------
def display_name(manifest: dict[str, Any]) -> str:
    return f"MeshNet-{manifest['architecture']['channels']}"


def _tfjs_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in manifest.get("files", []) if str(f.get("format", "")).startswith("tfjs")
            or f.get("path", "").endswith("/model.json")]


def card_data(manifest: dict[str, Any], *, license: str = LICENSE) -> Any:
    """The :class:`~huggingface_hub.ModelCardData` of a release (model-index only when there are metrics)."""
    from huggingface_hub import EvalResult, ModelCardData

    metrics = manifest.get("metrics")
    tags = list(BASE_TAGS)
    if _tfjs_files(manifest):
        tags += list(TFJS_TAGS)
    if metrics:
        tags += list(ARC_TAGS)
    eval_results = None
    if metrics:
        args = {k: metrics[k] for k in ("outer_fold", "restart", "seed", "subjects") if metrics.get(k) is not None}
        eval_results = [
            EvalResult(
                task_type=PIPELINE_TAG, task_name=TASK_NAME, dataset_type=DATASET_ID, dataset_name=DATASET_NAME,
                dataset_split="test", metric_type=m.hub_type, metric_name=m.name,
                metric_value=metrics["values"][m.key]["mean"], metric_args=args or None,
            )
            for m in METRICS
        ]
    source = (manifest.get("provenance") or {}).get("source") or {}
    return ModelCardData(
        license=license,
        library_name=LIBRARY_NAME,
        pipeline_tag=PIPELINE_TAG,
        tags=tags,
        datasets=[DATASET_ID] if metrics else None,
        model_name=display_name(manifest),
        eval_results=eval_results,
        release_tag=manifest["tag"],
        source_checkpoint_sha256=source.get("sha256"),
    )


# ---- the body -----------------------------------------------------------------------------------
def _parity_summary(manifest: dict[str, Any]) -> dict[str, str]:
    by_artifact: dict[str, list[dict[str, Any]]] = {}
    for r in manifest.get("parity", []):
        by_artifact.setdefault(r["artifact"], []).append(r)
    out = {}
    for path, rows in by_artifact.items():
        worst = max(r["max_abs"] for r in rows)
        agree = min(r["agreement"] for r in rows)
        ok = all(r.get("passed", not r.get("failures")) for r in rows)
        runtimes = "/".join(sorted({r.get("runtime", "onnxruntime") for r in rows}))
        out[path] = (f"max \\|Δ\\| {worst:.2e}, agreement {agree:.4%} ({len(rows)} input{'s' if len(rows) != 1 else ''}, {runtimes}): "
                     f"{'pass' if ok else 'FAIL'}")
    return out


def _thresholds_line(settings: dict[str, Any]) -> str:
    parts = []
    for precision, t in (settings.get("thresholds") or {}).items():
        rule = []
        if "max_abs" in t:
            rule.append(f"max |Δ| ≤ {t['max_abs']:g}")
        if "agreement" in t:
            rule.append(f"agreement ≥ {t['agreement']:.2%}")
        if "dice" in t:
            rule.append(f"foreground Dice ≥ {t['dice']:g}")
        parts.append(f"{precision} {', '.join(rule)}")
    return "; ".join(parts) or "none recorded"


def _source_display(source: dict[str, Any]) -> str:
    uri = str(source.get("uri", "?"))
    if source.get("kind") == "local":  # a local path says nothing to a reader and leaks the build machine
        return f"`{Path(uri).name}`, a local file"
    return f"`{uri}`"


def _tfjs_context(manifest: dict[str, Any], folder: Path | None) -> dict[str, Any] | None:
    files = _tfjs_files(manifest)
    model = next((f for f in files if f["path"].endswith("model.json")), None)
    if model is None:
        return None
    tf_folder = model["path"].rsplit("/", 1)[0] if "/" in model["path"] else "."
    meta = dict(model.get("meta") or {})
    if folder is not None and (folder / model["path"]).is_file():
        doc = json.loads((folder / model["path"]).read_text(encoding="utf-8"))
        user = doc.get("userDefinedMetadata") or {}
        meta = {**(user.get("meshrelease") or user), **meta}  # the TF.js writer nests its keys under "meshrelease"
    orientation = meta.get("input_orientation") or "RAS"
    trained = meta.get("trained_orientation") or "RAS"
    prefix = f"{tf_folder}/"
    shards = [f["path"] for f in manifest.get("files", []) if f["path"].startswith(prefix) and f["path"].endswith(".bin")]
    return {"model_json": model["path"], "folder": tf_folder, "orientation": orientation,
            "reorientation": meta.get("kernel_reorientation") or f"{trained}->{orientation}", "shards": shards}


def _brainchop_context(manifest: dict[str, Any], folder: Path | None, tfjs: dict[str, Any] | None) -> dict[str, Any] | None:
    if tfjs is None or folder is None:
        return None
    entry = next((f["path"] for f in manifest.get("files", []) if f["path"].endswith("brainchop_model_entry.json")), None)
    if entry is None or not (folder / entry).is_file():
        return None
    doc = json.loads((folder / entry).read_text(encoding="utf-8"))
    colormap = next((f["path"].rsplit("/", 1)[-1] for f in manifest.get("files", [])
                     if f["path"].startswith(tfjs["folder"] + "/") and f["path"].endswith("colormap.json")), None)
    path = str(doc.get("path", ""))
    folder_name = path.split("/")[-2] if path.count("/") >= 1 else manifest["variant"]
    return {"entry_path": entry, "entry_json": json.dumps(doc, indent=2), "colormap": colormap, "folder_name": folder_name}


def changelog(previous: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any] | None:
    """What changed since the previous release's manifest: source, files (sizes), parity, metrics."""
    if not previous or previous.get("tag") in (None, current.get("tag")):
        return None
    lines: list[str] = []
    src = lambda m: ((m.get("provenance") or {}).get("source") or {}).get("sha256")  # noqa: E731
    if src(previous) != src(current):
        lines.append(f"Source checkpoint changed: sha256 `{src(previous)}` → `{src(current)}`.")
    else:
        lines.append("Same source checkpoint.")
    if previous.get("architecture") != current.get("architecture"):
        lines.append("Architecture changed: " + _arch_line(previous.get("architecture") or {}) + " → "
                     + _arch_line(current.get("architecture") or {}) + ".")
    skip = {CARD_NAME, MANIFEST_NAME}
    old = {f["path"]: f for f in previous.get("files", []) if f["path"] not in skip}
    new = {f["path"]: f for f in current.get("files", []) if f["path"] not in skip}
    for path in sorted(old.keys() | new.keys()):
        a, b = old.get(path), new.get(path)
        if a is None:
            lines.append(f"`{path}` added ({b['size']:,} bytes).")
        elif b is None:
            lines.append(f"`{path}` removed (was {a['size']:,} bytes).")
        elif a.get("sha256") == b.get("sha256"):
            lines.append(f"`{path}` unchanged ({b['size']:,} bytes, same sha256).")
        else:
            delta = b["size"] - a["size"]
            size = f"{a['size']:,} → {b['size']:,} bytes ({delta:+,})" if delta else f"same size ({b['size']:,} bytes)"
            lines.append(f"`{path}`: {size}, new sha256.")
    old_parity, new_parity = _worst_parity(previous), _worst_parity(current)
    for path in sorted(old_parity.keys() & new_parity.keys()):
        (om, oa), (nm, na) = old_parity[path], new_parity[path]
        if (om, oa) != (nm, na):
            lines.append(f"Parity of `{path}`: max |Δ| {om:.2e} → {nm:.2e}, agreement {oa:.4%} → {na:.4%}.")
    lines += _metrics_changes(previous.get("metrics"), current.get("metrics"))
    return {"previous_tag": previous["tag"], "lines": lines}


def _arch_line(arch: dict[str, Any]) -> str:
    return f"{arch.get('channels')} channels, {arch.get('parameters', 0):,} parameters"


def _worst_parity(manifest: dict[str, Any]) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for r in manifest.get("parity", []):
        m, a = out.get(r["artifact"], (0.0, 1.0))
        out[r["artifact"]] = (max(m, r["max_abs"]), min(a, r["agreement"]))
    return out


def _metrics_changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    if not old and not new:
        return ["No test metrics in either release."]
    if not old:
        return ["Test metrics added: " + _metric_values(new) + "."]
    if not new:
        return ["Test metrics removed (this release has no results.json)."]
    parts = []
    for m in METRICS:
        a, b = old["values"][m.key]["mean"], new["values"][m.key]["mean"]
        parts.append(f"{m.name} {a:.3f} → {b:.3f} ({b - a:+.3f})" if a != b else f"{m.name} {b:.3f} (unchanged)")
    return ["Test metrics: " + ", ".join(parts) + "."]


def _metric_values(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{m.name} {metrics['values'][m.key]['mean']:.3f}" for m in METRICS)


def card_context(
    manifest: dict[str, Any],
    *,
    repo_id: str,
    previous: dict[str, Any] | None = None,
    folder: Path | None = None,
    hub_url: str = DEFAULT_HUB_URL,
) -> dict[str, Any]:
    """Everything the template shows, computed here so the template stays presentation only."""
    arch = manifest["architecture"]
    files = [f for f in manifest.get("files", []) if f["path"] != CARD_NAME]
    parity = _parity_summary(manifest)
    artifacts = [{**f, "parity": parity.get(f["path"], "—")} for f in files]
    onnx = {f.get("precision"): f for f in files if f.get("format") == "onnx"}
    if "fp32" not in onnx:
        raise CardError(f"release {manifest.get('variant')} {manifest.get('tag')}: no fp32 ONNX file to document")
    settings = manifest.get("settings") or {}
    prov = manifest.get("provenance") or {}
    source = prov.get("source") or {}
    versions = dict(prov.get("versions") or {})
    gh = prov.get("github_actions") or {}
    metrics = manifest.get("metrics")
    paper = paper_reference(arch) if metrics else None
    tfjs = _tfjs_context(manifest, folder)
    est = (manifest.get("estimates") or {}).get("activation_memory") or {}
    act_bytes = est.get("bytes_per_activation_fp32") or arch["channels"] * 256**3 * 4
    inputs = sorted({r["input"] for r in manifest.get("parity", [])})
    context: dict[str, Any] = {
        "display_name": display_name(manifest),
        "task_title": "stroke lesion segmentation" if metrics else "3-D MRI segmentation",
        "variant": manifest["variant"],
        "tag": manifest["tag"],
        "repo_id": repo_id,
        "hub_url": hub_url.rstrip("/"),
        "description": manifest.get("description") or display_name(manifest),
        "arch": arch,
        "labels": list(manifest.get("labels") or []),
        "layers": len(arch["dilations"]) + 1,
        "receptive_field": 1 + sum(2 * d * (arch.get("kernel_size", 3) // 2) for d in arch["dilations"]),
        "activation_gib": f"{act_bytes / 2**30:.2f}",
        "activation_formula": est.get("formula") or f"{arch['channels']} channels x 256^3 voxels x 4 B",
        "dataset_name": DATASET_NAME if metrics else "its training data",
        "modality": MODALITY if metrics else "structural",
        "metrics": None,
        "paper": None,
        "paper_comparison": None,
        "artifacts": artifacts,
        "onnx_fp32": onnx["fp32"],
        "onnx_others": [onnx[p] for p in ("fp16", "int8") if p in onnx],
        "int8_method": settings.get("int8_method") if "int8" in onnx else None,
        "parity_inputs": ", ".join(inputs) if inputs else "no inputs",
        "parity_runtimes": ", ".join(sorted({r.get("runtime", "onnxruntime") for r in manifest.get("parity", [])})) or "no runtime",
        "thresholds": _thresholds_line(settings),
        "tfjs": tfjs,
        "brainchop": _brainchop_context(manifest, folder, tfjs),
        "source": {**source, "display": _source_display(source), "size": source.get("size", 0)},
        "versions": versions,
        "versions_line": ", ".join(f"{k} {v}" for k, v in versions.items() if k != "meshrelease") or "not recorded",
        "git_commit": prov.get("git_commit"),
        "ci_run": {"url": gh["run_url"], "label": f"{gh.get('workflow', 'GitHub Actions')} #{gh.get('run_id')}"}
        if gh.get("run_url") else None,
        "settings_line": (f"ONNX opset {settings.get('opset')}, int8 {settings.get('int8_method')}, parity on "
                          f"random {settings.get('random_size')}³ (seed {settings.get('seed')}) and real-MRI "
                          f"{settings.get('crop')}³ centre crops"),
        "changelog": changelog(previous, manifest),
    }
    if metrics:
        rows = []
        for m in METRICS:
            v = metrics["values"][m.key]
            rows.append({
                "name": m.name, "better": m.better, "mean": v["mean"],
                "median": v["median"] if v["median"] is not None else float("nan"),
                "sd": v["sd"] if v["sd"] is not None else float("nan"),
                "paper": f"{paper.values[m.key][0]:.3f} ({paper.values[m.key][1]:.3f})" if paper else None,
            })
        context["metrics"] = {**metrics, "rows": rows, "subjects": metrics.get("subjects") or "the"}
        if paper:
            context["paper"] = paper
            context["paper_comparison"] = _paper_comparison(metrics, paper)
    return context


def _paper_comparison(metrics: dict[str, Any], paper: PaperReference) -> str:
    """One honest sentence: does this checkpoint reach the paper's mean, per metric?"""
    behind = []
    for m in METRICS:
        ours, (target, _) = metrics["values"][m.key]["mean"], paper.values[m.key]
        worse = ours < target if m.better == "higher" else ours > target
        if worse:
            behind.append(f"{m.name} {ours:.3f} vs {target:.3f}")
    if not behind:
        return f"This checkpoint reaches the paper's {paper.model} means on all three metrics."
    return (f"This checkpoint does **not** reach the paper's {paper.model} means ({'; '.join(behind)}); "
            "treat the paper column as a target, not as this model's performance.")


# ---- rendering ----------------------------------------------------------------------------------
def render_card(
    manifest: dict[str, Any],
    *,
    repo_id: str,
    previous: dict[str, Any] | None = None,
    folder: Path | None = None,
    template: str | os.PathLike | None = None,
    hub_url: str = DEFAULT_HUB_URL,
    license: str = LICENSE,
) -> Any:
    """Render the :class:`~huggingface_hub.ModelCard` of a release described by ``manifest``."""
    from huggingface_hub import ModelCard

    path = template_path(template)
    context = card_context(manifest, repo_id=repo_id, previous=previous, folder=folder, hub_url=hub_url)
    _check_template_variables(path, context)
    # model_name is dropped from card_data.to_dict() when eval_results is set: pass everything explicitly.
    try:
        card = ModelCard.from_template(card_data(manifest, license=license), template_path=str(path), **context)
    except ValueError as exc:  # huggingface_hub's own checks of the metadata (model-index, YAML)
        raise CardError(f"model card of {manifest.get('variant')} {manifest.get('tag')}: {' '.join(str(exc).split())}") from None
    # Optional template sections leave runs of blank lines; Markdown gives them no meaning.
    card.content = re.sub(r"\n{3,}", "\n\n", card.content).rstrip() + "\n"
    return card


def _check_template_variables(path: Path, context: dict[str, Any]) -> None:
    """Fail on a template variable nobody provides (Jinja would render it as an empty string)."""
    import jinja2
    from jinja2 import meta

    try:
        ast = jinja2.Environment().parse(path.read_text(encoding="utf-8"))
    except jinja2.TemplateSyntaxError as exc:
        raise CardError(f"model card template {path}: line {exc.lineno}: {exc.message}") from None
    provided = set(context) | {"card_data"}
    missing = sorted(meta.find_undeclared_variables(ast) - provided - set(_card_data_keys()))
    if missing:
        raise CardError(f"model card template {path} uses undefined variable(s): {', '.join(missing)}")


def _card_data_keys() -> tuple[str, ...]:
    return ("license", "library_name", "pipeline_tag", "tags", "datasets", "model_name", "release_tag",
            "source_checkpoint_sha256", "model-index")


def default_repo_id(variant: Any, repo: str | None = None) -> str:
    """The repo a release's usage examples name: ``repo``, else the variant's, else publish's ``local/<variant>``."""
    from ..publish.endpoint import LOCAL_NAMESPACE

    return repo or variant.repo or f"{LOCAL_NAMESPACE}/{variant.name}"


def write_card(release: Release, *, repo_id: str, previous: dict[str, Any] | None = None,
               template: str | os.PathLike | None = None) -> Path:
    """Render the card of a release being built into its staging folder and register it as a document."""
    from .manifest import manifest_dict

    manifest = manifest_dict(release)
    card = render_card(manifest, repo_id=repo_id, previous=previous, folder=release.workdir, template=template)
    path = release.workdir / CARD_NAME
    path.write_text(card.content, encoding="utf-8")
    release.add_file(CARD_NAME, "markdown", document=True, role="model card")
    return path


def refresh_card(folder: str | os.PathLike, *, repo_id: str, previous: dict[str, Any] | None = None,
                 hub_url: str = DEFAULT_HUB_URL, template: str | os.PathLike | None = None) -> Path:
    """Re-render ``README.md`` of a built release folder (e.g. once the previous tag is known at publish).

    The manifest's entry for the card is updated to the new bytes, so the manifest always lists the
    card that is actually pushed.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise CardError(f"{folder} is not a release folder: it has no {MANIFEST_NAME}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    card = render_card(manifest, repo_id=repo_id, previous=previous, folder=folder, template=template, hub_url=hub_url)
    data = card.content.encode("utf-8")
    (folder / CARD_NAME).write_bytes(data)
    entry = {"path": CARD_NAME, "format": "markdown", "precision": "n/a", "sha256": hashlib.sha256(data).hexdigest(),
             "size": len(data), "meta": {"role": "model card"}}
    files = [f for f in manifest.get("files", []) if f.get("path") != CARD_NAME] + [entry]
    manifest["files"] = sorted(files, key=lambda f: f["path"])
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return folder / CARD_NAME


def usage_snippet(card_text: str) -> str:
    """The Python usage block of a rendered card (the fenced block right after :data:`USAGE_MARKER`)."""
    start = card_text.find(USAGE_MARKER)
    if start < 0:
        raise CardError("the model card has no Python usage block")
    fence = card_text.find("```python\n", start)
    end = card_text.find("\n```", fence + 10)
    if fence < 0 or end < 0:
        raise CardError("the model card's Python usage block is not a closed ```python fence")
    return card_text[fence + len("```python\n"):end + 1]
