"""Retries with backoff for the Hub calls huggingface_hub does not retry itself.

The client retries preupload, LFS and paginated GETs on its own; ``create_repo``, ``create_commit``'s
``/commit``, tag calls, info and refs get one attempt. Those are wrapped here. Only transient
failures are retried: 408/429/5xx answers, timeouts and dropped connections.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx2
from huggingface_hub.errors import HfHubHTTPError

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all, sleeping ``base_delay * 2**n`` (capped at ``max_delay``) in between."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * (2**attempt))


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a huggingface_hub error, if it carries a response."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None) if response is not None else None


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: a transient status, a timeout or a connection problem."""
    if isinstance(exc, HfHubHTTPError):
        status = status_of(exc)
        return status is None or status in TRANSIENT_STATUS
    return isinstance(exc, (httpx2.TransportError, TimeoutError, ConnectionError))


def with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Run ``call``; on a transient failure sleep and try again, up to ``policy.attempts`` tries."""
    for attempt in range(policy.attempts):
        try:
            return call()
        except Exception as exc:
            if attempt + 1 >= policy.attempts or not is_transient(exc):
                raise
            if on_retry is not None:
                on_retry(attempt + 1, exc)
            time.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover
