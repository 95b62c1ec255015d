"""The release a new tag follows on its repo: what the model card's changelog compares against.

Every release is one commit on ``main`` plus a tag on it, so the previous release is the newest
commit of ``main`` that carries a tag other than the one being published (re-publishing a tag
therefore compares against the same predecessor every time, and renders the same card).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from ..errors import PublishError
from .endpoint import HubSession
from .hub import DEFAULT_BRANCH, hub_error
from .plan import MANIFEST_NAME


def previous_release_manifest(session: HubSession, tag: str) -> dict[str, Any] | None:
    """The manifest of the newest other tagged release on ``main``; ``None`` for a new repo or first tag."""
    repo = session.target.repo_id
    try:
        refs = session.api.list_repo_refs(repo)
    except RepositoryNotFoundError:
        return None  # the first publish creates the repo
    except Exception as exc:
        raise hub_error(f"read tags of {repo}", exc, session.endpoint) from None
    tagged: dict[str, list[str]] = {}
    for t in refs.tags:
        if t.name != tag:
            tagged.setdefault(t.target_commit, []).append(t.name)
    if not tagged:
        return None
    try:
        commits = session.api.list_repo_commits(repo, revision=DEFAULT_BRANCH)
    except RevisionNotFoundError:
        return None
    except Exception as exc:
        raise hub_error(f"read the history of {repo}", exc, session.endpoint) from None
    for commit in commits:
        names = tagged.get(commit.commit_id)
        if not names:
            continue
        with tempfile.TemporaryDirectory(prefix="meshrelease-previous-") as tmp:
            try:
                path = hf_hub_download(repo, MANIFEST_NAME, revision=commit.commit_id, endpoint=session.endpoint,
                                       token=session.token or False, cache_dir=tmp)
            except EntryNotFoundError:
                continue  # a tag that is not a meshrelease release
            except Exception as exc:
                raise hub_error(f"download {MANIFEST_NAME} of {repo}@{sorted(names)[0]}", exc, session.endpoint) from None
            try:
                manifest = json.loads(Path(path).read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise PublishError(f"{repo}@{sorted(names)[0]}: {MANIFEST_NAME} is not valid JSON") from None
        if isinstance(manifest, dict):
            return manifest
    return None
