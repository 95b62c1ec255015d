"""Terminal output for the CLI: rich progress on stderr, results on stdout, JSON for machines."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Iterator

from rich.console import Console
from rich.table import Table

from ..progress import Reporter
from ..record import Release

# Wide enough for the parity table when piped (CI logs); a terminal keeps its own width.
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 150)
out = Console(highlight=False, width=None if sys.stdout.isatty() else 150)


class RichReporter(Reporter):
    """Stage-by-stage progress on stderr; silent when ``quiet`` (``--json``)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._last_download = 0.0

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.quiet:
            yield
            return
        start = time.perf_counter()
        try:
            with err.status(f"[bold]{name}[/]…", spinner="dots"):
                yield
        except BaseException:
            err.print(f"[red]✗[/] {name:<9} {time.perf_counter() - start:6.1f} s")
            raise
        err.print(f"[green]✓[/] {name:<9} {time.perf_counter() - start:6.1f} s")

    def note(self, message: str) -> None:
        if not self.quiet:
            err.print(f"  {message}")

    def download(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if self.quiet or (now - self._last_download < 0.5 and done != total):
            return
        self._last_download = now
        pct = f" ({done / total:.0%})" if total else ""
        err.print(f"  downloaded {done / 1e6:.1f} MB{pct}")


def parity_table(release: Release) -> Table:
    t = Table(title=f"{release.variant.name} {release.tag}: parity vs PyTorch", title_justify="left")
    for col in ("artifact", "runtime", "input", "max |Δ|", "mean |Δ|", "agreement", "Dice", ""):
        t.add_column(col, justify="right" if col in ("max |Δ|", "mean |Δ|", "agreement", "Dice") else "left")
    for r in release.parity:
        t.add_row(r.artifact, r.runtime, r.input, f"{r.max_abs:.2e}", f"{r.mean_abs:.2e}", f"{r.agreement:.4%}",
                  f"{r.dice:.4f}", "[green]pass[/]" if r.passed else "[red]FAIL[/]")
    return t


def size_table(release: Release) -> Table:
    t = Table(title="sizes", title_justify="left")
    for col in ("artifact", "bytes", "budget", "rule", ""):
        t.add_column(col, justify="right" if col in ("bytes", "budget") else "left")
    for s in release.sizes:
        t.add_row(s.artifact, f"{s.size:,}", f"{s.budget:,}", s.rule, "[green]pass[/]" if s.passed else "[red]FAIL[/]")
    return t


def summary(release: Release) -> dict:
    """The ``--json`` summary of a build."""
    return {
        "variant": release.variant.name,
        "tag": release.tag,
        "passed": release.passed,
        "out_dir": str(release.out_dir) if release.out_dir else None,
        "source": release.source.to_dict() if release.source else None,
        "parameters": release.spec.parameter_count,
        "files": [a.to_dict() for a in sorted(release.artifacts + release.documents, key=lambda a: a.path)],
        "parity": [r.to_dict() for r in release.parity],
        "sizes": [s.to_dict() for s in release.sizes],
        "timings": {k: round(v, 3) for k, v in release.timings.items()},
    }


def print_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")
