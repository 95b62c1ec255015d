"""Load a checkpoint without executing code and turn it into a verified MeshNet.

Only ``torch.load(weights_only=True)`` and safetensors are used: a pickle that names any
global outside torch's tensor allow-list is refused before anything in it runs.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path

import torch

from ..errors import ArchitectureError, CheckpointError, UnsafeCheckpointError
from ..model.meshnet import MeshNet, MeshNetSpec, count_parameters

STATE_DICT_KEYS = ("model_state_dict", "state_dict", "model")
_PREFIXES = ("module.", "_orig_mod.")
_BLOCK_KEY = re.compile(r"^network\.(\d+)\.conv\.weight$")


def read_state_dict(path: Path, label: str | None = None) -> dict[str, torch.Tensor]:
    """Return the model state dict in ``path`` (raw or inside a training checkpoint), prefixes stripped."""
    label = label or str(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {label}: file is empty")
    with open(path, "rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or _looks_like_safetensors(head):
        obj = _load_safetensors(path, label)
    else:
        obj = _load_torch(path, head, label)
    return normalise_state_dict(obj, label)


def _looks_like_safetensors(head: bytes) -> bool:
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def _load_safetensors(path: Path, label: str) -> dict:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(f"checkpoint {label}: safetensors file but the 'safetensors' package is not installed") from None
    try:
        return load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"checkpoint {label}: corrupt safetensors file ({exc})") from None


def _load_torch(path: Path, head: bytes, label: str) -> object:
    is_zip = head.startswith(b"PK\x03\x04")
    is_pickle = head[:1] == b"\x80"
    if not (is_zip or is_pickle):
        kind = "text" if _is_text(head) else "unknown binary data"
        raise CheckpointError(f"checkpoint {label}: not a PyTorch checkpoint or safetensors file (looks like {kind})")
    if is_zip and not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {label}: truncated or corrupt PyTorch zip archive")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing them
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        culprit = found.group(1) if found else (_first_foreign_global(path) if is_pickle else None)
        what = f"it references {culprit}" if culprit else "it contains objects other than tensors"
        raise UnsafeCheckpointError(
            f"checkpoint {label}: refused to load, {what}, which would execute code (only weights_only loading is allowed)"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {label}: truncated or corrupt ({first})") from None


def _first_foreign_global(path: Path) -> str | None:
    """Name the first non-torch global a raw pickle imports, by reading opcodes only (nothing is executed)."""
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for op, arg, _ in pickletools.genops(f):
                if isinstance(arg, str) and "UNICODE" in op.name:
                    strings.append(arg)
                elif op.name == "GLOBAL" and isinstance(arg, str):
                    name = arg.replace(" ", ".")
                    if not name.startswith(("torch.", "collections.OrderedDict")):
                        return name
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    name = f"{strings[-2]}.{strings[-1]}"
                    if not name.startswith(("torch.", "collections.OrderedDict")):
                        return name
    except Exception:  # a malformed stream: the generic message is all we can say
        return None
    return None


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def normalise_state_dict(obj: object, label: str) -> dict[str, torch.Tensor]:
    """Find the weights in a raw or training checkpoint and strip ``module.``/``_orig_mod.`` prefixes."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {label}: expected a dict of tensors, found {type(obj).__name__}")
    state = obj
    if not _all_tensors(state):
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict) and _all_tensors(obj[key]):
                state = obj[key]
                break
        else:
            keys = ", ".join(sorted(str(k) for k in obj)[:8])
            raise CheckpointError(
                f"checkpoint {label}: no model weights found (looked for a tensor dict or one of "
                f"{', '.join(STATE_DICT_KEYS)}; top-level keys: {keys})"
            )
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = str(key)
        stripped = True
        while stripped:
            stripped = False
            for prefix in _PREFIXES:
                if name.startswith(prefix):
                    name, stripped = name[len(prefix):], True
        out[name] = value
    if not out:
        raise CheckpointError(f"checkpoint {label}: the state dict is empty")
    return out


def _all_tensors(d: dict) -> bool:
    return bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())


def infer_spec(state: dict[str, torch.Tensor], dilations: tuple[int, ...] | None = None) -> dict:
    """Channels, classes and depth read from weight shapes (dilations cannot be read from weights)."""
    blocks = sorted(int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k)))
    if not blocks:
        raise ArchitectureError("no MeshNet conv layers found (expected keys like network.0.conv.weight)")
    first = state[f"network.{blocks[0]}.conv.weight"]
    head = state.get(f"network.{len(blocks)}.weight")
    return {
        "blocks": len(blocks),
        "channels": int(first.shape[0]),
        "in_channels": int(first.shape[1]),
        "kernel_size": int(first.shape[2]),
        "classes": int(head.shape[0]) if head is not None and head.ndim == 5 else None,
    }


def build_model(state: dict[str, torch.Tensor], spec: MeshNetSpec, variant: str, expected_params: int | None) -> MeshNet:
    """Load ``state`` strictly into ``MeshNet(spec)`` after checking it is that architecture, finite and complete."""
    found = infer_spec(state)
    if found["channels"] != spec.channels:
        raise ArchitectureError(
            f"weights do not fit {variant}: expected {spec.channels} channels, found {found['channels']} "
            f"(network.0.conv.weight has shape {tuple(state['network.0.conv.weight'].shape)})"
        )
    if found["classes"] is not None and found["classes"] != spec.classes:
        raise ArchitectureError(f"weights do not fit {variant}: expected {spec.classes} classes, found {found['classes']}")
    if found["in_channels"] != spec.in_channels:
        raise ArchitectureError(
            f"weights do not fit {variant}: expected {spec.in_channels} input channel(s), found {found['in_channels']}"
        )
    model = MeshNet(spec)
    expected = model.state_dict()
    _check_running_stats(state, expected)
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        raise ArchitectureError(f"weights do not fit {variant}: " + "; ".join(parts))
    mismatched = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items() if k in state and state[k].shape != v.shape
    ]
    if mismatched:
        raise ArchitectureError(f"weights do not fit {variant}: shape mismatch in {', '.join(mismatched)}")
    _check_finite(state)
    full = {k: state.get(k, v) for k, v in expected.items()}
    model.load_state_dict(full, strict=True)
    model.eval()
    n = count_parameters(model)
    if expected_params is not None and n != expected_params:
        raise ArchitectureError(f"{variant} should have {expected_params:,} parameters, the loaded model has {n:,}")
    return model


def _check_running_stats(state: dict, expected: dict) -> None:
    lacking = sorted(
        k for k in expected if k.endswith(("running_mean", "running_var")) and k not in state and k.replace(k.rsplit(".", 1)[1], "weight") in state
    )
    if lacking:
        raise ArchitectureError(
            "BatchNorm without running statistics (" + ", ".join(lacking[:4]) + (", …" if len(lacking) > 4 else "")
            + "): the model was trained with track_running_stats=False and cannot be folded for export"
        )


def _check_finite(state: dict[str, torch.Tensor]) -> None:
    bad = []
    for k, v in state.items():
        if v.is_floating_point():
            nan, inf = int(torch.isnan(v).sum()), int(torch.isinf(v).sum())
            if nan or inf:
                bad.append(f"{k} ({nan} NaN, {inf} Inf)")
    if bad:
        raise CheckpointError("non-finite weights: " + ", ".join(bad))
