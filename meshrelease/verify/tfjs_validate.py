"""Structural validator and reader for a TF.js layers-model folder (model.json + weight shards).

Checks what tfjs checks late, hangs on, or silently accepts: JSON structure, valid and unique names,
resolvable inbound nodes (a dangling one makes ``tf.loadLayersModel`` hang), every layer weight
present with the right shape and no stray ones, and shard bytes exactly as the manifest implies
(tfjs accepts extra bytes silently). Every problem is one :class:`TfjsFormatError` line naming the
file. The decoded float32 weights come back so the in-Python runner and the importer reuse them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import TfjsFormatError
from ..export.tfjs import MODEL_JSON, VALID_NAME

MODEL_CLASSES = ("Functional", "Model", "Sequential")
# Layer classes this validator can check (MeshNet-style models). Weightless ones pass channels through.
WEIGHTLESS = ("InputLayer", "Activation", "Dropout", "SpatialDropout3D")
KNOWN_LAYERS = ("Conv3D", *WEIGHTLESS)
ACTIVATIONS = (
    "linear", "relu", "relu6", "elu", "selu", "gelu", "gelu_new", "sigmoid", "hard_sigmoid", "hardSigmoid",
    "tanh", "softmax", "softplus", "softsign", "swish", "mish",
)  # fmt: skip
_BYTES = {"float32": 4, "int32": 4, "float16": 2, "uint16": 2, "uint8": 1, "bool": 1}


@dataclass(frozen=True)
class TfjsLayer:
    name: str
    class_name: str
    config: dict
    inbound: tuple[str, ...]


@dataclass
class LayersModel:
    """A validated layers-model: its layers in file order and its decoded float32 weights."""

    directory: Path
    layers: list[TfjsLayer]
    weights: dict[str, np.ndarray]
    shards: list[str]
    precision: str
    input_shape: list
    metadata: dict = field(default_factory=dict)

    @property
    def model_json(self) -> Path:
        return self.directory / MODEL_JSON

    def chain(self) -> list[TfjsLayer]:
        """The layers after the InputLayer, checked to form one plain chain (what BrainChop applies)."""
        first, rest = self.layers[0], self.layers[1:]
        previous = first.name
        for layer in rest:
            if layer.inbound != (previous,):
                raise TfjsFormatError(
                    f"{self.model_json}: layer '{layer.name}' takes {list(layer.inbound)}, not the previous layer "
                    f"'{previous}' (BrainChop applies layers as a plain chain)"
                )
            previous = layer.name
        return rest


def validate_layers_model(directory: str | Path) -> LayersModel:
    """Validate the layers-model in ``directory`` and return it with its weights decoded to float32."""
    folder = Path(directory)
    mj = folder / MODEL_JSON
    if not mj.is_file():
        raise TfjsFormatError(f"{mj}: missing (a TF.js layers-model folder needs {MODEL_JSON})")
    try:
        doc = json.loads(mj.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise TfjsFormatError(f"{mj}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise TfjsFormatError(f"{mj}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise TfjsFormatError(f"{mj}: top level is a JSON {type(doc).__name__}, expected an object")
    fmt = doc.get("format", "layers-model")
    if fmt != "layers-model":
        raise TfjsFormatError(f"{mj}: format is {fmt!r}, expected 'layers-model' (BrainChop loads with tf.loadLayersModel)")

    layers, input_shape = _read_topology(mj, doc.get("modelTopology"))
    expected = _expected_weights(mj, layers)
    entries, groups = _read_manifest(mj, doc.get("weightsManifest"))
    blobs = _read_shards(folder, mj, groups)

    for name, (layer, shape) in expected.items():
        if name not in entries:
            raise TfjsFormatError(f"{mj}: weight '{name}' of layer '{layer}' is missing from weightsManifest")
        got = entries[name]["shape"]
        if got != shape:
            raise TfjsFormatError(f"{mj}: weight '{name}' has shape {_fmt(got)} in weightsManifest, layer '{layer}' needs {_fmt(shape)}")
    for name in entries:
        if name not in expected:
            raise TfjsFormatError(f"{mj}: weightsManifest entry '{name}' belongs to no layer")

    weights: dict[str, np.ndarray] = {}
    quant: set[str] = set()
    for group, blob in zip(groups, blobs):
        offset = 0
        for entry in group["weights"]:
            arr, used = _decode(entry, blob, offset)
            offset += used
            bad = int(np.size(arr) - np.isfinite(arr).sum())
            if bad:
                raise TfjsFormatError(f"{folder / group['paths'][-1]}: weight '{entry['name']}' has {bad} non-finite values")
            weights[entry["name"]] = arr
            quant.add(entry.get("quantization", {}).get("dtype", "float32"))
    precision = quant.pop() if len(quant) == 1 else ("float32" if not quant else "mixed")
    meta = doc.get("userDefinedMetadata") if isinstance(doc.get("userDefinedMetadata"), dict) else {}
    shards = [p for group in groups for p in group["paths"]]
    return LayersModel(folder, layers, weights, shards, precision, input_shape, meta)


def _fmt(shape: list) -> str:
    return "[" + ",".join(str(s) for s in shape) + "]"


def _read_topology(mj: Path, topology: object) -> tuple[list[TfjsLayer], list]:
    if not isinstance(topology, dict):
        raise TfjsFormatError(f"{mj}: modelTopology is missing or not an object")
    model_config = topology.get("model_config", topology)
    if not isinstance(model_config, dict) or model_config.get("class_name") not in MODEL_CLASSES:
        found = model_config.get("class_name") if isinstance(model_config, dict) else None
        raise TfjsFormatError(f"{mj}: model class {found!r} is not one of {', '.join(MODEL_CLASSES)}")
    sequential = model_config["class_name"] == "Sequential"
    config = model_config.get("config")
    raw_layers = config if isinstance(config, list) else (config or {}).get("layers") if isinstance(config, dict) else None
    if not isinstance(raw_layers, list) or not raw_layers:
        raise TfjsFormatError(f"{mj}: modelTopology has no layers list")

    layers: list[TfjsLayer] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_layers):
        if not isinstance(raw, dict) or not isinstance(raw.get("config"), dict):
            raise TfjsFormatError(f"{mj}: layer {i} is not an object with a config")
        cfg = raw["config"]
        name = raw.get("name", cfg.get("name"))
        cls = raw.get("class_name")
        if not isinstance(name, str) or not VALID_NAME.match(name):
            raise TfjsFormatError(f"{mj}: layer {i} has invalid name {name!r} (tfjs accepts [A-Za-z0-9][-A-Za-z0-9._/]*)")
        if name in seen:
            raise TfjsFormatError(f"{mj}: layer name '{name}' is used twice")
        seen.add(name)
        if cls not in KNOWN_LAYERS:
            raise TfjsFormatError(f"{mj}: layer '{name}' has unknown class {cls!r} (supported: {', '.join(sorted(KNOWN_LAYERS))})")
        if sequential:
            inbound = (layers[-1].name,) if layers else ()
        else:
            inbound = _inbound(mj, name, raw.get("inbound_nodes", []))
        layers.append(TfjsLayer(name, cls, cfg, inbound))
    if sequential and layers[0].class_name != "InputLayer":
        shape = layers[0].config.get("batch_input_shape")
        layers.insert(0, TfjsLayer("input", "InputLayer", {"batch_input_shape": shape}, ()))

    names = {layer.name for layer in layers}
    for layer in layers:
        for src in layer.inbound:
            if src not in names:
                raise TfjsFormatError(f"{mj}: layer '{layer.name}' inbound node refers to missing layer '{src}'")
    if not sequential:
        for key in ("input_layers", "output_layers"):
            refs = (config or {}).get(key)
            if not isinstance(refs, list) or not refs:
                raise TfjsFormatError(f"{mj}: model config has no {key}")
            for ref in refs:
                if not isinstance(ref, list) or not ref or ref[0] not in names:
                    raise TfjsFormatError(f"{mj}: {key} refers to missing layer {ref[0] if isinstance(ref, list) and ref else ref!r}")
    first = layers[0]
    if first.class_name != "InputLayer":
        raise TfjsFormatError(f"{mj}: layer 0 '{first.name}' is a {first.class_name}, expected an InputLayer")
    shape = first.config.get("batch_input_shape", first.config.get("batchInputShape"))
    if not isinstance(shape, list) or len(shape) != 5 or not all(s is None or (isinstance(s, int) and s > 0) for s in shape):
        raise TfjsFormatError(f"{mj}: InputLayer '{first.name}' batch_input_shape {shape!r} is not [batch, D, H, W, channels]")
    if shape[-1] is None:
        raise TfjsFormatError(f"{mj}: InputLayer '{first.name}' has no channel count")
    return layers, shape


def _inbound(mj: Path, name: str, nodes: object) -> tuple[str, ...]:
    if not isinstance(nodes, list):
        raise TfjsFormatError(f"{mj}: layer '{name}' inbound_nodes is not a list")
    out: list[str] = []
    for node in nodes:
        # Keras 2: [[["src", 0, 0, {}]]]; each inner item names a source layer
        if not isinstance(node, list):
            raise TfjsFormatError(f"{mj}: layer '{name}' has a malformed inbound node {node!r}")
        for item in node:
            if not isinstance(item, list) or not item or not isinstance(item[0], str):
                raise TfjsFormatError(f"{mj}: layer '{name}' has a malformed inbound node {item!r}")
            out.append(item[0])
    return tuple(out)


def _expected_weights(mj: Path, layers: list[TfjsLayer]) -> dict[str, tuple[str, list[int]]]:
    """Weight name -> (layer, shape) for every layer, inferring channels along the inbound edges."""
    channels: dict[str, int] = {}
    expected: dict[str, tuple[str, list[int]]] = {}
    pending = list(layers)
    while pending:  # layers may be listed before their inputs; resolve in passes
        progressed = False
        for layer in list(pending):
            if any(src not in channels for src in layer.inbound):
                continue
            pending.remove(layer)
            progressed = True
            cfg = layer.config
            if layer.class_name == "InputLayer":
                shape = cfg.get("batch_input_shape", cfg.get("batchInputShape"))
                if not isinstance(shape, list) or not shape or not isinstance(shape[-1], int):
                    raise TfjsFormatError(f"{mj}: InputLayer '{layer.name}' has no channel count")
                channels[layer.name] = shape[-1]
                continue
            if len(layer.inbound) != 1:
                raise TfjsFormatError(f"{mj}: layer '{layer.name}' has {len(layer.inbound)} inputs, expected 1")
            c_in = channels[layer.inbound[0]]
            act = cfg.get("activation", "linear")
            if act is not None and act not in ACTIVATIONS:
                raise TfjsFormatError(f"{mj}: layer '{layer.name}' has unknown activation {act!r}")
            if layer.class_name != "Conv3D":
                channels[layer.name] = c_in
                continue
            if cfg.get("data_format", "channels_last") != "channels_last":
                raise TfjsFormatError(f"{mj}: Conv3D '{layer.name}' uses {cfg.get('data_format')}, BrainChop needs channels_last")
            ks, filters = cfg.get("kernel_size"), cfg.get("filters")
            if isinstance(ks, int):
                ks = [ks] * 3
            if not (isinstance(ks, list) and len(ks) == 3 and all(isinstance(k, int) and k > 0 for k in ks)):
                raise TfjsFormatError(f"{mj}: Conv3D '{layer.name}' kernel_size {ks!r} is not three positive integers")
            if not isinstance(filters, int) or filters <= 0:
                raise TfjsFormatError(f"{mj}: Conv3D '{layer.name}' filters {filters!r} is not a positive integer")
            expected[f"{layer.name}/kernel"] = (layer.name, [*ks, c_in, filters])
            if cfg.get("use_bias", True):
                expected[f"{layer.name}/bias"] = (layer.name, [filters])
            channels[layer.name] = filters
        if not progressed:
            stuck = ", ".join(f"'{layer.name}'" for layer in pending[:3])
            raise TfjsFormatError(f"{mj}: layers {stuck} form a cycle or are cut off from the input")
    return expected


def _read_manifest(mj: Path, manifest: object) -> tuple[dict[str, dict], list[dict]]:
    if not isinstance(manifest, list):
        raise TfjsFormatError(f"{mj}: weightsManifest is missing or not a list")
    entries: dict[str, dict] = {}
    groups: list[dict] = []
    for g, group in enumerate(manifest):
        if not isinstance(group, dict) or not isinstance(group.get("paths"), list) or not isinstance(group.get("weights"), list):
            raise TfjsFormatError(f"{mj}: weightsManifest group {g + 1} needs 'paths' and 'weights' lists")
        for p in group["paths"]:
            pp = PurePosixPath(p) if isinstance(p, str) else None
            if pp is None or not p or pp.is_absolute() or ".." in pp.parts or "\\" in p or "://" in p:
                raise TfjsFormatError(f"{mj}: weightsManifest path {p!r} is not a file inside the model folder")
        if group["weights"] and not group["paths"]:
            raise TfjsFormatError(f"{mj}: weightsManifest group {g + 1} lists weights but no shard files")
        for e in group["weights"]:
            name = e.get("name") if isinstance(e, dict) else None
            if not isinstance(name, str) or not name:
                raise TfjsFormatError(f"{mj}: weightsManifest group {g + 1} has an entry without a name")
            if name in entries:
                raise TfjsFormatError(f"{mj}: weightsManifest lists weight '{name}' twice")
            shape = e.get("shape")
            if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
                raise TfjsFormatError(f"{mj}: weight '{name}' has invalid shape {shape!r}")
            if e.get("dtype") != "float32":
                raise TfjsFormatError(f"{mj}: weight '{name}' has dtype {e.get('dtype')!r}, layer weights are float32")
            q = e.get("quantization")
            if q is not None:
                qd = q.get("dtype") if isinstance(q, dict) else None
                if qd not in ("float16", "uint8", "uint16"):
                    raise TfjsFormatError(f"{mj}: weight '{name}' has unsupported quantization {q!r}")
                if qd != "float16" and not all(isinstance(q.get(k), (int, float)) and math.isfinite(q[k]) for k in ("min", "scale")):
                    raise TfjsFormatError(f"{mj}: weight '{name}' {qd} quantization needs finite 'min' and 'scale'")
            entries[name] = e
        groups.append(group)
    return entries, groups


def _entry_bytes(e: dict) -> int:
    dtype = e.get("quantization", {}).get("dtype", e["dtype"])
    return int(np.prod(e["shape"], dtype=np.int64)) * _BYTES[dtype]


def _read_shards(folder: Path, mj: Path, groups: list[dict]) -> list[bytes]:
    blobs = []
    for g, group in enumerate(groups):
        parts = []
        for p in group["paths"]:
            f = folder / p
            if not f.is_file():
                raise TfjsFormatError(f"{f}: missing (listed in weightsManifest of {mj.name})")
            parts.append(f.read_bytes())
        blob = b"".join(parts)
        need = sum(_entry_bytes(e) for e in group["weights"])
        if len(blob) != need:
            if len(blob) < need:  # tfjs concatenates a group's shards: the data runs out in the last one
                raise TfjsFormatError(
                    f"{folder / group['paths'][-1]}: {need - len(blob)} bytes short (weightsManifest group {g + 1} implies {need} bytes, shards hold {len(blob)})"
                )
            raise TfjsFormatError(
                f"{folder / group['paths'][-1]}: {len(blob) - need} extra bytes after the last weight "
                f"(weightsManifest group {g + 1} implies {need} bytes, shards hold {len(blob)})"
            )
        blobs.append(blob)
    return blobs


def _decode(entry: dict, blob: bytes, offset: int) -> tuple[np.ndarray, int]:
    """Float32 values exactly as tfjs decodes them (``q*scale + min`` in float64, stored as float32)."""
    shape, n = entry["shape"], int(np.prod(entry["shape"], dtype=np.int64))
    q = entry.get("quantization")
    qd = q["dtype"] if q else "float32"
    size = n * _BYTES[qd]
    raw = blob[offset : offset + size]
    if qd == "float32":
        arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif qd == "float16":
        arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    else:
        ints = np.frombuffer(raw, dtype="<u1" if qd == "uint8" else "<u2").astype(np.float64)
        arr = (ints * float(q["scale"]) + float(q["min"])).astype(np.float32)
    return arr.reshape(shape), size
