"""Parity of an exported artifact against the PyTorch model, measured on logits and labels."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Thresholds:
    """Pass criteria; ``None`` means not checked."""

    max_abs: float | None = None
    agreement: float | None = None
    dice: float | None = None
    # Dice of a few hundred voxels swings by percents on a handful of boundary voxels: below this many
    # reference foreground voxels it is reported but not judged (agreement still is).
    min_foreground: int | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "fp32": Thresholds(max_abs=1e-4, agreement=1.0),
    "fp16": Thresholds(agreement=0.999),
    "int8": Thresholds(agreement=0.995, dice=0.98, min_foreground=1000),
}


@dataclass
class ParityResult:
    """One artifact on one input."""

    artifact: str
    precision: str
    input: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    agreement: float
    dice: float
    thresholds: Thresholds = field(default_factory=Thresholds)
    runtime: str = "onnxruntime"
    foreground: int = 0  # reference foreground (label != 0) voxels
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {
            "artifact": self.artifact,
            "precision": self.precision,
            "runtime": self.runtime,
            "input": self.input,
            "shape": list(self.shape),
            "max_abs": self.max_abs,
            "mean_abs": self.mean_abs,
            "agreement": self.agreement,
            "dice": self.dice,
            "foreground_voxels": self.foreground,
            "thresholds": self.thresholds.to_dict(),
            "passed": self.passed,
            "failures": list(self.failures),
            **({"notes": list(self.notes)} if self.notes else {}),
        }


def foreground_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of the non-background (label != 0) voxels; 1.0 when both are empty."""
    fa, fb = a != 0, b != 0
    denom = int(fa.sum()) + int(fb.sum())
    if denom == 0:
        return 1.0
    return 2.0 * int(np.logical_and(fa, fb).sum()) / denom


def compare_logits(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    artifact: str,
    precision: str,
    input_name: str,
    thresholds: Thresholds,
    runtime: str = "onnxruntime",
    class_axis: int = 1,
) -> ParityResult:
    """Measure ``candidate`` against ``reference`` logits (same layout) and apply ``thresholds``."""
    if reference.shape != candidate.shape:
        raise ValueError(f"{artifact}: output shape {candidate.shape} != PyTorch {reference.shape}")
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    diff = np.abs(ref - cand)
    labels_ref = reference.argmax(axis=class_axis)
    labels_cand = candidate.argmax(axis=class_axis)
    result = ParityResult(
        artifact=artifact,
        precision=precision,
        input=input_name,
        shape=tuple(int(s) for s in reference.shape),
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        agreement=float((labels_ref == labels_cand).mean()),
        dice=foreground_dice(labels_ref, labels_cand),
        thresholds=thresholds,
        runtime=runtime,
        foreground=int((labels_ref != 0).sum()),
    )
    result.failures = check_thresholds(result)
    return result


def check_thresholds(r: ParityResult) -> list[str]:
    """Human-readable failures: which artifact, which number, which threshold."""
    t, out = r.thresholds, []
    where = f"{r.artifact} on {r.input}"
    if t.max_abs is not None and not r.max_abs <= t.max_abs:
        out.append(f"{where}: max |Δlogit| {r.max_abs:.3g} > {t.max_abs:.3g}")
    if t.agreement is not None and not r.agreement >= t.agreement:
        out.append(f"{where}: argmax agreement {r.agreement:.4%} < {t.agreement:.4%}")
    if t.dice is not None and not r.dice >= t.dice:
        if t.min_foreground is not None and r.foreground < t.min_foreground:
            note = (f"Dice {r.dice:.4f} not judged: {r.foreground} foreground voxels < {t.min_foreground} "
                    "(agreement is)")
            if note not in r.notes:
                r.notes.append(note)
        else:
            out.append(f"{where}: foreground Dice {r.dice:.4f} < {t.dice:.4f}")
    return out
