"""Parity of a TF.js layers-model with PyTorch, in BrainChop's orientation, in the real TF.js runtime.

The reference is PyTorch on the training preprocessing (RAS canonical, 256^3, min-max). The TF.js
model gets what BrainChop feeds it: the volume conformed like FreeSurfer (LIA voxel order, uint8)
and min-max normalised. Its output is mapped back to RAS and compared voxel for voxel with PyTorch
on the same region. The runtime is ``@tensorflow/tfjs`` in Node (``tfjs_node/run.mjs``); when Node
or its packages are missing the comparison runs on an in-Python re-implementation that re-reads
model.json + shards, and the result says so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SampleError, VerificationError
from ..export.orientation import check_axcodes, reorient_volume
from ..export.tfjs import BRAINCHOP_ORIENTATION, TRAINED_ORIENTATION
from .parity import DEFAULT_THRESHOLDS, ParityResult, Thresholds, compare_logits
from .tfjs_validate import LayersModel, validate_layers_model

RUNNER_DIR = Path(__file__).resolve().parent / "tfjs_node"
RUNNER_SCRIPT = RUNNER_DIR / "run.mjs"
DEFAULT_CROP = 32  # pure-JS TF.js: 26 channels take ~9 s at 32^3 on 2 cores, ~60x more at 128^3
DEFAULT_TIMEOUT_S = 300.0
# uint8 weights move logits by up to ~0.1: judged by labels, like the ONNX int8 artifact.
TFJS_THRESHOLDS = {"float32": DEFAULT_THRESHOLDS["fp32"], "float16": DEFAULT_THRESHOLDS["fp16"],
                   "uint8": Thresholds(agreement=0.995)}


@dataclass(frozen=True)
class RunnerStatus:
    available: bool
    reason: str  # why not, when not available


def node_runner_status() -> RunnerStatus:
    """Whether the Node TF.js runner can run here (node on PATH and ``npm ci`` done in tfjs_node/)."""
    node = shutil.which("node")
    if node is None:
        return RunnerStatus(False, "Node.js is not installed (no 'node' on PATH)")
    if not (RUNNER_DIR / "node_modules" / "@tensorflow" / "tfjs" / "package.json").is_file():
        return RunnerStatus(False, f"@tensorflow/tfjs is not installed (run 'npm ci' in {RUNNER_DIR})")
    return RunnerStatus(True, "")


def run_tfjs_node(model_dir: str | Path, volume: np.ndarray | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                  backend: str = "cpu") -> tuple[np.ndarray | None, dict]:
    """Load ``model_dir`` with ``tf.loadLayersModel`` in Node and run ``volume`` (D,H,W) through ``model.apply``.

    Returns channels-last logits (D,H,W,C) (``None`` when only loading) and the runner's summary.
    A load that does not finish within ``timeout_s`` (tfjs hangs on dangling inbound nodes) is killed.
    """
    status = node_runner_status()
    if not status.available:
        raise VerificationError(f"TF.js runner unavailable: {status.reason}")
    model_dir = Path(model_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="meshrelease-tfjs-") as tmp:
        cmd = ["node", str(RUNNER_SCRIPT), "--model", str(model_dir), "--backend", backend]
        if volume is not None:
            vol = np.ascontiguousarray(volume, dtype="<f4")
            (Path(tmp) / "in.f32").write_bytes(vol.tobytes())
            cmd += ["--input", str(Path(tmp) / "in.f32"), "--shape", ",".join(str(s) for s in vol.shape),
                    "--output", str(Path(tmp) / "out.f32")]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise VerificationError(
                f"{model_dir / 'model.json'}: TF.js did not finish loading/running within {timeout_s:g} s "
                "(tf.loadLayersModel hangs on an inbound node that names a missing layer)"
            ) from None
        if proc.returncode != 0:
            lines = [ln for ln in err.strip().splitlines() if ln.startswith("tfjs: ")] or err.strip().splitlines()[-1:]
            raise VerificationError(f"{model_dir / 'model.json'}: TF.js failed: {lines[-1] if lines else 'exit ' + str(proc.returncode)}")
        summary = json.loads(out.strip().splitlines()[-1])
        if volume is None:
            return None, summary
        shape = tuple(summary["output_shape"][1:])
        data = np.fromfile(Path(tmp) / "out.f32", dtype="<f4")
        return data.reshape(shape), summary


def run_tfjs_python(model: LayersModel, volume: np.ndarray) -> np.ndarray:
    """What tfjs computes, recomputed in PyTorch from the re-read model.json + shards: (D,H,W) -> (D,H,W,C)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None]
    with torch.inference_mode():
        for layer in model.chain():
            cfg = layer.config
            if layer.class_name == "Conv3D":
                if set(cfg.get("strides", [1, 1, 1])) != {1} or cfg.get("groups", 1) != 1:
                    raise VerificationError(f"{model.model_json}: layer '{layer.name}' uses strides/groups the Python runner does not implement")
                kernel = torch.from_numpy(model.weights[f"{layer.name}/kernel"]).permute(4, 3, 0, 1, 2).contiguous()
                bias = model.weights.get(f"{layer.name}/bias")
                dil = cfg.get("dilation_rate", [1, 1, 1])
                dil = [dil] * 3 if isinstance(dil, int) else dil
                if cfg.get("padding", "valid") == "same":
                    if any(k % 2 == 0 for k in kernel.shape[2:]):
                        raise VerificationError(f"{model.model_json}: layer '{layer.name}' has an even kernel with 'same' padding")
                    pad = [d * (k - 1) // 2 for d, k in zip(dil, kernel.shape[2:])]
                else:
                    pad = [0, 0, 0]
                x = F.conv3d(x, kernel, None if bias is None else torch.from_numpy(bias), padding=pad, dilation=dil)
            x = _activation(x, cfg.get("activation") or "linear", model, layer.name)
    return x[0].permute(1, 2, 3, 0).numpy()


def _activation(x, kind: str, model: LayersModel, name: str):
    import torch
    import torch.nn.functional as F

    fns = {"linear": lambda t: t, "relu": F.relu, "elu": F.elu, "gelu": F.gelu, "sigmoid": torch.sigmoid,
           "tanh": torch.tanh, "relu6": F.relu6, "selu": F.selu, "softplus": F.softplus}
    if kind not in fns:
        raise VerificationError(f"{model.model_json}: layer '{name}' activation {kind!r} is not implemented by the Python runner")
    return fns[kind](x)


def brainchop_conform(path: str | Path) -> np.ndarray:
    """The volume as BrainChop feeds it: conformed (256^3, 1 mm, LIA voxel order), then min-max to [0, 1].

    A volume already on a 256^3 1 mm grid (FreeSurfer's output, like the bundled T1) is only re-ordered
    to LIA, exactly, keeping its values. Any other volume is resampled once, the way training does
    (:func:`~meshrelease.verify.mri.load_sample`), and re-ordered to LIA, so parity measures the
    artifact and not two different resamplings.
    """
    import nibabel as nib
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    from .mri import CONFORMED_SHAPE, load_sample, minmax

    p = Path(path)
    try:
        img = nib.load(str(p))
    except Exception as exc:
        raise SampleError(f"sample {p}: not a readable NIfTI image ({type(exc).__name__})") from None
    if len(img.shape) == 4 and img.shape[3] == 1:
        img = img.slicer[..., 0]
    zooms = img.header.get_zooms()[:3]
    if img.shape == CONFORMED_SHAPE and all(abs(z - 1) < 1e-3 for z in zooms):
        ornt = ornt_transform(io_orientation(img.affine), axcodes2ornt(tuple(BRAINCHOP_ORIENTATION)))
        return minmax(np.ascontiguousarray(apply_orientation(np.asarray(img.dataobj), ornt), dtype=np.float32))
    return reorient_volume(load_sample(p), TRAINED_ORIENTATION, BRAINCHOP_ORIENTATION)


def crop_box(shape: tuple[int, ...], size: int, center: tuple[int, int, int] | None = None) -> tuple[slice, slice, slice]:
    """The cube of side ``size`` around ``center`` (default: the lead's ``center_crop`` box), kept inside ``shape``."""
    if center is None:
        starts = [max((s - size) // 2, 0) for s in shape[:3]]
    else:
        starts = [min(max(int(c) - size // 2, 0), max(s - size, 0)) for c, s in zip(center, shape[:3])]
    return tuple(slice(st, min(st + size, s)) for st, s in zip(starts, shape[:3]))  # type: ignore[return-value]


def reorient_box(box: tuple[slice, slice, slice], shape: tuple[int, ...], source: str, target: str) -> tuple[slice, ...]:
    """The same voxels' box after re-ordering a volume of ``shape`` from ``source`` to ``target`` voxel order."""
    from nibabel.orientations import axcodes2ornt, ornt_transform

    ornt = ornt_transform(axcodes2ornt(tuple(check_axcodes(source))), axcodes2ornt(tuple(check_axcodes(target))))
    out: list[slice] = [slice(0)] * 3
    for axis, (new_axis, flip) in enumerate(ornt.astype(int)):
        sl, n = box[axis], shape[axis]
        out[new_axis] = slice(n - sl.stop, n - sl.start) if flip < 0 else sl
    return tuple(out)


@dataclass
class TfjsParity:
    """One TF.js artifact compared with PyTorch, and how it was run."""

    result: ParityResult
    runner: str  # "node" or "python"
    fallback_reason: str | None
    seconds: float
    orientation: dict

    def to_dict(self) -> dict:
        return {**self.result.to_dict(), "runner": self.runner, "fallback_reason": self.fallback_reason,
                "seconds": round(self.seconds, 3), "orientation": self.orientation}


def tfjs_parity(
    model_dir: str | Path,
    reference_model,
    sample: str | Path | None,
    *,
    artifact: str = "tfjs/model.json",
    crop: int = DEFAULT_CROP,
    center: tuple[int, int, int] | None = None,
    thresholds: Thresholds | None = None,
    runner: str = "auto",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    random_seed: int = 0,
) -> TfjsParity:
    """Compare the TF.js model in ``model_dir`` (fed like BrainChop) with PyTorch (fed like training).

    The crop is the cube of side ``crop`` around ``center`` (RAS voxel index; default the volume centre);
    TF.js gets the same voxels cut from BrainChop's LIA array, whatever the model's metadata claims.
    Without a ``sample`` a seeded random RAS volume is used, re-ordered to LIA for TF.js.
    ``runner``: ``"node"`` (fail if unavailable), ``"python"``, or ``"auto"`` (Node when available,
    else the Python re-implementation, with the reason recorded).
    """
    from .mri import load_sample, random_volume
    from .runtimes import torch_logits

    model = validate_layers_model(model_dir)
    meta = model.metadata.get("meshrelease", {})
    declared = meta.get("input_orientation", BRAINCHOP_ORIENTATION)
    trained = meta.get("trained_orientation", TRAINED_ORIENTATION)
    thresholds = thresholds or TFJS_THRESHOLDS.get(model.precision, DEFAULT_THRESHOLDS["fp32"])

    if sample is not None:
        ras = load_sample(sample)  # training preprocessing (RAS)
        fed_volume = brainchop_conform(sample)  # BrainChop preprocessing (LIA)
        box = crop_box(ras.shape, crop, center)
        where = "centre" if center is None else "at " + "x".join(str(b.start) for b in box)
        name = f"{Path(sample).name} {where} {ras[box].shape[0]}³ fed {BRAINCHOP_ORIENTATION} (BrainChop)"
    else:
        ras = random_volume(crop, random_seed)
        fed_volume = reorient_volume(ras, TRAINED_ORIENTATION, BRAINCHOP_ORIENTATION)
        box = crop_box(ras.shape, crop)
        name = f"random {crop}³ seed {random_seed} fed {BRAINCHOP_ORIENTATION}"
    fed_box = reorient_box(box, ras.shape, TRAINED_ORIENTATION, BRAINCHOP_ORIENTATION)
    ras_crop = np.ascontiguousarray(ras[box])
    fed_crop = np.ascontiguousarray(fed_volume[fed_box])
    reference = torch_logits(reference_model, reorient_volume(ras_crop, TRAINED_ORIENTATION, trained))
    reference = np.moveaxis(reorient_volume(np.moveaxis(reference[0], 0, -1), trained, TRAINED_ORIENTATION), -1, 0)[None]

    status = node_runner_status()
    use_node = runner == "node" or (runner == "auto" and status.available)
    reason = None if use_node else (status.reason if runner == "auto" else "Python runner requested")
    start = time.perf_counter()
    if use_node:
        out, summary = run_tfjs_node(model.directory, fed_crop, timeout_s=timeout_s)
        label = f"tfjs {summary['tfjs']} ({summary['backend']}, Node)"
    else:
        out = run_tfjs_python(model, fed_crop)
        label = f"python re-implementation of tfjs ({reason})"
    seconds = time.perf_counter() - start
    # TF.js output is (D,H,W,C) in BrainChop's voxel order: back to RAS, then (1,C,D,H,W)
    back = reorient_volume(out, BRAINCHOP_ORIENTATION, TRAINED_ORIENTATION)
    candidate = np.moveaxis(back, -1, 0)[None]
    precision = {"float32": "fp32", "float16": "fp16"}.get(model.precision, model.precision)
    result = compare_logits(reference, candidate, artifact=artifact, precision=precision, input_name=name,
                            thresholds=thresholds, runtime=label)
    return TfjsParity(result, "node" if use_node else "python", reason, seconds,
                      {"fed": BRAINCHOP_ORIENTATION, "declared_input": declared, "trained": trained,
                       "reference": TRAINED_ORIENTATION})
