"""``hf://OWNER/REPO/path/in/repo.pt@REV`` checkpoint sources, fetched with ``hf_hub_download``.

Works against the real Hub or any ``HF_ENDPOINT`` (the embedded/local hub included: Xet and
telemetry are switched off for a local endpoint). ``@REV`` is a tag, branch or commit; without
it, ``main``. The file lands in huggingface_hub's cache; its sha256 is computed here and checked
against the pin before anything loads it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import SourceError
from .pull import CheckpointSource, ProgressFn, check_pin, sha256_file

_HF_URI = re.compile(r"^hf://(?P<repo>[^/@]+/[^/@]+)/(?P<path>[^@]+?)(?:@(?P<rev>[^@/][^@]*))?$")


def parse_hf_uri(uri: str) -> tuple[str, str, str]:
    """(repo_id, path in repo, revision) of an ``hf://`` URI; SourceError when malformed."""
    m = _HF_URI.match(uri)
    if not m or any(seg in ("", ".", "..") for seg in m["path"].split("/")):
        raise SourceError(f"checkpoint {uri}: expected hf://OWNER/REPO/path/in/repo.pt[@REV]")
    return m["repo"], m["path"], m["rev"] or "main"


def pull_hf(uri: str, pin: str | None, progress: ProgressFn | None = None) -> CheckpointSource:
    """Download the file named by an ``hf://`` URI and return it with its sha256 (checked against ``pin``)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from ..publish.endpoint import DEFAULT_ENDPOINT, client_settings

    repo_id, path, revision = parse_hf_uri(uri)
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    try:
        with client_settings(endpoint):
            local = Path(hf_hub_download(repo_id, path, revision=revision, endpoint=endpoint))
    except RepositoryNotFoundError:
        raise SourceError(f"checkpoint {uri}: repo {repo_id} not found on {endpoint} (or no access)") from None
    except RevisionNotFoundError:
        raise SourceError(f"checkpoint {uri}: revision {revision} not found in {repo_id}") from None
    except (EntryNotFoundError, LocalEntryNotFoundError):
        raise SourceError(f"checkpoint {uri}: {path} not found in {repo_id}@{revision} on {endpoint}") from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", "?")
        raise SourceError(f"checkpoint {uri}: HTTP {status} from {endpoint}") from None
    except OSError as e:
        raise SourceError(f"checkpoint {uri}: download failed ({' '.join(str(e).split())})") from None
    size = local.stat().st_size
    if progress is not None:
        progress(size, size)
    digest = sha256_file(local)
    check_pin(uri, digest, pin)
    return CheckpointSource(uri=uri, kind="hf", path=local, sha256=digest, size=size)
