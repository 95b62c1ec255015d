"""Reduced-precision ONNX artifacts: fp16 and three int8 methods.

Measured on the real MeshNet-26 (export-facts.md, 128^3 real T1, ORT CPU):

============ ====== ============ ========= ==========================
method       size   ORT op       128^3     vs fp32 max/agree/Dice
============ ====== ============ ========= ==========================
weight-only  155 KB FusedConv    17-19 s   0.18 / 99.80 % / 0.994
dynamic      168 KB ConvInteger  13 s      0.38 / 99.67 % / 0.990
static QDQ   168 KB QLinearConv  9-10 s    2.27 / 99.76 % / 0.993
============ ====== ============ ========= ==========================

Default: **weight-only** — the smallest file and the closest to fp32, it needs no calibration
data (so the artifact depends only on the checkpoint), and it uses only standard ops
(DequantizeLinear + Conv), so it also runs in onnxruntime-web and other runtimes without
integer-conv kernels. Its cost is speed (fp32 compute); choose ``static`` when CPU latency matters
and real calibration volumes are available, ``dynamic`` for a no-calibration integer path.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import ExportError
from ..model.fold import FoldedConv
from .onnx_graph import build_fp32_model, conv_node, set_metadata


def to_fp16(fp32: onnx.ModelProto) -> onnx.ModelProto:
    """fp16 weights and compute, float32 input and output kept (Cast at the edges)."""
    from onnxconverter_common import float16

    model = float16.convert_float_to_float16(fp32, keep_io_types=True, disable_shape_infer=False)
    model.producer_name = "meshrelease"
    return model


def weight_only_int8(layers: list[FoldedConv], *, opset: int, metadata: dict[str, str]) -> onnx.ModelProto:
    """Per-output-channel symmetric int8 conv weights, dequantized in-graph; biases stay fp32."""
    fp32 = build_fp32_model(layers, opset=max(opset, 13), metadata=metadata)
    graph = fp32.graph
    keep = [t for t in graph.initializer if not t.name.endswith(".weight")]
    new_inits, new_nodes = list(keep), []
    by_name = {layer.name: layer for layer in layers}
    for node in graph.node:
        if node.op_type != "Conv":
            new_nodes.append(node)
            continue
        layer = by_name[node.name]
        w = layer.weight.astype(np.float32)
        absmax = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
        scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(w / scale.reshape(-1, 1, 1, 1, 1)), -127, 127).astype(np.int8)
        base = f"{layer.name}.weight"
        new_inits += [
            numpy_helper.from_array(q, f"{base}.int8"),
            numpy_helper.from_array(scale, f"{base}.scale"),
            numpy_helper.from_array(np.zeros(w.shape[0], dtype=np.int8), f"{base}.zero_point"),
        ]
        new_nodes.append(
            helper.make_node("DequantizeLinear", [f"{base}.int8", f"{base}.scale", f"{base}.zero_point"], [base],
                             name=f"{base}.dequantize", axis=0)
        )
        new_nodes.append(conv_node(layer, node.input[0], node.output[0], base))
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return fp32


def ort_int8(fp32: onnx.ModelProto, method: str, calibration: Iterable[np.ndarray] | None = None) -> onnx.ModelProto:
    """int8 through onnxruntime.quantization: ``dynamic`` (QUInt8 ConvInteger) or ``static`` (QDQ, per channel)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationDataReader

    with tempfile.TemporaryDirectory(prefix="meshrelease-q-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32.SerializeToString())
        if method == "dynamic":
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8)
        elif method == "static":
            volumes = list(calibration or [])
            if not volumes:
                raise ExportError("int8 method 'static' needs calibration volumes (give a real MRI --sample)")

            class Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self._it = iter({"input": v[None, None].astype(np.float32)} for v in volumes)

                def get_next(self):  # noqa: D401 - ORT's interface
                    return next(self._it, None)

            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        else:
            raise ExportError(f"unknown int8 method {method!r}")
        model = onnx.load(str(dst))
    model.producer_name = "meshrelease"
    return model


def finish(model: onnx.ModelProto, metadata: dict[str, str]) -> onnx.ModelProto:
    set_metadata(model, metadata)
    return model


def make_int8(layers, fp32, method: str, *, opset: int, metadata: dict[str, str], calibration=None) -> onnx.ModelProto:
    if method == "weight-only":
        return weight_only_int8(layers, opset=opset, metadata=metadata)
    return finish(ort_int8(fp32, method, calibration), metadata)


__all__ = ["to_fp16", "make_int8", "weight_only_int8", "ort_int8", "TensorProto"]
