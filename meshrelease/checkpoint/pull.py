"""Fetch a checkpoint from a local path, an http(s) URL or (see hf_source) the Hub.

Remote downloads are streamed into a content-addressed cache (``<cache>/checkpoints/<sha256>``);
with a sha256 pin a cached copy is used without touching the network, and any content whose
hash differs from the pin is refused before it is loaded.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, IntegrityError, SourceError

ProgressFn = Callable[[int, "int | None"], None]
"""Called with (bytes done, total bytes or None) while downloading."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CheckpointSource:
    """Where a checkpoint came from and what it is, byte for byte."""

    uri: str  # as the user gave it (path or URL)
    kind: str  # "local" | "http" | "hf"
    path: Path  # a local file holding exactly the bytes hashed below
    sha256: str
    size: int

    def to_dict(self) -> dict:
        """What the manifest records. A local path is stored relative to the working directory: an
        absolute path would leak the build machine's layout and make two clones build different manifests."""
        uri = os.path.relpath(Path(self.uri).resolve(), Path.cwd()) if self.kind == "local" else self.uri
        return {"uri": uri, "kind": self.kind, "sha256": self.sha256, "size": self.size}


def cache_root() -> Path:
    """meshrelease's cache folder (``MESHRELEASE_CACHE`` or ``~/.cache/meshrelease``)."""
    env = os.environ.get("MESHRELEASE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "meshrelease"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def normalise_pin(pin: str | None) -> str | None:
    if pin is None or pin == "":
        return None
    value = pin.lower().removeprefix("sha256:")
    if not _SHA256.match(value):
        raise ConfigError(f"sha256 pin {pin!r} is not 64 hex digits")
    return value


def check_pin(uri: str, actual: str, pin: str | None) -> None:
    if pin is not None and actual != pin:
        raise IntegrityError(f"checkpoint {uri}: sha256 {actual} does not match the pinned {pin}; refusing to load it")


def pull_checkpoint(uri: str, sha256: str | None = None, *, progress: ProgressFn | None = None) -> CheckpointSource:
    """Resolve ``uri`` to a local file whose sha256 is known (and equal to ``sha256`` when pinned)."""
    pin = normalise_pin(sha256)
    if uri.startswith(("http://", "https://")):
        return _pull_http(uri, pin, progress)
    if uri.startswith("hf://"):
        from .hf_source import pull_hf

        return pull_hf(uri, pin, progress)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", uri):
        raise SourceError(f"checkpoint {uri}: unsupported scheme (use a local path, http(s)://, or hf://)")
    path = Path(uri).expanduser()
    if not path.exists():
        raise SourceError(f"checkpoint {uri}: no such file")
    if not path.is_file():
        raise SourceError(f"checkpoint {uri}: not a regular file")
    digest = sha256_file(path)
    check_pin(uri, digest, pin)
    return CheckpointSource(uri=uri, kind="local", path=path, sha256=digest, size=path.stat().st_size)


def cached_blob(digest: str) -> Path:
    return cache_root() / "checkpoints" / digest


def store_in_cache(tmp: Path, digest: str) -> Path:
    """Move a verified download into the content-addressed cache (atomic rename)."""
    dest = cached_blob(digest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    return dest


def _pull_http(url: str, pin: str | None, progress: ProgressFn | None) -> CheckpointSource:
    if pin is not None and cached_blob(pin).is_file() and sha256_file(cached_blob(pin)) == pin:
        cached = cached_blob(pin)
        return CheckpointSource(uri=url, kind="http", path=cached, sha256=pin, size=cached.stat().st_size)
    (cache_root() / "checkpoints").mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=cache_root() / "checkpoints")
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "meshrelease"})
        with urllib.request.urlopen(req, timeout=60) as resp, os.fdopen(fd, "wb") as out:
            total = resp.headers.get("Content-Length")
            total_n = int(total) if total and total.isdigit() else None
            done = 0
            while block := resp.read(1 << 16):
                out.write(block)
                h.update(block)
                done += len(block)
                if progress:
                    progress(done, total_n)
        if total_n is not None and done != total_n:
            raise SourceError(f"checkpoint {url}: download truncated ({done} of {total_n} bytes)")
        digest = h.hexdigest()
        check_pin(url, digest, pin)
        path = store_in_cache(tmp, digest)
    except urllib.error.HTTPError as exc:
        raise SourceError(f"checkpoint {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise SourceError(f"checkpoint {url}: cannot connect ({exc.reason})") from None
    except (TimeoutError, ConnectionError) as exc:
        raise SourceError(f"checkpoint {url}: download failed ({exc})") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return CheckpointSource(uri=url, kind="http", path=path, sha256=digest, size=path.stat().st_size)

