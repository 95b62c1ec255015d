"""ONNX fp32 export, written directly from the folded conv chain.

The graph is built with ``onnx.helper`` rather than traced by ``torch.onnx.export``: a folded
MeshNet is exactly ``(Conv -> Relu) x n -> Conv``, so writing it is shorter than cleaning up
a trace (no dynamo per-node metadata, stack traces or local paths to strip), it is byte-for-byte
deterministic, and it does not depend on a deprecated exporter. Parity against the unfolded
PyTorch model proves the two agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import ExportError
from ..model.fold import FoldedConv

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DYNAMIC_DIMS = ("N", "D", "H", "W")
# IR version 8 is what opset 17 shipped with; it keeps the files loadable by older runtimes.
IR_VERSION_FOR_OPSET = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}


def conv_node(layer: FoldedConv, x: str, y: str, weight: str) -> onnx.NodeProto:
    k, d, p = layer.kernel_size, layer.dilation, layer.padding
    return helper.make_node(
        "Conv",
        [x, weight, f"{layer.name}.bias"],
        [y],
        name=layer.name,
        kernel_shape=[k, k, k],
        dilations=[d, d, d],
        pads=[p] * 6,
        strides=[1, 1, 1],
        group=1,
    )


def build_fp32_model(layers: list[FoldedConv], *, opset: int = 17, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """A one-file ONNX model with dynamic N, D, H, W: input (N,1,D,H,W) float32 -> logits (N,C,D,H,W)."""
    nodes, inits = [], []
    x = INPUT_NAME
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        conv_out = OUTPUT_NAME if last else f"{layer.name}.out"
        inits.append(numpy_helper.from_array(layer.weight.astype(np.float32), f"{layer.name}.weight"))
        inits.append(numpy_helper.from_array(layer.bias.astype(np.float32), f"{layer.name}.bias"))
        nodes.append(conv_node(layer, x, conv_out, f"{layer.name}.weight"))
        x = conv_out
        if layer.relu and not last:
            nodes.append(helper.make_node("Relu", [conv_out], [f"{layer.name}.relu"], name=f"{layer.name}.relu"))
            x = f"{layer.name}.relu"
    in_ch = int(layers[0].weight.shape[1])
    classes = int(layers[-1].weight.shape[0])
    n, d, h, w = DYNAMIC_DIMS
    graph = helper.make_graph(
        nodes,
        "meshnet",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [n, in_ch, d, h, w])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [n, classes, d, h, w])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="meshrelease",
        ir_version=IR_VERSION_FOR_OPSET.get(opset, onnx.IR_VERSION),
    )
    model.doc_string = "MeshNet segmentation: input (N,1,D,H,W) float32 in [0,1], RAS voxel order; output class logits."
    set_metadata(model, metadata or {})
    return model


def set_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """Replace metadata_props with ``metadata`` in sorted key order (deterministic bytes)."""
    del model.metadata_props[:]
    for key in sorted(metadata):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(metadata[key])


def check_and_save(model: onnx.ModelProto, path: Path) -> None:
    """Run the full ONNX checker (with shape inference) and write one self-contained file."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ExportError(f"{path.name}: ONNX checker failed: {first}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


def op_types(model: onnx.ModelProto) -> list[str]:
    return sorted({n.op_type for n in model.graph.node})


def layers_from_model(model: onnx.ModelProto) -> list[FoldedConv]:
    """Recover the folded conv chain from an fp32 MeshNet ONNX file written by :func:`build_fp32_model`."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = list(model.graph.node)
    layers: list[FoldedConv] = []
    for i, node in enumerate(nodes):
        if node.op_type != "Conv":
            continue
        if node.input[1] not in inits or len(node.input) < 3 or node.input[2] not in inits:
            raise ExportError(f"Conv {node.name}: weights are not float initializers (is this an fp32 MeshNet file?)")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        relu = i + 1 < len(nodes) and nodes[i + 1].op_type == "Relu"
        layers.append(FoldedConv(name=node.name or f"conv{len(layers)}", weight=inits[node.input[1]].astype(np.float32),
                                 bias=inits[node.input[2]].astype(np.float32),
                                 dilation=int(attrs.get("dilations", [1])[0]), relu=relu))
    if not layers:
        raise ExportError("no Conv nodes found: not a MeshNet ONNX file")
    return layers
