"""A local Hugging Face Hub-compatible server that the unmodified ``huggingface_hub`` client works against.

Used as meshrelease's embedded default publish target, by ``meshrelease hub serve`` and by the tests.

    with HubServer(tmp_path / "hub", token="secret") as hub:
        HfApi(endpoint=hub.url, token="secret").create_repo("me/model")
"""

from __future__ import annotations

import secrets
import sys
import threading
from collections.abc import Iterable
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from .faults import FAULTS_ENV, ROUTES, Fault, FaultPlan
from .http import HubRequestHandler
from .storage import HubStorage, RepoKey, StorageError

__all__ = ["FAULTS_ENV", "ROUTES", "Fault", "FaultPlan", "HubServer", "HubStorage", "RepoKey", "StorageError"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    hub: HubServer

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hung up mid-response is not the server's problem; anything else is.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, BrokenPipeError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class HubServer:
    """A threaded Hub-compatible HTTP server over a storage root.

    The socket is bound on construction, so ``url`` is known before ``start()``; ``port=0``
    picks a free port. With ``token`` set, every API and download request must carry it.
    ``faults`` (or the ``MESHRELEASE_HUB_FAULTS`` variable) makes chosen requests fail.
    """

    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        faults: Iterable[Fault] | None = None,
        log_requests: bool = False,
        page_size: int = 1000,
    ) -> None:
        self.storage = HubStorage(Path(root))
        self.root = self.storage.root
        self.token = token or None
        self.faults = FaultPlan(faults) if faults is not None else FaultPlan.from_env()
        self.log_requests = log_requests
        self.page_size = page_size
        # Signs LFS upload URLs: the client sends those PUTs without authorization.
        self.upload_secret = secrets.token_bytes(32)
        self._httpd = _Server((host, port), HubRequestHandler)
        self._httpd.hub = self
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint to give ``HfApi(endpoint=...)`` / ``HF_ENDPOINT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> HubServer:
        """Serve in a background daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"hub-server-{self.port}", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()`` or KeyboardInterrupt."""
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
