"""A release plan: what one publish will send, computed from the release folder alone.

Built first and printed by ``--dry-run``, then executed by :func:`meshrelease.publish.hub.push_release`
(plan, then act). Every file is hashed here, and checked against the manifest, before any request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import IntegrityError, PublishError

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class ReleaseFile:
    """One file of the release folder, as it will be committed."""

    path: str  # relative, with '/' separators
    local_path: Path
    sha256: str
    git_oid: str  # git blob id of the content (how the Hub names non-LFS files)
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass
class ReleasePlan:
    """Where and what to publish: one commit with every file, then one tag."""

    folder: Path
    repo_id: str
    tag: str
    endpoint: str  # "embedded" for the in-process local hub until it is started
    files: list[ReleaseFile]
    manifest: dict[str, Any]
    private: bool = False
    force: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def commit_message(self) -> str:
        variant = self.manifest.get("variant") or self.manifest.get("name") or self.folder.parent.name
        return f"Release {self.tag}: {variant}"

    @property
    def commit_description(self) -> str:
        return describe_manifest(self.manifest, self.tag, self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo_id,
            "endpoint": self.endpoint,
            "tag": self.tag,
            "folder": str(self.folder),
            "private": self.private,
            "force": self.force,
            "commit_message": self.commit_message,
            "files": [f.to_dict() for f in self.files],
            "total_size": self.total_size,
            "notes": list(self.notes),
        }


def git_blob_oid_file(path: Path) -> tuple[str, str, int]:
    """(sha256, git blob sha1, size) of a file, read once."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            sha256.update(block)
            sha1.update(block)
    return sha256.hexdigest(), sha1.hexdigest(), size


def read_release_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise PublishError(f"{folder} is not a release folder: it has no {MANIFEST_NAME}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise PublishError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise PublishError(f"{path} has no 'files' list")
    return data


def plan_release(
    folder: Path, repo_id: str, tag: str, endpoint: str, *, private: bool = False, force: bool = False
) -> ReleasePlan:
    """Hash every file of ``folder`` and check the manifest's sha256 and sizes; nothing is sent."""
    folder = Path(folder)
    manifest = read_release_manifest(folder)
    if manifest.get("passed") is False:
        raise PublishError(f"{folder}: the manifest records failed checks; only a passing build can be published")
    if manifest.get("tag") not in (None, tag):
        raise PublishError(f"{folder} was built as {manifest['tag']!r}, not {tag!r}; rebuild it with --tag {tag}")
    files: list[ReleaseFile] = []
    for path in sorted(p for p in folder.rglob("*") if not p.is_dir()):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink() or not path.is_file():
            raise PublishError(f"{folder}: {rel} is not a regular file; a release folder holds plain files only")
        sha256, oid, size = git_blob_oid_file(path)
        files.append(ReleaseFile(rel, path, sha256, oid, size))
    by_path = {f.path: f for f in files}
    listed: set[str] = set()
    for entry in manifest["files"]:
        rel = str(entry.get("path", ""))
        listed.add(rel)
        have = by_path.get(rel)
        if have is None:
            raise IntegrityError(f"{folder}: {rel} is listed in the manifest but missing from the release folder")
        if entry.get("sha256") != have.sha256 or ("size" in entry and entry["size"] != have.size):
            raise IntegrityError(
                f"{folder}: {rel} has sha256 {have.sha256} ({have.size} bytes) but the manifest records "
                f"{entry.get('sha256')} ({entry.get('size')} bytes)"
            )
    extra = sorted(set(by_path) - listed - {MANIFEST_NAME})
    plan = ReleasePlan(folder, repo_id, tag, endpoint, files, manifest, private=private, force=force)
    if extra:
        plan.notes.append(f"not in the manifest (published as is): {', '.join(extra)}")
    return plan


def describe_manifest(manifest: dict[str, Any], tag: str, files: list[ReleaseFile]) -> str:
    """The commit description: a readable summary of the manifest (files, parity, sizes, provenance)."""
    lines = [f"meshrelease {manifest.get('variant') or manifest.get('name', '')} {tag}".strip()]
    if manifest.get("description"):
        lines.append(str(manifest["description"]))
    lines += ["", "Files:"]
    lines += [f"- {f.path} ({f.size:,} bytes, sha256 {f.sha256})" for f in files]
    parity = manifest.get("parity") or []
    if parity:
        passed = sum(1 for p in parity if p.get("passed"))
        lines += ["", f"Parity vs PyTorch: {passed}/{len(parity)} checks passed"]
        for p in parity:
            lines.append(
                f"- {p.get('artifact')} on {p.get('input')}: max |dlogit| {p.get('max_abs', float('nan')):.2e}, "
                f"agreement {p.get('agreement', float('nan')):.4%}"
            )
    sizes = manifest.get("sizes") or []
    if sizes:
        ok = sum(1 for s in sizes if s.get("passed", True))
        lines += ["", f"Size budgets: {ok}/{len(sizes)} within budget"]
    source = (manifest.get("provenance") or {}).get("checkpoint") or (manifest.get("provenance") or {}).get("source")
    if isinstance(source, dict) and source.get("sha256"):
        lines += ["", f"Checkpoint sha256: {source['sha256']}"]
    return "\n".join(lines)
