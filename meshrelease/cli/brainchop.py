"""``meshrelease import-brainchop``: a BrainChop TF.js MeshNet -> a checkpoint meshrelease can release."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..checkpoint.brainchop_import import import_brainchop, save_checkpoint, variant_toml


def run_import(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    imported = import_brainchop(folder, fed_orientation="LIA" if args.transpose else "AIL")
    name = args.name or folder.resolve().name.replace("-", "_")
    out = Path(args.out) if args.out else Path(f"{name}.pt")
    save_checkpoint(imported, out)
    if args.json:
        print(json.dumps({"checkpoint": str(out), "variant": name, "spec": imported.spec.to_dict(),
                          "labels": imported.labels, "orientation": "RAS", "fed_orientation": imported.fed_orientation},
                         indent=1, sort_keys=True))
        return 0
    s = imported.spec
    print(f"imported {folder} -> {out}: MeshNet {s.channels} channels, {s.classes} classes, "
          f"dilations {list(s.dilations)}, {s.parameter_count:,} parameters (kernels re-oriented "
          f"{imported.fed_orientation} -> RAS)")
    print("\nadd to meshrelease.toml to release it:\n")
    print(variant_toml(name, imported, out), end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-brainchop",
        help="turn a BrainChop TF.js MeshNet folder into a releasable checkpoint",
        description="Read a published BrainChop MeshNet (model.json + weight shards), recover its architecture "
        "from the JSON, and save it as a MeshNet checkpoint (torch.save of tensors and plain values) that "
        "'meshrelease build' can release with ONNX and a card. Models with constructs MeshNet lacks "
        "('_gn' layers, non-ReLU activations) are refused.",
    )
    p.add_argument("dir", help="folder with model.json and its .bin shards")
    p.add_argument("--out", metavar="FILE", help="checkpoint to write (default: ./NAME.pt)")
    p.add_argument("--name", help="variant name for the printed meshrelease.toml section (default: the folder name)")
    p.add_argument("--no-transpose", dest="transpose", action="store_false",
                   help="the model's BrainChop entry has enableTranspose: false (it sees the LIA array in (k, j, i) order)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    p.set_defaults(func=run_import)
