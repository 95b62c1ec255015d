"""The arc-meshchop MeshNet architecture and its specification.

``network = Sequential(len(dilations) x [conv: Conv3d(k=3, padding=d, dilation=d) -> bn -> ReLU -> Dropout],
Conv3d(k=1) -> classes)``. Module names match arc-meshchop so its state dicts load strictly.
"""

from __future__ import annotations

import torch
from torch import nn

from .spec import ARC_DILATIONS, MeshNetSpec

__all__ = ["ARC_DILATIONS", "ConvBlock", "MeshNet", "MeshNetSpec", "count_parameters"]

class ConvBlock(nn.Module):
    """One MeshNet layer: dilated 3x3x3 conv, BatchNorm, ReLU, dropout."""

    def __init__(self, c_in: int, c_out: int, dilation: int, kernel_size: int = 3, dropout: float = 0.0):
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv3d(c_in, c_out, kernel_size, padding=pad, dilation=dilation)
        self.bn = nn.BatchNorm3d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.relu(self.bn(self.conv(x))))


class MeshNet(nn.Module):
    """arc-meshchop MeshNet: input (N, 1, D, H, W) -> logits (N, classes, D, H, W)."""

    def __init__(self, spec: MeshNetSpec):
        super().__init__()
        if spec.kernel_size % 2 != 1:
            raise ValueError("MeshNet needs an odd kernel size")
        self.spec = spec
        layers: list[nn.Module] = []
        c_in = spec.in_channels
        for d in spec.dilations:
            layers.append(ConvBlock(c_in, spec.channels, d, spec.kernel_size))
            c_in = spec.channels
        layers.append(nn.Conv3d(c_in, spec.classes, kernel_size=1))
        self.network = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of a module (buffers such as running stats excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
