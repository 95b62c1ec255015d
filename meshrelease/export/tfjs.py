"""TensorFlow.js layers-model writer (model.json + weight shards), numpy only — no TensorFlow.

Writes what BrainChop loads with ``tf.loadLayersModel``: layer 0 an InputLayer
``[null, 256, 256, 256, 1]`` channels-last, then ``Conv3D (activation linear) -> Activation relu``
per block and a final 1x1x1 Conv3D with bias. BatchNorm is folded first (tfjs-layers cannot run a
5-D BatchNormalization). Kernels go from PyTorch ``[out, in, kD, kH, kW]`` to Keras
``[kD, kH, kW, in, out]`` and are re-oriented from the voxel order the model was trained on (RAS
for arc-meshchop) to the one BrainChop feeds (LIA). The output is a pure function of the weights
and options: identical input gives byte-identical files.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ExportError
from ..model.fold import FoldedConv, fold_batchnorm
from ..model.meshnet import MeshNet
from .orientation import check_axcodes, reorient_kernel

MODEL_JSON = "model.json"
INPUT_SIDE = 256
SHARD_BYTES = 4 * 1024 * 1024  # tensorflowjs_converter's default shard size
PRECISIONS = ("float32", "float16", "uint8")
BRAINCHOP_ORIENTATION = "LIA"  # FreeSurfer-conformed voxel order, (i, j, k) with enableTranspose
TRAINED_ORIENTATION = "RAS"  # arc-meshchop: nibabel as_closest_canonical
# tfjs-layers' own rule for tensor/layer names (common.js tensorNameRegex)
VALID_NAME = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9._/]*$")
_SHARD_PATTERN = re.compile(r"^group\d+-shard\d+of\d+\.bin$")


@dataclass(frozen=True)
class TfjsExport:
    """The files of one written layers-model folder."""

    directory: Path
    precision: str
    input_orientation: str
    trained_orientation: str
    shards: tuple[str, ...]

    @property
    def model_json(self) -> Path:
        return self.directory / MODEL_JSON

    @property
    def files(self) -> list[Path]:
        return [self.model_json, *(self.directory / s for s in self.shards)]


def layer_names(count: int) -> list[tuple[str, str]]:
    """(conv, activation) names for ``count`` layers; the head is ``output`` (never a ``_gn`` suffix)."""
    return [(f"conv3d_{i}", f"activation_{i}") for i in range(count - 1)] + [("output", "")]


def export_layers_model(
    layers: Sequence[FoldedConv],
    output_dir: str | Path,
    *,
    precision: str = "float32",
    input_orientation: str = BRAINCHOP_ORIENTATION,
    trained_orientation: str = TRAINED_ORIENTATION,
    model_name: str = "meshnet",
    metadata: dict | None = None,
    shard_bytes: int = SHARD_BYTES,
    generated_by: str | None = None,
) -> TfjsExport:
    """Write ``layers`` (BatchNorm already folded) as a TF.js layers-model into ``output_dir``.

    ``precision`` is ``float32`` (default), ``float16`` or ``uint8`` (weight quantization declared in
    the manifest's ``quantization`` field; tfjs de-quantizes to float32 on load).
    """
    if precision not in PRECISIONS:
        raise ExportError(f"TF.js precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if not layers:
        raise ExportError("TF.js export: the model has no layers")
    if shard_bytes < 4:
        raise ExportError(f"TF.js export: shard size {shard_bytes} B is too small")
    src, dst = check_axcodes(trained_orientation), check_axcodes(input_orientation)
    _check_chain(layers)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    names = layer_names(len(layers))
    topology_layers: list[dict] = [
        {
            "class_name": "InputLayer",
            "config": {
                "batch_input_shape": [None, INPUT_SIDE, INPUT_SIDE, INPUT_SIDE, int(layers[0].weight.shape[1])],
                "dtype": "float32",
                "name": "input",
                "sparse": False,
                "ragged": False,
            },
            "inbound_nodes": [],
            "name": "input",
        }
    ]
    weights: list[dict] = []
    blobs: list[bytes] = []
    previous = "input"
    for layer, (conv_name, act_name) in zip(layers, names):
        k = layer.kernel_size
        topology_layers.append(_conv3d(conv_name, int(layer.weight.shape[0]), k, layer.dilation, previous))
        previous = conv_name
        if layer.relu:
            topology_layers.append(_activation(act_name, "relu", previous))
            previous = act_name
        kernel = reorient_kernel(layer.weight, src, dst).transpose(2, 3, 4, 1, 0)
        for suffix, array in (("kernel", kernel), ("bias", layer.bias)):
            entry, blob = _encode(f"{conv_name}/{suffix}", np.asarray(array, dtype=np.float32), precision)
            weights.append(entry)
            blobs.append(blob)

    data = b"".join(blobs)
    count = max(1, math.ceil(len(data) / shard_bytes))
    shards = tuple(f"group1-shard{i + 1}of{count}.bin" for i in range(count))
    for stale in out.iterdir():  # shards of an earlier export would look like part of this one
        if _SHARD_PATTERN.match(stale.name) and stale.name not in shards:
            stale.unlink()
    for i, name in enumerate(shards):
        (out / name).write_bytes(data[i * shard_bytes : (i + 1) * shard_bytes])

    user_meta = {
        "meshrelease": {
            "input_orientation": dst,
            "trained_orientation": src,
            "kernel_reorientation": f"{src}->{dst}" if src != dst else "none",
            "precision": precision,
            **(metadata or {}),
        }
    }
    doc = {
        "format": "layers-model",
        "generatedBy": generated_by or f"meshrelease {_package_version()}",
        "convertedBy": "meshrelease TF.js layers-model writer (numpy, no TensorFlow)",
        "modelTopology": {
            "backend": "tensorflow",
            "model_config": {
                "class_name": "Functional",
                "config": {
                    "name": model_name,
                    "layers": topology_layers,
                    "input_layers": [["input", 0, 0]],
                    "output_layers": [[previous, 0, 0]],
                },
            },
        },
        "weightsManifest": [{"paths": list(shards), "weights": weights}],
        "userDefinedMetadata": user_meta,
    }
    (out / MODEL_JSON).write_text(dumps_model_json(doc), encoding="utf-8")
    return TfjsExport(out, precision, dst, src, shards)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("meshrelease")
    except PackageNotFoundError:
        return "unknown"


def dumps_model_json(doc: dict) -> str:
    """Canonical model.json text: sorted keys, fixed indentation, ASCII, trailing newline."""
    return json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=True, allow_nan=False) + "\n"


def _check_chain(layers: Sequence[FoldedConv]) -> None:
    c_prev = int(layers[0].weight.shape[1])
    for i, layer in enumerate(layers):
        w = layer.weight
        if w.ndim != 5 or not (w.shape[2] == w.shape[3] == w.shape[4]) or w.shape[2] % 2 != 1:
            raise ExportError(f"TF.js export: layer {layer.name} kernel {tuple(w.shape)} is not a cubic odd-sized 3-D kernel")
        if w.shape[1] != c_prev:
            raise ExportError(f"TF.js export: layer {layer.name} takes {w.shape[1]} channels, previous layer gives {c_prev}")
        if layer.bias.shape != (w.shape[0],):
            raise ExportError(f"TF.js export: layer {layer.name} bias {tuple(layer.bias.shape)} does not match {w.shape[0]} filters")
        if not (np.isfinite(w).all() and np.isfinite(layer.bias).all()):
            raise ExportError(f"TF.js export: layer {layer.name} has non-finite weights")
        c_prev = int(w.shape[0])
    last = layers[-1]
    if last.relu or last.kernel_size != 1:
        raise ExportError("TF.js export: BrainChop needs the last layer to be a 1x1x1 convolution giving class scores (no ReLU)")
    if any(not layer.relu for layer in layers[:-1]):
        raise ExportError("TF.js export: every layer but the last must be followed by ReLU")


def _conv3d(name: str, filters: int, k: int, dilation: int, inbound: str) -> dict:
    return {
        "class_name": "Conv3D",
        "config": {
            "name": name,
            "trainable": False,
            "dtype": "float32",
            "filters": filters,
            "kernel_size": [k, k, k],
            "strides": [1, 1, 1],
            "padding": "same",  # == PyTorch padding=dilation*(k-1)/2 for odd k
            "data_format": "channels_last",
            "dilation_rate": [dilation, dilation, dilation],
            "activation": "linear",  # ReLU is a separate layer: BrainChop's sequential-conv path needs it
            "use_bias": True,
        },
        "inbound_nodes": [[[inbound, 0, 0, {}]]],
        "name": name,
    }


def _activation(name: str, kind: str, inbound: str) -> dict:
    return {
        "class_name": "Activation",
        "config": {"name": name, "trainable": False, "dtype": "float32", "activation": kind},
        "inbound_nodes": [[[inbound, 0, 0, {}]]],
        "name": name,
    }


def _encode(name: str, array: np.ndarray, precision: str) -> tuple[dict, bytes]:
    entry: dict = {"name": name, "shape": [int(s) for s in array.shape], "dtype": "float32"}
    if precision == "float32":
        return entry, array.astype("<f4").tobytes()
    if precision == "float16":
        if np.abs(array).max(initial=0.0) > np.finfo(np.float16).max:
            raise ExportError(f"TF.js export: weight {name} exceeds the float16 range")
        entry["quantization"] = {"dtype": "float16"}
        return entry, array.astype("<f2").tobytes()
    q, lo, scale = quantize_uint8(array)
    entry["quantization"] = {"dtype": "uint8", "min": lo, "scale": scale}
    return entry, q.tobytes()


def quantize_uint8(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Affine uint8 quantization ``x ~ q*scale + min`` with ``min`` shifted so 0.0 is exact.

    tfjs de-quantizes as ``q * scale + min`` in float64 and stores float32; ``min = -zero_point*scale``
    makes ``zero_point*scale + min`` exactly 0.
    """
    a = array.astype(np.float64)
    lo, hi = min(float(a.min(initial=0.0)), 0.0), max(float(a.max(initial=0.0)), 0.0)
    if hi == lo:
        return np.zeros(a.shape, dtype=np.uint8), 0.0, 1.0
    scale = (hi - lo) / 255.0
    zero_point = int(round(-lo / scale))
    lo_shifted = -(zero_point * scale)
    q = np.clip(np.rint((a - lo_shifted) / scale), 0, 255).astype(np.uint8)
    return q, float(lo_shifted), float(scale)


def folded_layers_from_onnx(path: str | Path) -> list[FoldedConv]:
    """Read a folded MeshNet ONNX graph (Conv [+ Relu] chain, float32 initializers) as folded layers."""
    import onnx
    from onnx import numpy_helper

    p = Path(path)
    try:
        model = onnx.load(str(p))
    except Exception as exc:
        raise ExportError(f"{p}: not a readable ONNX model ({type(exc).__name__})") from None
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    layers: list[FoldedConv] = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            dil = set(attrs.get("dilations", [1, 1, 1]))
            if len(dil) != 1 or attrs.get("group", 1) != 1 or set(attrs.get("strides", [1, 1, 1])) != {1}:
                raise ExportError(f"{p}: Conv {node.name} is not an isotropic stride-1 convolution")
            w = inits.get(node.input[1])
            b = inits.get(node.input[2]) if len(node.input) > 2 else None
            if w is None or w.dtype != np.float32:
                raise ExportError(f"{p}: Conv {node.name} has no float32 weight initializer (export TF.js from the fp32 ONNX)")
            bias = b.astype(np.float32) if b is not None else np.zeros(w.shape[0], np.float32)
            layers.append(FoldedConv(f"conv{len(layers)}", w, bias, int(dil.pop()), relu=False))
        elif node.op_type == "Relu" and layers:
            last = layers[-1]
            layers[-1] = FoldedConv(last.name, last.weight, last.bias, last.dilation, relu=True)
        elif node.op_type not in ("Identity",):
            raise ExportError(f"{p}: ONNX op {node.op_type} is not part of a folded MeshNet (Conv/Relu only)")
    if not layers:
        raise ExportError(f"{p}: no Conv layers found")
    return layers


def _as_layers(source: object) -> list[FoldedConv]:
    if isinstance(source, MeshNet):
        return fold_batchnorm(source.eval())
    if isinstance(source, (str, Path)):
        return folded_layers_from_onnx(source)
    if isinstance(source, Sequence) and all(isinstance(x, FoldedConv) for x in source):
        return list(source)
    raise ExportError(f"TF.js export: cannot export a {type(source).__name__} (give a MeshNet, folded layers or an ONNX path)")


def export_to_tfjs(
    source: MeshNet | Sequence[FoldedConv] | str | Path,
    output_dir: str | Path,
    quantization: str | None = None,
    **options,
) -> Path:
    """Write a TF.js layers-model for BrainChop from a MeshNet, its folded layers or a folded fp32 ONNX file.

    ``quantization``: ``None``/``"float32"`` (default), ``"float16"`` or ``"uint8"``. Further keyword
    options go to :func:`export_layers_model`. Returns the output folder.
    """
    result = export_layers_model(_as_layers(source), output_dir, precision=quantization or "float32", **options)
    return result.directory


def export_pytorch_to_tfjs(
    model: MeshNet,
    output_dir: str | Path,
    model_name: str = "meshnet",
    input_shape: tuple[int, int, int, int, int] = (1, 1, INPUT_SIDE, INPUT_SIDE, INPUT_SIDE),
    quantization: str | None = None,
    **options,
) -> Path:
    """Fold a PyTorch MeshNet and write it as a TF.js layers-model (no ONNX, no TensorFlow). Returns the folder.

    ``input_shape`` is accepted for the seed's signature; BrainChop models are always declared
    ``[null, 256, 256, 256, 1]`` and run on smaller crops with ``model.apply``.
    """
    if tuple(input_shape[2:]) != (INPUT_SIDE,) * 3 or input_shape[1] != model.spec.in_channels:
        raise ExportError(f"TF.js export: BrainChop models are declared for 1x{INPUT_SIDE}^3 inputs, not {tuple(input_shape)}")
    return export_to_tfjs(model, output_dir, quantization=quantization, model_name=model_name, **options)
