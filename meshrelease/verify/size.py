"""Size budgets derived from the parameter count, and the activation-memory estimate."""

from __future__ import annotations

from ..record import Release, SizeCheck

# Budgets (issue: fp32 <= 1.03 x params x 4 B; fp16 <= 0.53 x fp32 file; int8 <= 0.30 x fp32 file).
FP32_FACTOR = 1.03
RELATIVE_FACTORS = {"fp16": 0.53, "int8": 0.30}


def size_checks(release: Release) -> list[SizeCheck]:
    """One check per ONNX artifact; relative budgets are measured against the fp32 file.

    A variant's ``size_allowance`` (bytes, default 0) is added to every budget: ONNX and TF.js carry a
    few KB of graph and JSON that a 5k-parameter model cannot hide inside 3 % of its weights.
    """
    params = release.spec.parameter_count
    extra = release.variant.size_allowance
    plus = f" + {extra:,} B allowance" if extra else ""
    onnx = {a.precision: a for a in release.artifacts if a.format == "onnx"}
    checks: list[SizeCheck] = []
    fp32 = onnx.get("fp32")
    if fp32 is not None:
        checks.append(SizeCheck(fp32.path, fp32.size, int(FP32_FACTOR * params * 4) + extra,
                                f"<= {FP32_FACTOR} x {params:,} params x 4 B{plus}"))
        for precision, factor in RELATIVE_FACTORS.items():
            if precision in onnx:
                a = onnx[precision]
                checks.append(SizeCheck(a.path, a.size, int(factor * fp32.size) + extra,
                                        f"<= {factor} x fp32 file ({fp32.size:,} B){plus}"))
    checks += tfjs_size_checks(release, params, extra)
    return checks


TFJS_FACTORS = {"fp32": 1.0, "fp16": 0.53, "float16": 0.53, "uint8": 0.30, "int8": 0.30}


def tfjs_size_checks(release: Release, params: int, extra: int = 0) -> list[SizeCheck]:
    """TF.js weight shards of each layers-model folder vs the same parameter budget, scaled by precision."""
    checks = []
    models = [a for a in release.artifacts if a.format == "tfjs-layers" and a.path.endswith("model.json")]
    for model in models:
        folder = model.path.rsplit("/", 1)[0] + "/"
        shards = [a for a in release.artifacts if a.format == "tfjs-layers" and a.path.startswith(folder)
                  and a.path.endswith(".bin")]
        factor = TFJS_FACTORS.get(model.precision, 1.0)
        budget = int(factor * FP32_FACTOR * params * 4) + extra
        rule = (f"<= {factor} x {FP32_FACTOR} x {params:,} params x 4 B" if factor != 1.0 else
                f"<= {FP32_FACTOR} x {params:,} params x 4 B") + (f" + {extra:,} B allowance" if extra else "")
        checks.append(SizeCheck(f"{folder}*.bin ({len(shards)} shard{'s' if len(shards) != 1 else ''})",
                                sum(a.size for a in shards), budget, rule))
    return checks


def activation_estimate(release: Release, side: int = 256) -> dict:
    """Memory of one hidden activation for a full ``side``^3 volume (what the browser must hold twice)."""
    spec = release.spec
    per = spec.activation_bytes(side, 4)
    return {
        "side": side,
        "channels": spec.channels,
        "bytes_per_activation_fp32": per,
        "bytes_per_activation_fp16": spec.activation_bytes(side, 2),
        "formula": f"{spec.channels} channels x {side}^3 voxels x 4 B",
    }
