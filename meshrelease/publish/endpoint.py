"""Which Hub to talk to, with which token, and the client settings a local Hub needs.

Rules (the README's "Publishing" section says the same):

- ``--endpoint URL`` wins, then the ``HF_ENDPOINT`` variable;
- otherwise a repo under the ``local/`` namespace (the default, ``local/<variant>``) goes to the
  embedded hub: a :class:`~meshrelease.publish.server.HubServer` started in-process on 127.0.0.1
  over ``--hub-root`` / ``MESHRELEASE_HUB_ROOT`` / ``~/.cache/meshrelease/hub``;
- any other repo goes to https://huggingface.co.

For a local endpoint (127.0.0.1, localhost, ::1) Xet uploads and telemetry are switched off in
huggingface_hub for the duration of the call; the real Hub keeps the client's defaults.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from huggingface_hub import HfApi, constants, get_token

from ..errors import ConfigError, PublishError

DEFAULT_ENDPOINT = "https://huggingface.co"
HUB_ROOT_ENV = "MESHRELEASE_HUB_ROOT"
LOCAL_NAMESPACE = "local"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def default_hub_root() -> Path:
    """The embedded hub's data folder: ``MESHRELEASE_HUB_ROOT`` or ``<meshrelease cache>/hub``."""
    env = os.environ.get(HUB_ROOT_ENV)
    if env:
        return Path(env).expanduser()
    from ..checkpoint.pull import cache_root

    return cache_root() / "hub"


def is_local_endpoint(url: str) -> bool:
    """True for http(s) endpoints on this machine's loopback."""
    return (urlsplit(url).hostname or "").lower() in LOCAL_HOSTS


def check_repo_id(repo_id: str) -> str:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"invalid repo {repo_id!r}: use OWNER/NAME")
    from .server.storage import StorageError, validate_repo_name

    try:
        for part in parts:
            validate_repo_name(part)
    except StorageError as e:
        raise ConfigError(f"invalid repo {repo_id!r}: {e.message}") from None
    return repo_id


@dataclass(frozen=True)
class HubTarget:
    """A repo on a Hub; ``endpoint`` None means the embedded hub over ``hub_root``."""

    repo_id: str
    endpoint: str | None
    hub_root: Path | None = None

    @property
    def embedded(self) -> bool:
        return self.endpoint is None

    def describe(self) -> str:
        return f"{self.repo_id} on the embedded hub at {self.hub_root}" if self.embedded else f"{self.repo_id} on {self.endpoint}"


def resolve_target(repo: str | None, endpoint: str | None = None, hub_root: str | os.PathLike | None = None) -> HubTarget:
    """Apply the endpoint rules above to the command-line values (``repo`` may come from the config)."""
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    if endpoint:
        if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).hostname:
            raise ConfigError(f"invalid endpoint {endpoint!r}: use an http(s):// URL")
        if repo is None:
            raise ConfigError(f"no repo to publish to on {endpoint}: pass --repo OWNER/NAME")
        return HubTarget(check_repo_id(repo), endpoint.rstrip("/"))
    if repo is None:
        raise ConfigError("no repo given: pass --repo OWNER/NAME")
    check_repo_id(repo)
    if repo.split("/")[0] == LOCAL_NAMESPACE or hub_root is not None:
        return HubTarget(repo, None, Path(hub_root).expanduser() if hub_root else default_hub_root())
    return HubTarget(repo, DEFAULT_ENDPOINT)


_settings_lock = threading.Lock()
_settings_depth = 0
_settings_saved: tuple[bool, bool] = (False, False)


@contextmanager
def client_settings(endpoint: str) -> Iterator[None]:
    """Disable Xet and telemetry in huggingface_hub while talking to a local endpoint.

    huggingface_hub reads ``constants.HF_HUB_DISABLE_XET`` / ``HF_HUB_DISABLE_TELEMETRY`` at call
    time; nested and concurrent uses share one saved state, restored by the last to leave.
    """
    global _settings_depth, _settings_saved
    if not is_local_endpoint(endpoint):
        yield
        return
    with _settings_lock:
        if _settings_depth == 0:
            _settings_saved = (constants.HF_HUB_DISABLE_XET, constants.HF_HUB_DISABLE_TELEMETRY)
            constants.HF_HUB_DISABLE_XET = True
            constants.HF_HUB_DISABLE_TELEMETRY = True
        _settings_depth += 1
    try:
        yield
    finally:
        with _settings_lock:
            _settings_depth -= 1
            if _settings_depth == 0:
                constants.HF_HUB_DISABLE_XET, constants.HF_HUB_DISABLE_TELEMETRY = _settings_saved


@dataclass
class HubSession:
    """An open connection to a Hub: the endpoint, the client and (never shown) the token."""

    target: HubTarget
    endpoint: str
    api: HfApi = field(repr=False)
    token: str | None = field(repr=False, default=None)

    def download_hint(self, tag: str, filename: str = "manifest.json") -> str:
        """How a downstream app fetches this release."""
        if self.target.embedded:
            return (
                f"meshrelease hub serve --root {self.target.hub_root} --port 8080  # then:\n"
                f"hf_hub_download({self.target.repo_id!r}, {filename!r}, revision={tag!r}, "
                f"endpoint='http://127.0.0.1:8080')\n"
                f"or: meshrelease pull {self.target.repo_id} --tag {tag} --dest DIR --hub-root {self.target.hub_root}"
            )
        endpoint = "" if self.endpoint == DEFAULT_ENDPOINT else f", endpoint={self.endpoint!r}"
        return f"hf_hub_download({self.target.repo_id!r}, {filename!r}, revision={tag!r}{endpoint})"


@contextmanager
def open_hub(target: HubTarget, *, require_token: bool = False) -> Iterator[HubSession]:
    """Connect to the target Hub, starting the embedded server (with a one-off token) if needed."""
    if target.embedded:
        from .server import HubServer

        assert target.hub_root is not None
        try:
            target.hub_root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PublishError(f"cannot create the embedded hub folder {target.hub_root}: {e.strerror or e}") from None
        # A fresh random token per run: nothing else on this machine can write while it serves.
        session_token = secrets.token_urlsafe(32)
        with HubServer(target.hub_root, token=session_token) as server, client_settings(server.url):
            yield HubSession(target, server.url, HfApi(endpoint=server.url, token=session_token), session_token)
        return
    assert target.endpoint is not None
    token = get_token()
    if require_token and token is None and not is_local_endpoint(target.endpoint):
        raise PublishError(
            f"no Hugging Face token for {target.endpoint}: set HF_TOKEN or run 'hf auth login' (nothing was pushed)"
        )
    with client_settings(target.endpoint):
        yield HubSession(target, target.endpoint, HfApi(endpoint=target.endpoint, token=token or False), token)
