"""The release record: one object that every pipeline stage reads and extends.

checkpoint -> model -> export -> verify -> document -> publish each take the record, add what
they produced (artifacts, parity results, size checks, documents) and hand it on. The manifest
is this record serialised.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint.pull import CheckpointSource
from .config import VariantConfig
from .verify.parity import ParityResult

MANIFEST_NAME = "manifest.json"
REPORT_NAME = "report.md"


@dataclass
class Artifact:
    """A file of the release, relative to the release folder."""

    path: str
    format: str
    precision: str
    sha256: str
    size: int
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "precision": self.precision, "sha256": self.sha256,
                "size": self.size, **({"meta": self.meta} if self.meta else {})}


@dataclass
class SizeCheck:
    artifact: str
    size: int
    budget: int
    rule: str

    @property
    def passed(self) -> bool:
        return self.size <= self.budget

    def to_dict(self) -> dict:
        return {"artifact": self.artifact, "bytes": self.size, "budget": self.budget, "rule": self.rule,
                "ratio": round(self.size / self.budget, 4), "passed": self.passed}


@dataclass
class Release:
    """Everything known about one release build, as it flows through the stages."""

    variant: VariantConfig
    tag: str
    workdir: Path  # staging folder the stages write into
    source: CheckpointSource | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    parity: list[ParityResult] = field(default_factory=list)
    sizes: list[SizeCheck] = field(default_factory=list)
    estimates: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    documents: list[Artifact] = field(default_factory=list)  # card, report, BrainChop metadata
    metrics: dict[str, Any] | None = None  # test metrics from the checkpoint's results.json (model card)
    out_dir: Path | None = None  # final folder, set when the build is committed

    @property
    def spec(self):
        return self.variant.spec

    def add_file(self, relpath: str, fmt: str, precision: str = "n/a", *, document: bool = False, **meta: Any) -> Artifact:
        """Register a file already written under ``workdir``; hashes it now."""
        path = self.workdir / relpath
        data = path.read_bytes()
        entry = Artifact(path=relpath, format=fmt, precision=precision, sha256=hashlib.sha256(data).hexdigest(),
                         size=len(data), meta=dict(meta))
        target = self.documents if document else self.artifacts
        target[:] = [a for a in target if a.path != relpath] + [entry]
        return entry

    def artifact(self, relpath: str) -> Artifact:
        for a in self.artifacts + self.documents:
            if a.path == relpath:
                return a
        raise KeyError(relpath)

    @property
    def failures(self) -> list[str]:
        out = [f for r in self.parity for f in r.failures]
        out += [f"{s.artifact}: {s.size:,} bytes > budget {s.budget:,} ({s.rule})" for s in self.sizes if not s.passed]
        return out

    @property
    def passed(self) -> bool:
        return not self.failures
