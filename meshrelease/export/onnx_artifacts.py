"""The export stage for ONNX: fp32, fp16 and int8 files registered on the release record."""

from __future__ import annotations

import json
import logging

import numpy as np

from ..model.fold import FoldedConv
from ..record import Release
from .onnx_graph import build_fp32_model, check_and_save, op_types
from .quantize import make_int8, to_fp16

ONNX_FILES = {"fp32": "onnx/model.onnx", "fp16": "onnx/model_fp16.onnx", "int8": "onnx/model_int8.onnx"}
PREPROCESSING = "nibabel as_closest_canonical (RAS) -> 256^3 at 1 mm -> min-max to [0, 1]; input float32 (N,1,D,H,W)"


def onnx_metadata(release: Release, precision: str) -> dict[str, str]:
    """metadata_props: what a consumer needs to use the file correctly, and nothing machine-specific."""
    v = release.variant
    return {
        "variant": v.name,
        "tag": release.tag,
        "source_sha256": release.source.sha256 if release.source else "",
        "classes": str(v.spec.classes),
        "labels": json.dumps(list(v.labels)),
        "architecture": json.dumps(v.spec.to_dict(), sort_keys=True),
        "precision": precision,
        "orientation": "RAS",
        "preprocessing": PREPROCESSING,
        "producer": "meshrelease",
    }


def export_onnx(release: Release, layers: list[FoldedConv], *, opset: int, int8_method: str,
                calibration: list[np.ndarray] | None = None) -> None:
    """Write the three ONNX artifacts into the release's staging folder and register them."""
    fp32 = build_fp32_model(layers, opset=opset, metadata=onnx_metadata(release, "fp32"))
    path = release.workdir / ONNX_FILES["fp32"]
    check_and_save(fp32, path)
    release.add_file(ONNX_FILES["fp32"], "onnx", "fp32", opset=opset, ops=op_types(fp32))

    fp16 = to_fp16(fp32)
    from .onnx_graph import set_metadata

    set_metadata(fp16, onnx_metadata(release, "fp16"))
    check_and_save(fp16, release.workdir / ONNX_FILES["fp16"])
    release.add_file(ONNX_FILES["fp16"], "onnx", "fp16", opset=opset, ops=op_types(fp16), io_dtype="float32")

    if int8_method == "none":
        return
    meta = onnx_metadata(release, "int8")
    meta["int8_method"] = int8_method
    logging.getLogger().disabled, was = True, logging.getLogger().disabled  # ORT quantization logs to root
    try:
        int8 = make_int8(layers, fp32, int8_method, opset=opset, metadata=meta, calibration=calibration)
    finally:
        logging.getLogger().disabled = was
    check_and_save(int8, release.workdir / ONNX_FILES["int8"])
    release.add_file(ONNX_FILES["int8"], "onnx", "int8", opset=max(opset, 13) if int8_method == "weight-only" else opset,
                     ops=op_types(int8), int8_method=int8_method)
