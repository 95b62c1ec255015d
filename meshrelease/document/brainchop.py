"""BrainChop metadata in BrainChop's own formats, beside the TF.js model.

The TF.js folder of a release is laid out like BrainChop's ``public/models/<name>/``: model.json,
weight shards, ``colormap.json`` (one colour and label per class), the seed's ``model_info.json``,
and ``brainchop_model_entry.json`` — the object to add to ``inferenceModelsList`` in
``brainchop-parameters.js`` (every field BrainChop reads).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..model.meshnet import MeshNetSpec

COLORMAP_JSON = "colormap.json"
MODEL_INFO_JSON = "model_info.json"
ENTRY_JSON = "brainchop_model_entry.json"
INPUT_SIDE = 256
# Above this one hidden activation (256^3, float32) BrainChop should convolve one output channel at a time.
SEQ_CONV_ABOVE_BYTES = 512 * 1024**2
WARN_ABOVE_BYTES = 1024**3
CROP_PADDING = 18  # BrainChop's usual padding around the brain bounding box
INFERENCE_DELAY_MS = 100  # BrainChop's usual pause between layers (keeps the page responsive)
# Background black, then distinct colours; class i gets PALETTE[i % len].
PALETTE = ((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
           (255, 128, 0), (128, 0, 255), (0, 128, 255), (128, 255, 0))


def colormap(labels: list[str] | tuple[str, ...]) -> dict:
    """BrainChop ``colormap.json``: ``R``, ``G``, ``B`` and ``labels``, index = class label."""
    if not labels:
        raise ValueError("a colormap needs at least one label")
    rgb = [PALETTE[i % len(PALETTE)] for i in range(len(labels))]
    return {"R": [c[0] for c in rgb], "G": [c[1] for c in rgb], "B": [c[2] for c in rgb], "labels": list(labels)}


def texture_size(spec: MeshNetSpec, side: int = INPUT_SIDE) -> int:
    """Side of the square RGBA WebGL texture that holds the largest activation (channels x side^3 floats)."""
    largest = max(spec.channels, spec.classes, spec.in_channels) * side**3
    return math.ceil(math.sqrt(largest / 4))


def brainchop_model_entry(
    *,
    name: str,
    display_name: str,
    spec: MeshNetSpec,
    description: str = "",
    model_id: int = 1,
    models_root: str = "/models",
) -> dict:
    """One ``inferenceModelsList`` entry for a MeshNet released for BrainChop.

    ``enableTranspose`` is true: the kernels are re-oriented for the conformed LIA array in nibabel
    (i, j, k) order, which is what BrainChop feeds with transposition on. Sequential convolution and
    the warning follow the memory of one 256^3 activation (``spec.activation_bytes()``).
    """
    act = spec.activation_bytes(INPUT_SIDE, 4)
    gib = act / 1024**3
    warning = (
        f"This model holds {gib:.1f} GiB per layer activation ({spec.channels} channels x {INPUT_SIDE}^3 x 4 B); "
        "it may fail on integrated graphics or low-memory browsers."
        if act > WARN_ABOVE_BYTES
        else None
    )
    return {
        "id": int(model_id),
        "type": "Segmentation",
        "path": f"{models_root}/{name}/model.json",
        "modelName": display_name,
        "colormapPath": f".{models_root}/{name}/{COLORMAP_JSON}",  # BrainChop's own entries: "/models/..." and "./models/..."
        "preModelId": None,
        "preModelPostProcess": False,
        "isBatchOverlapEnable": False,
        "numOverlapBatches": 0,
        "enableTranspose": True,
        "enableCrop": True,
        "cropPadding": CROP_PADDING,
        "autoThreshold": 0,  # trained on whole min-max volumes: no intensity thresholding of the input
        "enableQuantileNorm": False,  # trained with min-max normalisation
        "filterOutWithPreMask": False,
        "enableSeqConv": act > SEQ_CONV_ABOVE_BYTES,
        "textureSize": texture_size(spec),
        "warning": warning,
        "inferenceDelay": INFERENCE_DELAY_MS,
        "description": description,
    }


def create_brainchop_model_info(
    model_dir: Path | str,
    model_name: str,
    channels: int,
    input_shape: tuple[int, int, int] = (INPUT_SIDE, INPUT_SIDE, INPUT_SIDE),
    labels: list[str] | None = None,
    **extra: object,
) -> Path:
    """Write the original export spec's ``model_info.json`` into ``model_dir``; returns its path.

    Same fields as the seed (name, type, architecture, channels, inputShape, outputLabels, numClasses,
    preprocessor, postprocessor, source, reference) plus the voxel orientation the model expects.
    """
    labels = list(labels) if labels else ["background", "lesion"]
    info = {
        "name": model_name,
        "type": "segmentation",
        "architecture": "meshnet",
        "channels": int(channels),
        "inputShape": [int(s) for s in input_shape],
        "outputLabels": labels,
        "numClasses": len(labels),
        "preprocessor": {"normalize": True, "normalizationMethod": "minmax", "targetRange": [0, 1],
                         "conform": "FreeSurfer conform: 256^3, 1 mm, LIA, uint8", "inputOrientation": "LIA"},
        "postprocessor": {"argmax": True},
        "source": "arc-meshchop paper replication",
        "reference": "Fedorov et al. 2024",
        **extra,
    }
    path = Path(model_dir) / MODEL_INFO_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dumps(info), encoding="utf-8")
    return path


def write_brainchop_files(
    model_dir: Path | str,
    *,
    name: str,
    display_name: str,
    spec: MeshNetSpec,
    labels: list[str] | tuple[str, ...],
    description: str = "",
    model_id: int = 1,
    trained_orientation: str = "RAS",
) -> list[Path]:
    """Write colormap.json, model_info.json and the model-list entry beside the TF.js model; returns the paths."""
    if len(labels) != spec.classes:
        raise ValueError(f"{len(labels)} labels for a {spec.classes}-class model")
    folder = Path(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    cmap = folder / COLORMAP_JSON
    cmap.write_text(_dumps(colormap(labels)), encoding="utf-8")
    info = create_brainchop_model_info(
        folder, display_name, spec.channels, labels=list(labels), dilations=list(spec.dilations),
        trainedOrientation=trained_orientation,
        kernelReorientation="none" if trained_orientation == "LIA" else f"{trained_orientation}->LIA",
    )
    entry = folder / ENTRY_JSON
    entry.write_text(
        _dumps(brainchop_model_entry(name=name, display_name=display_name, spec=spec, description=description, model_id=model_id)),
        encoding="utf-8",
    )
    return [cmap, info, entry]


def _dumps(obj: dict) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=True) + "\n"
