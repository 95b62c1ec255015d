"""Import a published BrainChop TF.js MeshNet (model.json + shards) as a releasable MeshNet checkpoint.

The architecture (channels, classes, dilations) is read from the JSON. BrainChop models have biased
convolutions and no BatchNorm, so each block gets an identity BatchNorm chosen so that folding it
gives back the original weights bit for bit. BrainChop feeds its models the conformed LIA array
(nibabel (i, j, k) order with ``enableTranspose``); meshrelease checkpoints follow arc-meshchop's
RAS-canonical convention, so the kernels are re-oriented LIA -> RAS on import (exact) and the TF.js
export re-orients them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UnsupportedModelError
from ..export.orientation import check_axcodes, reorient_kernel
from ..model.fold import FoldedConv, fold_batchnorm
from ..model.meshnet import MeshNet, MeshNetSpec
from ..verify.tfjs_validate import LayersModel, TfjsLayer, validate_layers_model

BN_EPS = 1e-5  # PyTorch BatchNorm3d default, what MeshNet's blocks use
# running_var such that 1/sqrt(var + eps) is within 7e-9 of 1: folding then rounds back to the same float32
IDENTITY_VAR = np.float32(1.0 - BN_EPS)
BRAINCHOP_FED = "LIA"  # enableTranspose: true; "AIL" when a model list entry has enableTranspose false
CHECKPOINT_ORIENTATION = "RAS"


@dataclass
class ImportedModel:
    """A BrainChop MeshNet turned into meshrelease's MeshNet: spec, state dict and provenance."""

    source: Path
    spec: MeshNetSpec
    state_dict: dict[str, torch.Tensor]
    fed_orientation: str
    labels: list[str] | None = None
    info: dict = field(default_factory=dict)

    def to_model(self) -> MeshNet:
        model = MeshNet(self.spec)
        model.load_state_dict(self.state_dict, strict=True)
        return model.eval()

    def checkpoint(self) -> dict:
        """A training-checkpoint-shaped dict of tensors and plain values (``torch.load(weights_only=True)``-safe)."""
        return {
            "model_state_dict": self.state_dict,
            "meshnet_spec": self.spec.to_dict(),
            "orientation": CHECKPOINT_ORIENTATION,
            "imported_from": {"format": "brainchop tfjs layers-model", "path": str(self.source),
                              "fed_orientation": self.fed_orientation, **self.info},
            "labels": list(self.labels) if self.labels else [],
        }


def import_brainchop(directory: str | Path, *, fed_orientation: str = BRAINCHOP_FED) -> ImportedModel:
    """Read a BrainChop MeshNet folder and return it as a MeshNet (kernels in RAS order).

    Raises :class:`~meshrelease.errors.TfjsFormatError` for a malformed folder and
    :class:`~meshrelease.errors.UnsupportedModelError` for constructs MeshNet does not have.
    """
    fed = check_axcodes(fed_orientation)
    model = validate_layers_model(directory)
    convs = _mesh_layers(model)
    c_in = convs[0].weight.shape[1]
    hidden = {c.weight.shape[0] for c in convs[:-1]}
    spec = MeshNetSpec(channels=hidden.pop(), classes=int(convs[-1].weight.shape[0]), in_channels=int(c_in),
                       dilations=tuple(c.dilation for c in convs[:-1]), kernel_size=int(convs[0].kernel_size))
    state: dict[str, torch.Tensor] = {}
    for i, conv in enumerate(convs[:-1]):
        w = reorient_kernel(conv.weight, fed, CHECKPOINT_ORIENTATION)
        n = w.shape[0]
        state[f"network.{i}.conv.weight"] = torch.from_numpy(w.copy())
        state[f"network.{i}.conv.bias"] = torch.from_numpy(conv.bias.copy())
        state[f"network.{i}.bn.weight"] = torch.ones(n)
        state[f"network.{i}.bn.bias"] = torch.zeros(n)
        state[f"network.{i}.bn.running_mean"] = torch.zeros(n)
        state[f"network.{i}.bn.running_var"] = torch.full((n,), float(IDENTITY_VAR))
        state[f"network.{i}.bn.num_batches_tracked"] = torch.tensor(0)
    head = convs[-1]
    state[f"network.{len(convs) - 1}.weight"] = torch.from_numpy(reorient_kernel(head.weight, fed, CHECKPOINT_ORIENTATION).copy())
    state[f"network.{len(convs) - 1}.bias"] = torch.from_numpy(head.bias.copy())

    imported = ImportedModel(Path(directory), spec, state, fed, _labels(Path(directory), spec.classes),
                             {"precision": model.precision, "generatedBy": _generated_by(model)})
    _check_exact(imported, convs, model)
    return imported


def save_checkpoint(imported: ImportedModel, path: str | Path) -> Path:
    """Save the imported model as a ``torch.save`` dict of tensors and plain values."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(imported.checkpoint(), p)
    return p


def variant_toml(name: str, imported: ImportedModel, checkpoint: str | Path) -> str:
    """The ``meshrelease.toml`` section that releases the imported checkpoint."""
    s = imported.spec
    labels = imported.labels or [f"class_{i}" for i in range(s.classes)]
    quoted = ", ".join(f'"{x}"' for x in labels)
    return (
        f"[variants.{name}]\nchannels = {s.channels}\nclasses = {s.classes}\n"
        f"dilations = [{', '.join(str(d) for d in s.dilations)}]\nparams = {s.parameter_count}\n"
        f"labels = [{quoted}]\ncheckpoint = \"{Path(checkpoint).as_posix()}\"\n"
        f"description = \"{name}: imported from BrainChop ({imported.source.name})\"\n"
        # a few KB of graph/JSON overhead exceed the 3 % budget margin of a small model
        + ("size_allowance = 8192\n" if s.parameter_count < 50_000 else "")
    )


def _mesh_layers(model: LayersModel) -> list[FoldedConv]:
    """The Conv3D -> ReLU chain as folded convs in PyTorch layout, or a one-line refusal."""
    mj = model.model_json
    convs: list[FoldedConv] = []
    for layer in model.chain():
        cfg = layer.config
        if layer.name.endswith("_gn"):
            raise UnsupportedModelError(
                f"{mj}: layer '{layer.name}' ends in '_gn', so BrainChop normalises its output per channel "
                "(GroupNorm-style), which MeshNet does not have; refusing to import"
            )
        act = cfg.get("activation") or "linear"
        if layer.class_name in ("Dropout", "SpatialDropout3D"):
            continue
        if layer.class_name == "Activation" or (layer.class_name == "Conv3D" and act != "linear"):
            _check_relu(mj, layer, act, convs)
            if layer.class_name == "Activation":
                continue
        if layer.class_name != "Conv3D":
            raise UnsupportedModelError(f"{mj}: layer '{layer.name}' is a {layer.class_name}, which MeshNet does not have; refusing to import")
        convs.append(_conv(mj, layer, model, relu=act == "relu"))
    if len(convs) < 2:
        raise UnsupportedModelError(f"{mj}: {len(convs)} convolution(s); a MeshNet has dilated blocks and a 1x1x1 head")
    head, blocks = convs[-1], convs[:-1]
    if head.kernel_size != 1 or head.relu:
        raise UnsupportedModelError(f"{mj}: the last layer '{head.name}' is not a 1x1x1 convolution giving class scores")
    for conv in blocks:
        if not conv.relu:
            raise UnsupportedModelError(f"{mj}: layer '{conv.name}' is not followed by ReLU; every MeshNet block is conv -> ReLU")
        if conv.kernel_size != blocks[0].kernel_size or conv.weight.shape[0] != blocks[0].weight.shape[0]:
            raise UnsupportedModelError(f"{mj}: layer '{conv.name}' differs in kernel size or width from the first block; MeshNet blocks are uniform")
    return convs


def _check_relu(mj: Path, layer: TfjsLayer, act: str, convs: list[FoldedConv]) -> None:
    if act == "linear":
        return
    if act != "relu":
        raise UnsupportedModelError(
            f"{mj}: layer '{layer.name}' uses activation '{act}'; MeshNet blocks use ReLU, so the model cannot be "
            "released as a MeshNet; refusing to import"
        )
    if layer.class_name == "Activation":
        if not convs or convs[-1].relu:
            raise UnsupportedModelError(f"{mj}: activation '{layer.name}' does not follow a convolution")
        last = convs[-1]
        convs[-1] = FoldedConv(last.name, last.weight, last.bias, last.dilation, relu=True)


def _conv(mj: Path, layer: TfjsLayer, model: LayersModel, relu: bool) -> FoldedConv:
    cfg = layer.config
    dil = cfg.get("dilation_rate", [1, 1, 1])
    dil = [dil] * 3 if isinstance(dil, int) else list(dil)
    ks = cfg.get("kernel_size")
    ks = [ks] * 3 if isinstance(ks, int) else list(ks)
    strides = cfg.get("strides", [1, 1, 1])
    if len(set(dil)) != 1 or len(set(ks)) != 1 or ks[0] % 2 != 1:
        raise UnsupportedModelError(f"{mj}: layer '{layer.name}' has kernel {ks} / dilation {dil}; MeshNet needs cubic odd kernels and isotropic dilation")
    if set(strides if isinstance(strides, list) else [strides]) != {1} or cfg.get("groups", 1) != 1:
        raise UnsupportedModelError(f"{mj}: layer '{layer.name}' is strided or grouped; MeshNet convolutions are not")
    if ks[0] > 1 and cfg.get("padding") != "same":
        raise UnsupportedModelError(f"{mj}: layer '{layer.name}' uses padding {cfg.get('padding')!r}; MeshNet keeps the size ('same')")
    kernel = model.weights[f"{layer.name}/kernel"].transpose(4, 3, 0, 1, 2)
    bias = model.weights.get(f"{layer.name}/bias")
    if bias is None:
        bias = np.zeros(kernel.shape[0], dtype=np.float32)
    return FoldedConv(layer.name, np.ascontiguousarray(kernel, dtype=np.float32), np.ascontiguousarray(bias, dtype=np.float32),
                      int(dil[0]), relu)


def _check_exact(imported: ImportedModel, convs: list[FoldedConv], model: LayersModel) -> None:
    """Folding the imported MeshNet must give back the original kernels exactly (re-oriented)."""
    folded = fold_batchnorm(imported.to_model())
    for mine, original in zip(folded, convs):
        back = reorient_kernel(mine.weight, CHECKPOINT_ORIENTATION, imported.fed_orientation)
        if not (np.array_equal(back, original.weight) and np.array_equal(mine.bias, original.bias)):
            raise UnsupportedModelError(f"{model.model_json}: layer '{original.name}' does not survive BatchNorm folding exactly")


def _labels(folder: Path, classes: int) -> list[str] | None:
    """Class labels from the folder's colormap*.json with one label per class, if any."""
    import json

    for path in sorted(folder.glob("colormap*.json")):
        try:
            labels = json.loads(path.read_text(encoding="utf-8")).get("labels")
        except (ValueError, AttributeError, UnicodeDecodeError):
            continue
        if isinstance(labels, list) and len(labels) == classes and all(isinstance(x, str) for x in labels):
            return labels
    return None


def _generated_by(model: LayersModel) -> str:
    import json

    try:
        doc = json.loads(model.model_json.read_text(encoding="utf-8"))
    except ValueError:
        return ""
    return str(doc.get("generatedBy", ""))
