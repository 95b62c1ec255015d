"""The ``meshrelease`` command: a thin layer over the pipeline stages.

Errors raised by the stages (:mod:`meshrelease.errors`) become one line on stderr and the exit
code of their class; nothing else in the package exits.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__


def make_parser() -> argparse.ArgumentParser:
    from . import brainchop, build, card, hub

    parser = argparse.ArgumentParser(
        prog="meshrelease",
        description="Turn a trained MeshNet checkpoint into a verified, versioned release: ONNX fp32/fp16/int8, "
        "TF.js for BrainChop, a model card, and one tagged commit on a Hugging Face Hub repo.",
        epilog="Run 'meshrelease COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"meshrelease {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (build, hub, card, brainchop):
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..errors import MeshreleaseError

    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MeshreleaseError as exc:
        release = getattr(exc, "release", None)
        _report_to_github(args, release, exc)
        if release is not None and not getattr(args, "json", False):
            from . import output

            output.err.print(output.parity_table(release))
            output.err.print(output.size_table(release))
        if getattr(args, "json", False):  # machines get the reason on stdout too
            import json

            print(json.dumps({"status": "error", "exit_code": exc.exit_code, "error": str(exc)}))
        print(f"meshrelease: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("meshrelease: interrupted; nothing was published", file=sys.stderr)
        return 130


def _report_to_github(args: argparse.Namespace, release: object, exc: Exception) -> None:
    """Inside a GitHub Actions step, say in the run's summary why nothing was released."""
    from ..document import github

    if release is not None:
        github.report_release(release, error=str(exc))
    else:
        github.report_failure(getattr(args, "variant", None), getattr(args, "tag", None), str(exc))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
