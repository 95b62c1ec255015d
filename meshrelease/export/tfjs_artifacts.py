"""The TF.js stage of a release: the BrainChop folder written, validated, and checked in the TF.js runtime.

``tfjs/`` in a release is laid out like BrainChop's ``public/models/<name>/``: model.json, weight
shards, colormap.json, model_info.json and the model-list entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..document.brainchop import write_brainchop_files
from ..model.fold import FoldedConv
from ..record import Release
from ..verify.parity import ParityResult, Thresholds
from ..verify.tfjs_parity import DEFAULT_CROP, node_runner_status, tfjs_parity
from ..verify.tfjs_validate import validate_layers_model
from .tfjs import BRAINCHOP_ORIENTATION, TRAINED_ORIENTATION, export_layers_model

TFJS_DIR = "tfjs"
TFJS_FORMAT = "tfjs-layers"
_DOC_FORMATS = {"colormap.json": "brainchop-colormap", "model_info.json": "brainchop-model-info",
                "brainchop_model_entry.json": "brainchop-model-entry"}
_PRECISION = {"float32": "fp32", "float16": "fp16", "uint8": "uint8"}


def export_tfjs(release: Release, layers: list[FoldedConv], *, precision: str = "float32") -> None:
    """Write ``tfjs/`` (model + BrainChop files) into the staging folder, validate it, register every file."""
    v = release.variant
    folder = release.workdir / TFJS_DIR
    meta = {"variant": v.name, "tag": release.tag, "labels": list(v.labels),
            "source_sha256": release.source.sha256 if release.source else ""}
    result = export_layers_model(layers, folder, precision=precision, model_name=v.name, metadata=meta)
    validate_layers_model(folder)  # every build proves its own folder is well-formed
    tag = _PRECISION[precision]
    file_meta = {"input_orientation": result.input_orientation, "trained_orientation": result.trained_orientation,
                 "input_shape": [None, 256, 256, 256, v.spec.in_channels], "brainchop_layout": f"public/models/{v.name}/"}
    release.add_file(f"{TFJS_DIR}/model.json", TFJS_FORMAT, tag, **file_meta)
    for shard in result.shards:
        release.add_file(f"{TFJS_DIR}/{shard}", TFJS_FORMAT, tag, role="weights")
    display = f"{v.description or v.name} ({release.tag})"
    for path in write_brainchop_files(folder, name=v.name, display_name=display, spec=v.spec, labels=list(v.labels),
                                      description=v.description, trained_orientation=TRAINED_ORIENTATION):
        release.add_file(f"{TFJS_DIR}/{path.name}", _DOC_FORMATS[path.name], document=True)


def verify_tfjs(release: Release, reference_model, samples: list[str | Path], *, crop: int | None = None,
                note: Callable[[str], None] = lambda message: None) -> list[ParityResult]:
    """TF.js parity on the first real sample (or a seeded random volume) in BrainChop's orientation.

    The crop side is ``crop``, else ``release.settings["tfjs_crop"]``, else 32 (pure-JS tfjs is slow).
    Node's tfjs is the runtime; without it the in-Python re-implementation runs and ``note`` says why.
    """
    crop = int(crop or release.settings.get("tfjs_crop") or DEFAULT_CROP)
    status = node_runner_status()
    if not status.available:
        note(f"TF.js parity: {status.reason}; using meshrelease's Python re-implementation of the TF.js model instead")
    fp32 = release.artifact(f"{TFJS_DIR}/model.json").precision == "fp32"
    thresholds = release.settings.get("thresholds", {}).get("fp32") if fp32 else None  # else TF.js defaults
    parity = tfjs_parity(
        release.workdir / TFJS_DIR, reference_model, samples[0] if samples else None,
        crop=min(crop, 256), thresholds=Thresholds(**thresholds) if thresholds else None,
        random_seed=int(release.settings.get("seed", 0)),
    )
    release.timings["tfjs_parity"] = parity.seconds  # timings stay out of the reproducible part of the manifest
    release.estimates["tfjs_parity"] = {"runner": parity.runner, "fallback_reason": parity.fallback_reason, "crop": crop,
                                        "orientation": {**parity.orientation, "brainchop": BRAINCHOP_ORIENTATION}}
    return [parity.result]


def release_tfjs_folders(folder: Path, manifest: dict) -> list[Path]:
    """The TF.js model folders a release manifest lists (one per ``tfjs-layers`` model.json)."""
    return sorted({(Path(folder) / e["path"]).parent for e in manifest.get("files") or []
                   if e.get("format") == TFJS_FORMAT and str(e.get("path", "")).endswith("model.json")})


def validate_release_tfjs(folder: Path, manifest: dict) -> list[Path]:
    """Validate every TF.js folder of a built or downloaded release; TfjsFormatError names the first problem."""
    dirs = release_tfjs_folders(folder, manifest)
    for d in dirs:
        validate_layers_model(d)
    return dirs


def rerun_tfjs_parity(folder: Path, manifest: dict, reference_model, samples: list[str | Path], *,
                      note: Callable[[str], None] = lambda message: None) -> list[ParityResult]:
    """Repeat the build's TF.js parity on a downloaded release (same crop, seed and fp32 thresholds)."""
    status = node_runner_status()
    if not status.available:
        note(f"TF.js parity: {status.reason}; using meshrelease's Python re-implementation of the TF.js model instead")
    settings = manifest.get("settings") or {}
    crop = int(((manifest.get("estimates") or {}).get("tfjs_parity") or {}).get("crop", DEFAULT_CROP))
    fp32 = (settings.get("thresholds") or {}).get("fp32")
    results = []
    for d in validate_release_tfjs(folder, manifest):
        rel = (d / "model.json").relative_to(folder).as_posix()
        precision = next(e.get("precision") for e in manifest["files"] if e.get("path") == rel)
        thresholds = Thresholds(**fp32) if fp32 and precision == "fp32" else None
        results.append(tfjs_parity(d, reference_model, samples[0] if samples else None, artifact=rel, crop=crop,
                                   thresholds=thresholds, random_seed=int(settings.get("seed", 0))).result)
    return results
