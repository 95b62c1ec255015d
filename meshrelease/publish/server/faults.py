"""Fault injection for the local Hub: make chosen requests fail, to test that nothing half-publishes.

A fault names a route (see ``ROUTES``), the first request to that route that fails (1-based),
how many consecutive requests fail (``times``; ``None`` = every request from then on) and what
happens: an HTTP status code (the response carries a JSON error) or ``"reset"`` (the connection
is closed with a TCP reset, no response at all).

Faults come from ``HubServer(faults=...)`` or, for a server in another process, from the
``MESHRELEASE_HUB_FAULTS`` environment variable: comma-separated ``ROUTE:NTH:ACTION[:TIMES]``,
e.g. ``tag-create:1:500:*`` (every tag creation fails with 500) or ``lfs-upload:1:reset``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass

FAULTS_ENV = "MESHRELEASE_HUB_FAULTS"

ROUTES = (
    "agent-harnesses",
    "validate-yaml",
    "create-repo",
    "delete-repo",
    "repo-info",
    "refs",
    "tree",
    "paths-info",
    "commits",
    "preupload",
    "commit",
    "tag-create",
    "tag-delete",
    "branch-create",
    "branch-delete",
    "lfs-batch",
    "lfs-upload",
    "lfs-verify",
    "resolve",
)


@dataclass(frozen=True)
class Fault:
    """Requests ``nth`` .. ``nth + times - 1`` to ``route`` fail with ``action``."""

    route: str
    action: str = "500"
    nth: int = 1
    times: int | None = 1

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise ValueError(f"unknown route {self.route!r} for a fault; known routes: {', '.join(ROUTES)}")
        if self.action != "reset" and not (self.action.isdigit() and 400 <= int(self.action) <= 599):
            raise ValueError(f"fault action must be an HTTP error status (400-599) or 'reset', not {self.action!r}")
        if self.nth < 1 or (self.times is not None and self.times < 1):
            raise ValueError("fault nth and times must be at least 1")

    def hits(self, count: int) -> bool:
        return count >= self.nth and (self.times is None or count < self.nth + self.times)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        parts = spec.strip().split(":")
        if len(parts) not in (3, 4):
            raise ValueError(f"fault spec {spec!r} is not ROUTE:NTH:ACTION[:TIMES]")
        times: int | None = 1
        if len(parts) == 4:
            times = None if parts[3] == "*" else int(parts[3])
        return cls(route=parts[0], nth=int(parts[1]), action=parts[2], times=times)


class FaultPlan:
    """Counts requests per route and says which ones must fail. Thread-safe."""

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self.faults = list(faults)
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> FaultPlan:
        spec = os.environ.get(FAULTS_ENV, "")
        return cls(Fault.parse(s) for s in spec.split(",") if s.strip())

    def check(self, route: str) -> Fault | None:
        """Count one request to ``route``; the fault to apply to it, if any."""
        with self._lock:
            count = self._counts.get(route, 0) + 1
            self._counts[route] = count
        for fault in self.faults:
            if fault.route == route and fault.hits(count):
                return fault
        return None

    def count(self, route: str) -> int:
        """How many requests reached ``route`` so far (faulted ones included)."""
        with self._lock:
            return self._counts.get(route, 0)
