"""MeshNet's shape, without torch: what the config and the CLI need to describe a variant."""

from __future__ import annotations

from dataclasses import dataclass, field

ARC_DILATIONS: tuple[int, ...] = (1, 2, 4, 8, 16, 16, 8, 4, 2)


@dataclass(frozen=True)
class MeshNetSpec:
    """Shape of a MeshNet: everything needed to rebuild it without its weights."""

    channels: int
    classes: int = 2
    in_channels: int = 1
    dilations: tuple[int, ...] = field(default=ARC_DILATIONS)
    kernel_size: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))

    @property
    def parameter_count(self) -> int:
        """Trainable parameters: conv weights and biases plus BatchNorm affine terms."""
        k3 = self.kernel_size**3
        total, c_in = 0, self.in_channels
        for _ in self.dilations:
            total += c_in * self.channels * k3 + self.channels  # conv
            total += 2 * self.channels  # bn gamma, beta
            c_in = self.channels
        total += c_in * self.classes + self.classes  # 1x1x1 head
        return total

    def activation_bytes(self, side: int = 256, bytes_per_value: int = 4) -> int:
        """Memory of one hidden activation tensor for a ``side``^3 input (batch 1)."""
        return self.channels * side**3 * bytes_per_value

    def to_dict(self) -> dict:
        return {
            "channels": self.channels,
            "classes": self.classes,
            "in_channels": self.in_channels,
            "dilations": list(self.dilations),
            "kernel_size": self.kernel_size,
            "parameters": self.parameter_count,
        }
