"""manifest.json (the record, machine-readable) and report.md (the same checks, for people)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from ..record import MANIFEST_NAME, REPORT_NAME, Release

MANIFEST_VERSION = 1


def build_time() -> str:
    """UTC build time, from SOURCE_DATE_EPOCH when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    ts = int(epoch) if epoch and epoch.isdigit() else int(time.time())
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def manifest_dict(release: Release) -> dict:
    v = release.variant
    files = sorted(release.artifacts + release.documents, key=lambda a: a.path)
    return {
        "manifest_version": MANIFEST_VERSION,
        "name": v.name,
        "variant": v.name,
        "tag": release.tag,
        "description": v.description,
        "created": build_time(),
        "architecture": {"family": "MeshNet", **release.spec.to_dict()},
        "labels": list(v.labels),
        "input": {
            "layout": "NCDHW (ONNX) / NDHWC (TF.js)",
            "orientation": "RAS (ONNX); see tfjs metadata for BrainChop",
            "preprocessing": "nibabel as_closest_canonical (RAS) -> 256^3 at 1 mm -> min-max to [0, 1]",
            "dtype": "float32",
        },
        "settings": release.settings,
        "files": [a.to_dict() for a in files],
        "parity": [r.to_dict() for r in release.parity],
        "sizes": [s.to_dict() for s in release.sizes],
        "estimates": release.estimates,
        "metrics": release.metrics,
        "passed": release.passed,
        "provenance": release.provenance,
        "timings": {k: round(v, 3) for k, v in release.timings.items()},
    }


def write_manifest(release: Release) -> Path:
    path = release.workdir / MANIFEST_NAME
    path.write_text(json.dumps(manifest_dict(release), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))


def render_report(release: Release) -> str:
    """Markdown report of the parity and size checks."""
    lines = [f"# {release.variant.name} {release.tag}: verification report", ""]
    lines.append(f"Source: `{release.source.uri if release.source else '?'}` sha256 `{release.source.sha256 if release.source else '?'}`")
    lines += ["", "## Parity against PyTorch (eval mode)", "",
              "| artifact | runtime | input | max abs diff | mean abs diff | argmax agreement | foreground Dice | result |",
              "|---|---|---|---|---|---|---|---|"]
    for r in release.parity:
        lines.append(f"| {r.artifact} | {r.runtime} | {r.input} | {r.max_abs:.3g} | {r.mean_abs:.3g} | {r.agreement:.4%} | "
                     f"{r.dice:.4f} | {'pass' if r.passed else 'FAIL: ' + '; '.join(r.failures)} |")
    lines += ["", "## Sizes", "", "| artifact | bytes | budget | rule | result |", "|---|---|---|---|---|"]
    for s in release.sizes:
        lines.append(f"| {s.artifact} | {s.size:,} | {s.budget:,} | {s.rule} | {'pass' if s.passed else 'FAIL'} |")
    est = release.estimates.get("activation_memory")
    if est:
        lines += ["", f"Activation memory at 256^3: {est['bytes_per_activation_fp32'] / 2**30:.2f} GiB per hidden "
                  f"activation ({est['formula']})."]
    lines += ["", f"Overall: {'PASS' if release.passed else 'FAIL'}", ""]
    return "\n".join(lines)


def write_report(release: Release) -> Path:
    path = release.workdir / REPORT_NAME
    path.write_text(render_report(release), encoding="utf-8")
    return path
