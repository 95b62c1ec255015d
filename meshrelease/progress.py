"""Progress reporting for long stages; the CLI subclasses :class:`Reporter` with rich output."""

from __future__ import annotations

import contextlib
from typing import Iterator


class Reporter:
    """Progress sink; the CLI subclasses it with rich output. The default is silent."""

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        yield

    def note(self, message: str) -> None:
        pass

    def download(self, done: int, total: int | None) -> None:
        pass
