"""Re-run ONNX and TF.js parity on a release as downloaded from the Hub.

The reference is the PyTorch model rebuilt from the checkpoint the manifest records (pinned to
its sha256, so a different file is refused), the inputs and thresholds are the ones the build
used (``settings`` in the manifest). So ``meshrelease verify`` repeats the build's checks on the
bytes a downstream app would get.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoint.load import build_model, read_state_dict
from ..checkpoint.pull import pull_checkpoint
from ..config import load_config
from ..errors import VerificationError
from ..export.tfjs_artifacts import rerun_tfjs_parity
from ..verify.mri import load_sample
from ..verify.onnx_parity import ReferenceCache, onnx_parity, parity_inputs
from ..verify.parity import DEFAULT_THRESHOLDS, ParityResult, Thresholds


def rerun_parity(
    folder: Path,
    manifest: dict[str, Any],
    *,
    checkpoint: str | None = None,
    samples: list[str] | None = None,
    config_path: str | None = None,
) -> list[ParityResult]:
    """Parity of every ONNX file listed in ``manifest`` (files under ``folder``) against PyTorch.

    ``checkpoint`` overrides the recorded source location (the sha256 pin still applies);
    ``samples`` overrides the real-MRI volumes (default: the config's samples the build used).
    Raises VerificationError naming the first failure.
    """
    cfg = load_config(config_path)
    variant = cfg.variant(str(manifest.get("variant")))
    source = (manifest.get("provenance") or {}).get("source") or {}
    uri = checkpoint or source.get("uri")
    if not uri:
        raise VerificationError("the manifest records no checkpoint source; pass --checkpoint to re-run parity")
    src = pull_checkpoint(uri, source.get("sha256"))
    model = build_model(read_state_dict(src.path, src.uri), variant.spec, variant.name, variant.expected_params)
    settings = manifest.get("settings") or {}
    used = set(settings.get("samples") or [])
    paths = samples if samples is not None else [s for s in cfg.samples if Path(s).name in used]
    volumes = {Path(p).name: load_sample(p) for p in paths}
    inputs = parity_inputs(volumes, int(settings.get("crop", cfg.crop)), int(settings.get("random_size", cfg.random_size)),
                           int(settings.get("seed", cfg.seed)))
    thresholds = {p: Thresholds(**t) for p, t in (settings.get("thresholds") or {}).items()}
    reference = ReferenceCache(model)
    results: list[ParityResult] = []
    for entry in manifest.get("files") or []:
        if entry.get("format") != "onnx":
            continue
        precision = str(entry.get("precision"))
        results += onnx_parity(folder / entry["path"], artifact=entry["path"], precision=precision, inputs=inputs,
                               reference=reference,
                               thresholds=thresholds.get(precision, DEFAULT_THRESHOLDS.get(precision, Thresholds())))
    if not results:
        raise VerificationError("the release lists no ONNX files; nothing to re-run parity on")
    results += rerun_tfjs_parity(folder, manifest, model, paths)
    failures = [f for r in results for f in r.failures]
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise VerificationError(f"parity of the downloaded release failed: {failures[0]}{more}")
    return results
