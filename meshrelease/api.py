"""Python API: what the original export spec promised, with its mistakes fixed.

- validation runs at a shape the model accepts (any N, D, H, W: the exports are fully dynamic),
- the fp16 file keeps float32 inputs and outputs,
- the int8 file actually loads and runs in onnxruntime on CPU.

>>> from meshrelease.api import ExportConfig, export_model
>>> paths = export_model(model, ExportConfig(output_dir="out"))      # {"onnx": ..., "onnx_fp16": ..., ...}
>>> report = validate_onnx(model, paths["onnx"])                      # ParityResult
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from .config import INT8_METHODS
from .errors import ConfigError
from .export.onnx_graph import build_fp32_model, check_and_save, layers_from_model
from .export.quantize import make_int8, to_fp16
from .model.fold import fold_batchnorm
from .model.meshnet import MeshNet
from .verify.mri import random_volume
from .verify.parity import DEFAULT_THRESHOLDS, ParityResult, Thresholds, compare_logits
from .verify.runtimes import onnx_logits, onnx_session, torch_logits

FORMATS = ("onnx", "onnx_fp16", "onnx_int8", "tfjs")


@dataclass
class ExportConfig:
    """What :func:`export_model` writes, and how it checks it."""

    output_dir: str | Path = "export"
    formats: tuple[str, ...] = ("onnx", "onnx_fp16", "onnx_int8")
    opset: int = 17
    int8_method: str = "weight-only"
    validate: bool = True
    validation_shape: tuple[int, int, int] = (32, 32, 32)  # any D, H, W works
    seed: int = 0
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if bad := [f for f in self.formats if f not in FORMATS]:
            raise ConfigError(f"unknown export format(s) {', '.join(bad)} (choose from {', '.join(FORMATS)})")
        if self.int8_method not in INT8_METHODS:
            raise ConfigError(f"int8 method {self.int8_method!r} is not one of {', '.join(INT8_METHODS)}")


def export_to_onnx(model: MeshNet, path: str | Path, *, opset: int = 17, metadata: dict[str, str] | None = None) -> Path:
    """fp32 ONNX, BatchNorm folded, dynamic N/D/H/W, one self-contained file."""
    path = Path(path)
    check_and_save(build_fp32_model(fold_batchnorm(model), opset=opset, metadata=metadata), path)
    return path


def quantize_fp16(src: str | Path, dst: str | Path) -> Path:
    """fp16 weights with float32 input/output kept."""
    dst = Path(dst)
    check_and_save(to_fp16(onnx.load(str(src))), dst)
    return dst


def quantize_int8(src: str | Path, dst: str | Path, *, method: str = "weight-only",
                  calibration: list[np.ndarray] | None = None) -> Path:
    """int8 from an fp32 MeshNet ONNX file; ``method`` is weight-only (default), dynamic or static."""
    if method not in INT8_METHODS:
        raise ConfigError(f"int8 method {method!r} is not one of {', '.join(INT8_METHODS)}")
    fp32 = onnx.load(str(src))
    opset = next((o.version for o in fp32.opset_import if o.domain in ("", "ai.onnx")), 17)
    meta = {p.key: p.value for p in fp32.metadata_props}
    dst = Path(dst)
    check_and_save(make_int8(layers_from_model(fp32), fp32, method, opset=opset, metadata=meta, calibration=calibration), dst)
    return dst


def validate_onnx(model: MeshNet, path: str | Path, *, shape: tuple[int, int, int] = (32, 32, 32), seed: int = 0,
                  thresholds: Thresholds | None = None, precision: str = "fp32") -> ParityResult:
    """Compare an ONNX file with the PyTorch model on a seeded random volume of ``shape``."""
    volume = np.random.default_rng(seed).random(shape, dtype=np.float32) if shape else random_volume(32, seed)
    ref = torch_logits(model, volume)
    out = onnx_logits(onnx_session(path), volume)
    return compare_logits(ref, out, artifact=str(Path(path).name), precision=precision,
                          input_name=f"random {'x'.join(map(str, shape))} seed {seed}",
                          thresholds=thresholds or DEFAULT_THRESHOLDS.get(precision, Thresholds()))


def load_exported_model(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """An exported ONNX file as a function: float32 (N,1,D,H,W) -> logits (N,C,D,H,W)."""
    session = onnx_session(path)
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    return run


def export_model(model: MeshNet, config: ExportConfig | None = None) -> dict[str, Path]:
    """Write the requested formats into ``config.output_dir``; validate each against PyTorch when asked.

    Returns ``{format: path}`` (``tfjs`` maps to the folder holding model.json).
    Raises :class:`~meshrelease.errors.VerificationError` when a validated file misses its thresholds.
    """
    from .errors import VerificationError

    config = config or ExportConfig()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    layers = fold_batchnorm(model)
    fp32 = build_fp32_model(layers, opset=config.opset, metadata=config.metadata)
    paths: dict[str, Path] = {}
    if "onnx" in config.formats or "onnx_fp16" in config.formats or "onnx_int8" in config.formats:
        check_and_save(fp32, out / "model.onnx")
        paths["onnx"] = out / "model.onnx"
    if "onnx_fp16" in config.formats:
        paths["onnx_fp16"] = quantize_fp16(out / "model.onnx", out / "model_fp16.onnx")
    if "onnx_int8" in config.formats:
        check_and_save(make_int8(layers, fp32, config.int8_method, opset=config.opset, metadata=config.metadata,
                                 calibration=[random_volume(32, config.seed)]), out / "model_int8.onnx")
        paths["onnx_int8"] = out / "model_int8.onnx"
    if "tfjs" in config.formats:
        from .export.tfjs import export_pytorch_to_tfjs

        paths["tfjs"] = Path(export_pytorch_to_tfjs(model, out / "tfjs"))
    if config.validate:
        precision = {"onnx": "fp32", "onnx_fp16": "fp16", "onnx_int8": "int8"}
        for fmt, p in paths.items():
            if fmt in precision:
                r = validate_onnx(model, p, shape=config.validation_shape, seed=config.seed, precision=precision[fmt])
                if not r.passed:
                    raise VerificationError("; ".join(r.failures))
    if "onnx" not in config.formats:
        paths.pop("onnx", None)
    return paths
