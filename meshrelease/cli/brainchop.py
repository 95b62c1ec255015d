"""BrainChop verbs: ``import-brainchop`` (TF.js MeshNet -> releasable checkpoint) and ``validate-tfjs``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path



def run_import(args: argparse.Namespace) -> int:
    from ..checkpoint.brainchop_import import import_brainchop, save_checkpoint, variant_toml

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


def run_validate(args: argparse.Namespace) -> int:
    from ..verify.tfjs_validate import validate_layers_model

    model = validate_layers_model(args.dir)
    summary = {"folder": str(model.directory), "layers": len(model.layers), "weights": len(model.weights),
               "parameters": int(sum(w.size for w in model.weights.values())), "precision": model.precision,
               "shards": model.shards, "input_shape": model.input_shape}
    if args.node:
        from ..verify.tfjs_parity import run_tfjs_node

        _, loaded = run_tfjs_node(model.directory, None, timeout_s=args.timeout)
        summary["tfjs_load"] = {"tfjs": loaded["tfjs"], "seconds": round(loaded["load_s"], 3)}
    if args.json:
        print(json.dumps(summary, indent=1, sort_keys=True))
    else:
        loaded = f"; loads in tfjs {summary['tfjs_load']['tfjs']}" if args.node else ""
        print(f"{model.model_json}: valid layers-model, {summary['layers']} layers, {summary['parameters']:,} "
              f"{model.precision} weights in {len(model.shards)} shard(s){loaded}")
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

    v = sub.add_parser(
        "validate-tfjs",
        help="check a TF.js layers-model folder (structure, weights, shard bytes, names, inbound nodes)",
        description="Validate any TF.js layers-model folder: JSON structure, every layer weight present with the "
        "right shape, shard bytes exactly as the manifest implies, valid names, resolvable inbound nodes. "
        "Prints one line; a problem is one error line naming the file.",
    )
    v.add_argument("dir", help="folder with model.json and its .bin shards")
    v.add_argument("--node", action="store_true", help="also load it with tf.loadLayersModel in Node (under --timeout)")
    v.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds allowed for the Node load (default 60)")
    v.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    v.set_defaults(func=run_validate)
