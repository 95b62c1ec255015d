"""``meshrelease build``: checkpoint -> verified release folder."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..config import INT8_CHOICES, TFJS_WEIGHTS
from ..document import github
from . import output

if TYPE_CHECKING:
    from ..pipeline import BuildOptions


def add_build_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``build`` and ``publish``."""
    p.add_argument("variant", help="variant name from meshrelease.toml or built in: meshnet_5, meshnet_16, meshnet_26")
    p.add_argument("--tag", required=True, help="release tag, e.g. v1 (letters, digits, '.', '_', '-')")
    p.add_argument("--checkpoint", metavar="SRC",
                   help="local path, http(s):// URL or hf://OWNER/REPO/path@REV (default: the variant's configured checkpoint)")
    p.add_argument("--sha256", metavar="HEX", help="refuse the checkpoint unless its sha256 equals HEX")
    p.add_argument("--results", metavar="JSON",
                   help="the checkpoint's results.json (test metrics for the model card; default: the variant's, "
                   "used only with its configured checkpoint)")
    p.add_argument("--out", metavar="DIR", help="release root; the build goes to DIR/VARIANT/TAG/ (default: releases)")
    p.add_argument("--sample", action="append", metavar="NIFTI", dest="samples",
                   help="real MRI volume for parity (repeatable; default: the config's samples)")
    p.add_argument("--crop", type=int, metavar="N", help="side of the centre crop used for parity (default 96)")
    p.add_argument("--tfjs-crop", type=int, metavar="N",
                   help="side of the real-MRI crop for TF.js parity in Node (default 32; pure-JS TF.js is slow)")
    p.add_argument("--tfjs-weights", choices=TFJS_WEIGHTS,
                   help="TF.js weight storage: float32 (default), float16 (half size) or uint8 (quarter size)")
    p.add_argument("--full", action="store_true", help="run parity on the full 256^3 volume (slow: minutes)")
    p.add_argument("--int8-method", choices=INT8_CHOICES,
                   help="int8 quantization method (default weight-only); 'none' releases no int8 file, for models "
                   "whose int8 cannot meet the parity thresholds")
    p.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    p.add_argument("--config", metavar="TOML", help="config file (default: ./meshrelease.toml if present)")
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    from ..pipeline import BuildOptions  # torch and onnx load only when a command runs, not for --help

    return BuildOptions(variant=args.variant, tag=args.tag, checkpoint=args.checkpoint, sha256=args.sha256,
                        out=args.out, samples=args.samples, crop=args.crop, full=args.full,
                        tfjs_crop=args.tfjs_crop, tfjs_weights=args.tfjs_weights,
                        int8_method=args.int8_method, opset=args.opset, config_path=args.config,
                        results=args.results)


def run_build(args: argparse.Namespace) -> int:
    from ..pipeline import build_release

    reporter = output.RichReporter(quiet=args.json)
    release = build_release(options_from_args(args), reporter)
    github.report_release(release)
    if args.json:
        output.print_json(output.summary(release))
        return 0
    output.err.print(output.parity_table(release))
    output.err.print(output.size_table(release))
    output.out.print(f"[bold green]release {release.variant.name} {release.tag} passed every check[/] → {release.out_dir}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="build and verify a release folder (no publishing)",
        description="Pull a checkpoint, export ONNX fp32/fp16/int8 (and TF.js), verify every artifact against "
        "PyTorch on a seeded random volume and real MRI, check sizes, and write DIR/VARIANT/TAG/ with a "
        "manifest.json. Nothing is written unless every check passes.",
    )
    add_build_arguments(p)
    p.set_defaults(func=run_build)
