"""Benchmark: build meshnet_26 from the real checkpoint, then time ORT vs PyTorch side by side.

Run by hand (``make bench`` or ``python bench/bench_build.py [--sizes 128 256]``); prints per-stage
seconds, artifact bytes vs budget, and inference seconds per engine and size. Targets (2 cores):
whole build (3 ONNX artifacts + parity on a 96³ real-MRI crop) <= 40 s; released fp32 ONNX >= 1.5x
faster than PyTorch eager at 128³.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from meshrelease.pipeline import BuildOptions, build_release
from meshrelease.verify.mri import center_crop, load_sample
from meshrelease.verify.runtimes import onnx_logits, onnx_session, torch_logits

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(SHARED / "arc-meshchop/fold_0_restart_0/final.pt"))
    ap.add_argument("--sample", default=str(SHARED / "brainchop/t1_crop.nii.gz"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="cube sides for the inference comparison")
    ap.add_argument("--repeat", type=int, default=1, help="best of N per engine and size")
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}  torch threads: {torch.get_num_threads()}  torch {torch.__version__}")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        release = build_release(BuildOptions(variant="meshnet_26", tag="bench", checkpoint=args.checkpoint,
                                             samples=[args.sample], out=tmp, config_path=str(ROOT / "meshrelease.toml")))
        total = time.perf_counter() - t0
        print(f"\nbuild: {total:.1f} s total (target <= 40 s)")
        for stage, secs in release.timings.items():
            print(f"  {stage:<9} {secs:6.2f} s")
        print("\nartifact bytes vs budget:")
        for s in release.sizes:
            print(f"  {s.artifact:<24} {s.size:>9,} / {s.budget:>9,}  ({s.size / s.budget:.0%})  {s.rule}")
        for a in release.artifacts:
            if a.format != "onnx":
                print(f"  {a.path:<24} {a.size:>9,}  ({a.format}, {a.precision})")

        model = __import__("meshrelease.checkpoint.load", fromlist=["x"])
        state = model.read_state_dict(Path(args.checkpoint))
        torch_model = model.build_model(state, release.spec, "meshnet_26", 147_474)
        volume = load_sample(args.sample)
        print("\ninference, real T1 centre crop (seconds, best of %d):" % args.repeat)
        print(f"  {'side':>5} {'PyTorch eager':>14} {'ORT fp32':>9} {'ORT fp16':>9} {'ORT int8':>9} {'speed-up fp32':>14}")
        sessions = {p: onnx_session(release.out_dir / f) for p, f in
                    (("fp32", "onnx/model.onnx"), ("fp16", "onnx/model_fp16.onnx"), ("int8", "onnx/model_int8.onnx"))}
        for side in args.sizes:
            x = center_crop(volume, side)
            t_torch = best_of(lambda: torch_logits(torch_model, x), args.repeat)
            t_ort = {p: best_of(lambda s=s: onnx_logits(s, x), args.repeat) for p, s in sessions.items()}
            print(f"  {side:>5} {t_torch:>14.2f} {t_ort['fp32']:>9.2f} {t_ort['fp16']:>9.2f} {t_ort['int8']:>9.2f} "
                  f"{t_torch / t_ort['fp32']:>13.2f}x")
        print(f"\npeak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
