"""``meshrelease card``: render a release's model card alone, for review before publishing."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ..errors import CardError


def _load_json(path: str, what: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CardError(f"{what} {p}: no such file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CardError(f"{what} {p}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CardError(f"{what} {p}: expected a JSON object")
    return data


def run_card(args: argparse.Namespace) -> int:
    from ..config import load_config, validate_tag
    from ..document.card import default_repo_id, render_card
    from ..record import MANIFEST_NAME

    validate_tag(args.tag)
    variant = load_config(args.config).variant(args.variant)
    repo = default_repo_id(variant, args.repo)
    previous = _load_json(args.previous, "previous manifest") if args.previous else None
    if args.from_dir:
        folder = Path(args.from_dir)
        manifest = _load_json(str(folder / MANIFEST_NAME), "release manifest")
        if (manifest.get("variant"), manifest.get("tag")) != (variant.name, args.tag):
            raise CardError(f"{folder} holds {manifest.get('variant')} {manifest.get('tag')}, not {variant.name} {args.tag}")
        card = render_card(manifest, repo_id=repo, previous=previous, folder=folder, template=args.template)
    else:
        from ..pipeline import BuildOptions, build_release
        from . import output

        with tempfile.TemporaryDirectory(prefix="meshrelease-card-") as tmp:
            opts = BuildOptions(variant=args.variant, tag=args.tag, checkpoint=args.checkpoint, sha256=args.sha256,
                                out=tmp, samples=args.samples, crop=args.crop, config_path=args.config, repo=repo,
                                previous_manifest=previous, results=args.results)
            release = build_release(opts, output.RichReporter(quiet=args.out is None and not sys.stderr.isatty()))
            manifest = _load_json(str(release.out_dir / MANIFEST_NAME), "release manifest")
            card = render_card(manifest, repo_id=repo, previous=previous, folder=release.out_dir, template=args.template)
    if args.out:
        Path(args.out).write_text(card.content, encoding="utf-8")
        print(f"model card of {variant.name} {args.tag} written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(card.content)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "card",
        help="render a release's model card (README.md) for review",
        description="Render the model card a release would carry, without publishing anything. By default the "
        "release is built and verified in a temporary folder (real parity numbers, sizes and hashes; nothing is "
        "written under releases/); with --from DIR the card is rendered from an already built release folder. "
        "The card goes to stdout, or to FILE with --out.",
    )
    p.add_argument("variant", help="variant name from meshrelease.toml or built in: meshnet_5, meshnet_16, meshnet_26")
    p.add_argument("--tag", required=True, help="release tag, e.g. v1")
    p.add_argument("--from", dest="from_dir", metavar="DIR",
                   help="render from a built release folder (DIR/manifest.json) instead of building")
    p.add_argument("--out", metavar="FILE", help="write the card to FILE instead of stdout")
    p.add_argument("--repo", metavar="OWNER/NAME",
                   help="Hub repo the usage examples download from (default: the variant's repo, else local/VARIANT)")
    p.add_argument("--previous", metavar="MANIFEST",
                   help="manifest.json of the previous release, for the changelog section")
    p.add_argument("--template", metavar="FILE", help="card template (default: model_cards/meshnet.md.j2)")
    p.add_argument("--checkpoint", metavar="SRC", help="checkpoint to build from (default: the variant's)")
    p.add_argument("--sha256", metavar="HEX", help="refuse the checkpoint unless its sha256 equals HEX")
    p.add_argument("--results", metavar="JSON",
                   help="the checkpoint's results.json (default: the variant's, used only with its configured checkpoint)")
    p.add_argument("--sample", action="append", metavar="NIFTI", dest="samples",
                   help="real MRI volume for the parity checks (repeatable; default: the config's samples)")
    p.add_argument("--crop", type=int, metavar="N", help="side of the parity crop (default: the config's, 96)")
    p.add_argument("--config", metavar="TOML", help="config file (default: ./meshrelease.toml if present)")
    p.set_defaults(func=run_card)
