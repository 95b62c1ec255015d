"""manifest.json (the record, machine-readable) and report.md (the same checks, for people)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

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


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "?"


def parity_markdown(parity: list[Mapping[str, Any]], heading: str = "###") -> list[str]:
    """Markdown table of manifest parity rows (also used for the GitHub step summary)."""
    if not parity:
        return []
    ok = sum(1 for p in parity if p.get("passed"))
    lines = [f"{heading} Parity against PyTorch: {ok}/{len(parity)} passed", "",
             "| artifact | runtime | input | max abs diff | argmax agreement | Dice | result |",
             "|---|---|---|--:|--:|--:|---|"]
    for p in parity:
        result = "pass" if p.get("passed") else "**FAIL**: " + "; ".join(p.get("failures") or [])
        lines.append(f"| `{p.get('artifact')}` | {p.get('runtime', '')} | {p.get('input')} | "
                     f"{_fmt(p.get('max_abs'), '.2e')} | {_fmt(p.get('agreement'), '.4%')} | "
                     f"{_fmt(p.get('dice'), '.4f')} | {result} |")
    return lines + [""]


def sizes_markdown(sizes: list[Mapping[str, Any]], heading: str = "###") -> list[str]:
    """Markdown table of manifest size checks."""
    if not sizes:
        return []
    ok = sum(1 for s in sizes if s.get("passed"))
    lines = [f"{heading} Sizes: {ok}/{len(sizes)} within budget", "",
             "| artifact | bytes | budget | rule | result |", "|---|--:|--:|---|---|"]
    for s in sizes:
        lines.append(f"| `{s.get('artifact')}` | {_fmt(s.get('bytes'), ',')} | {_fmt(s.get('budget'), ',')} | "
                     f"{s.get('rule', '')} | {'pass' if s.get('passed') else '**FAIL**'} |")
    return lines + [""]


def render_report(release: Release) -> str:
    """Markdown report of the parity and size checks."""
    src = release.source
    lines = [f"# {release.variant.name} {release.tag}: verification report", "",
             f"Source: `{src.to_dict()['uri'] if src else '?'}` sha256 `{src.sha256 if src else '?'}`", ""]
    lines += parity_markdown([r.to_dict() for r in release.parity], "##")
    lines += sizes_markdown([s.to_dict() for s in release.sizes], "##")
    est = release.estimates.get("activation_memory")
    if est:
        lines += [f"Activation memory at 256³: {est['bytes_per_activation_fp32'] / 2**30:.2f} GiB per hidden "
                  f"activation ({est['formula']}).", ""]
    lines += [f"Overall: {'PASS' if release.passed else 'FAIL'}", ""]
    return "\n".join(lines)


def write_report(release: Release) -> Path:
    path = release.workdir / REPORT_NAME
    path.write_text(render_report(release), encoding="utf-8")
    return path
