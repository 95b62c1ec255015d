"""Parity of the ONNX artifacts against PyTorch on seeded random and real-MRI inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .mri import center_crop, random_volume
from .parity import ParityResult, Thresholds, compare_logits
from .runtimes import onnx_logits, onnx_session, torch_logits


@dataclass(frozen=True)
class ParityInput:
    name: str  # e.g. "random 32^3 (seed 0)" or "t1_crop.nii.gz centre 96^3"
    volume: np.ndarray


def parity_inputs(samples: dict[str, np.ndarray], crop: int, random_size: int, seed: int) -> list[ParityInput]:
    """(a) a seeded random volume, (b) a centre crop of each conformed real-MRI sample."""
    inputs = [ParityInput(f"random {random_size}³ seed {seed}", random_volume(random_size, seed))]
    for label, vol in samples.items():
        c = center_crop(vol, crop)
        side = c.shape[0] if len(set(c.shape)) == 1 else "x".join(map(str, c.shape))
        inputs.append(ParityInput(f"{label} centre {side}{'³' if isinstance(side, int) else ''}", c))
    return inputs


class ReferenceCache:
    """PyTorch logits per input, computed once and shared by every artifact's comparison."""

    def __init__(self, model) -> None:
        self.model = model
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, inp: ParityInput) -> np.ndarray:
        if inp.name not in self._cache:
            self._cache[inp.name] = torch_logits(self.model, inp.volume)
        return self._cache[inp.name]


def onnx_parity(
    path: Path,
    *,
    artifact: str,
    precision: str,
    inputs: list[ParityInput],
    reference: Callable[[ParityInput], np.ndarray],
    thresholds: Thresholds,
) -> list[ParityResult]:
    """Run one ONNX file in onnxruntime on every input and compare with PyTorch."""
    session = onnx_session(path)
    return [
        compare_logits(reference(inp), onnx_logits(session, inp.volume), artifact=artifact, precision=precision,
                       input_name=inp.name, thresholds=thresholds, runtime="onnxruntime")
        for inp in inputs
    ]
