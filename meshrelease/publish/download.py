"""Downstream side of a release: fetch it by tag, check every file against its manifest, list tags.

Downloads always go through huggingface_hub (``snapshot_download``/``hf_hub_download``) into a
fresh temporary cache, so what is checked is what the Hub serves now, never a stale local copy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..errors import IntegrityError, OutputError, ReleaseNotFoundError, SourceError
from ..export.tfjs_artifacts import validate_release_tfjs
from .endpoint import HubSession
from .plan import MANIFEST_NAME, git_blob_oid_file


@dataclass
class FetchedRelease:
    """A release downloaded and checked: its folder, manifest and the commit the tag points at."""

    repo_id: str
    tag: str
    commit: str
    folder: Path
    manifest: dict[str, Any]
    files: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo_id, "tag": self.tag, "commit": self.commit, "folder": str(self.folder), "files": self.files}


def _source_error(what: str, exc: BaseException, session: HubSession, tag: str) -> Exception:
    repo = session.target.repo_id
    if isinstance(exc, RepositoryNotFoundError):
        return ReleaseNotFoundError(f"{what}: repo {repo} not found on {session.endpoint} (or the token may not read it)")
    if isinstance(exc, RevisionNotFoundError):
        return ReleaseNotFoundError(f"{what}: no release {tag} in {repo} on {session.endpoint}")
    if isinstance(exc, (EntryNotFoundError, LocalEntryNotFoundError)):
        return ReleaseNotFoundError(f"{what}: {repo}@{tag} has no {MANIFEST_NAME}; it is not a meshrelease release")
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        message = " ".join(str(getattr(exc, "server_message", "") or "").split())
        return SourceError(f"{what}: HTTP {status} from {session.endpoint}: {message}".rstrip(": "))
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return IntegrityError(f"{what}: a file of {repo}@{tag} arrived with the wrong size; the stored copy is damaged or tampered with")
    if isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError)):
        return SourceError(f"{what}: cannot reach {session.endpoint} ({type(exc).__name__})")
    return SourceError(f"{what}: {type(exc).__name__}: {' '.join(str(exc).split())}")


def check_against_manifest(folder: Path, manifest: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """Re-hash every file the manifest lists; IntegrityError naming the first mismatch."""
    checked = []
    for entry in manifest.get("files") or []:
        rel = str(entry.get("path", ""))
        path = folder / rel
        if not path.is_file():
            raise IntegrityError(f"{where}: {rel} is listed in the manifest but was not downloaded")
        sha256, _, size = git_blob_oid_file(path)
        if sha256 != entry.get("sha256") or size != entry.get("size", size):
            raise IntegrityError(
                f"{where}: {rel} has sha256 {sha256} ({size} bytes) but the manifest says {entry.get('sha256')} "
                f"({entry.get('size')} bytes); the stored file is damaged or tampered with"
            )
        checked.append({"path": rel, "sha256": sha256, "size": size, "ok": True})
    return checked


@contextmanager
def fetch_release(session: HubSession, tag: str) -> Iterator[FetchedRelease]:
    """Download ``repo@tag`` into a fresh temporary cache and check it; the folder lives inside the block."""
    repo = session.target.repo_id
    where = f"{repo}@{tag}"
    with tempfile.TemporaryDirectory(prefix="meshrelease-fetch-") as tmp:
        try:
            info = session.api.repo_info(repo, revision=tag)
            commit = str(info.sha)
            snapshot = Path(
                snapshot_download(
                    repo, revision=commit, endpoint=session.endpoint, token=session.token or False,
                    cache_dir=Path(tmp) / "cache",
                )
            )
        except Exception as exc:  # the client raises many kinds; each becomes one line
            raise _source_error(f"download {where}", exc, session, tag) from None
        manifest_path = snapshot / MANIFEST_NAME
        if not manifest_path.is_file():
            raise ReleaseNotFoundError(f"download {where}: it has no {MANIFEST_NAME}; it is not a meshrelease release")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise IntegrityError(f"{where}: {MANIFEST_NAME} is not valid JSON") from None
        files = check_against_manifest(snapshot, manifest, where)
        validate_release_tfjs(snapshot, manifest)  # the bytes match; the TF.js folder must also load
        yield FetchedRelease(repo, tag, commit, snapshot, manifest, files)


def pull_release(session: HubSession, tag: str, dest: Path) -> FetchedRelease:
    """Download and check a release, then place its files in ``dest`` (written only if every check passed)."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()) and not (dest / MANIFEST_NAME).is_file():
        raise OutputError(f"{dest} exists and is not an earlier pull of a release; choose an empty or new folder")
    with fetch_release(session, tag) as fetched:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        except OSError as e:
            raise OutputError(f"cannot write {dest}: {e.strerror or e}") from None
        try:
            for src in sorted(fetched.folder.rglob("*")):
                if src.is_file():
                    target = staging / src.relative_to(fetched.folder)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, target)  # follows the cache's symlinks to the blob
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return FetchedRelease(fetched.repo_id, tag, fetched.commit, dest, fetched.manifest, fetched.files)


def list_releases(session: HubSession) -> list[dict[str, Any]]:
    """Every tag of the repo with its manifest summary (variant, files, parity), newest name last."""
    repo = session.target.repo_id
    try:
        refs = session.api.list_repo_refs(repo)
    except Exception as exc:
        raise _source_error(f"list releases of {repo}", exc, session, "") from None
    out = []
    with tempfile.TemporaryDirectory(prefix="meshrelease-releases-") as tmp:
        for t in sorted(refs.tags, key=lambda t: t.name):
            item: dict[str, Any] = {"tag": t.name, "commit": t.target_commit}
            try:
                path = hf_hub_download(
                    repo, MANIFEST_NAME, revision=t.target_commit, endpoint=session.endpoint,
                    token=session.token or False, cache_dir=Path(tmp),
                )
                m = json.loads(Path(path).read_text(encoding="utf-8"))
            except (EntryNotFoundError, LocalEntryNotFoundError, ValueError):
                item["manifest"] = None
            except Exception as exc:
                raise _source_error(f"list releases of {repo}", exc, session, t.name) from None
            else:
                parity = m.get("parity") or []
                item["manifest"] = {
                    "variant": m.get("variant"),
                    "created": m.get("created"),
                    "passed": m.get("passed"),
                    "files": len(m.get("files") or []),
                    "size": sum(int(f.get("size", 0)) for f in m.get("files") or []),
                    "parity": f"{sum(1 for p in parity if p.get('passed'))}/{len(parity)}",
                    "checkpoint_sha256": ((m.get("provenance") or {}).get("source") or {}).get("sha256"),
                }
            out.append(item)
    return out
