"""BatchNorm folding: MeshNet in eval mode as a plain chain of convolutions.

Every exporter (ONNX, TF.js) writes from this one folded form, so they share the
arithmetic that parity checks prove against the unfolded PyTorch model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .meshnet import MeshNet


@dataclass(frozen=True)
class FoldedConv:
    """A Conv3d with BatchNorm folded in. ``weight`` is PyTorch layout [out, in, k, k, k]."""

    name: str
    weight: np.ndarray  # float32 [out, in, k, k, k]
    bias: np.ndarray  # float32 [out]
    dilation: int
    relu: bool

    @property
    def kernel_size(self) -> int:
        return int(self.weight.shape[2])

    @property
    def padding(self) -> int:
        return self.dilation * (self.kernel_size - 1) // 2


def fold_batchnorm(model: MeshNet) -> list[FoldedConv]:
    """Fold each block's BatchNorm into its conv: ``s = g/sqrt(var+eps)``, ``w' = w*s``, ``b' = (b-mean)*s + beta``.

    Computed in float64 and rounded once to float32, so the folded weights are a
    deterministic function of the checkpoint.
    """
    layers: list[FoldedConv] = []
    blocks = list(model.network)
    for i, block in enumerate(blocks[:-1]):
        conv, bn = block.conv, block.bn
        w = conv.weight.detach().double()
        b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
        w_f = w * scale.view(-1, 1, 1, 1, 1)
        b_f = (b - bn.running_mean.detach().double()) * scale + bn.bias.detach().double()
        layers.append(
            FoldedConv(
                name=f"conv{i}",
                weight=np.ascontiguousarray(w_f.float().numpy()),
                bias=np.ascontiguousarray(b_f.float().numpy()),
                dilation=int(conv.dilation[0]),
                relu=True,
            )
        )
    head = blocks[-1]
    layers.append(
        FoldedConv(
            name="classifier",
            weight=np.ascontiguousarray(head.weight.detach().float().numpy()),
            bias=np.ascontiguousarray(head.bias.detach().float().numpy()),
            dilation=1,
            relu=False,
        )
    )
    return layers


def folded_parameter_count(layers: list[FoldedConv]) -> int:
    return sum(layer.weight.size + layer.bias.size for layer in layers)
