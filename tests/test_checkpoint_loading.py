"""Pulling and loading checkpoints: real arc-meshchop weights, every accepted layout, every refusal."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from meshrelease.checkpoint.load import build_model, infer_spec, read_state_dict
from meshrelease.checkpoint.pull import pull_checkpoint
from meshrelease.config import BUILTIN_VARIANTS
from meshrelease.errors import ArchitectureError, CheckpointError, IntegrityError, SourceError, UnsafeCheckpointError
from meshrelease.model.meshnet import MeshNet, MeshNetSpec, count_parameters

from .conftest import CHECKPOINT

REAL_SHA = hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()


@pytest.mark.parametrize("variant,params", [("meshnet_5", 5_682), ("meshnet_16", 56_194), ("meshnet_26", 147_474)])
def test_parameter_counts_match_the_paper(variant, params):
    spec = BUILTIN_VARIANTS[variant].spec
    assert count_parameters(MeshNet(spec)) == params
    assert spec.parameter_count == params


def test_real_checkpoint_loads_as_meshnet_26():
    state = read_state_dict(CHECKPOINT)
    assert infer_spec(state) == {"blocks": 9, "channels": 26, "in_channels": 1, "kernel_size": 3, "classes": 2}
    model = build_model(state, MeshNetSpec(26), "meshnet_26", 147_474)
    assert count_parameters(model) == 147_474
    assert not model.training
    raw = torch.load(CHECKPOINT, weights_only=True, map_location="cpu")["model_state_dict"]
    assert torch.equal(model.state_dict()["network.4.conv.weight"], raw["network.4.conv.weight"])


@pytest.fixture(scope="module")
def raw_state():
    return torch.load(CHECKPOINT, weights_only=True, map_location="cpu")["model_state_dict"]


@pytest.mark.parametrize("layout", ["raw", "model_state_dict", "state_dict", "model", "module.", "_orig_mod.", "both"])
def test_accepted_checkpoint_layouts(tmp_path, raw_state, layout):
    state = dict(raw_state)
    if layout in ("module.", "_orig_mod."):
        state = {layout + k: v for k, v in state.items()}
    elif layout == "both":
        state = {"module._orig_mod." + k: v for k, v in state.items()}
    obj = {layout: state, "epoch": torch.tensor(3)} if layout in ("model_state_dict", "state_dict", "model") else state
    path = tmp_path / "ck.pt"
    torch.save(obj, path)
    model = build_model(read_state_dict(path), MeshNetSpec(26), "meshnet_26", 147_474)
    assert torch.equal(model.state_dict()["network.0.conv.weight"], raw_state["network.0.conv.weight"])


def test_safetensors_checkpoint(tmp_path, raw_state):
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in raw_state.items()}, str(path))
    model = build_model(read_state_dict(path), MeshNetSpec(26), "meshnet_26", 147_474)
    assert torch.equal(model.state_dict()["network.8.bn.running_var"], raw_state["network.8.bn.running_var"])


def test_pickle_that_would_execute_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    import pickle

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"model_state_dict": Exploit()}, protocol=2))
    with pytest.raises(UnsafeCheckpointError) as exc:
        read_state_dict(path)
    assert str(exc.value) == (
        f"checkpoint {path}: refused to load, it references posix.system, which would execute code "
        "(only weights_only loading is allowed)"
    )
    assert not marker.exists()


def test_pinned_sha256_is_enforced():
    src = pull_checkpoint(str(CHECKPOINT), REAL_SHA)
    assert src.sha256 == REAL_SHA and src.size == CHECKPOINT.stat().st_size
    wrong = "0" * 64
    with pytest.raises(IntegrityError) as exc:
        pull_checkpoint(str(CHECKPOINT), wrong)
    assert str(exc.value) == f"checkpoint {CHECKPOINT}: sha256 {REAL_SHA} does not match the pinned {wrong}; refusing to load it"


def test_architecture_mismatch_names_channels(raw_state, tmp_path):
    with pytest.raises(ArchitectureError) as exc:
        build_model(dict(raw_state), MeshNetSpec(16), "meshnet_16", 56_194)
    assert str(exc.value) == (
        "weights do not fit meshnet_16: expected 16 channels, found 26 (network.0.conv.weight has shape (26, 1, 3, 3, 3))"
    )


def test_missing_and_unexpected_keys_are_listed(raw_state):
    state = dict(raw_state)
    del state["network.3.conv.bias"]
    state["network.3.extra.weight"] = torch.zeros(1)
    with pytest.raises(ArchitectureError) as exc:
        build_model(state, MeshNetSpec(26), "meshnet_26", 147_474)
    assert str(exc.value) == (
        "weights do not fit meshnet_26: missing keys: network.3.conv.bias; unexpected keys: network.3.extra.weight"
    )


def test_non_finite_weights_are_refused(raw_state):
    state = dict(raw_state)
    w = state["network.2.conv.weight"].clone()
    w[0, 0, 0, 0, 0] = float("nan")
    w[1, 0, 0, 0, 0] = float("inf")
    state["network.2.conv.weight"] = w
    with pytest.raises(CheckpointError) as exc:
        build_model(state, MeshNetSpec(26), "meshnet_26", 147_474)
    assert str(exc.value) == "non-finite weights: network.2.conv.weight (1 NaN, 1 Inf)"


def test_batchnorm_without_running_stats_is_refused(raw_state):
    state = {k: v for k, v in raw_state.items() if "running_" not in k and "num_batches" not in k}
    with pytest.raises(ArchitectureError) as exc:
        build_model(state, MeshNetSpec(26), "meshnet_26", 147_474)
    assert str(exc.value) == (
        "BatchNorm without running statistics (network.0.bn.running_mean, network.0.bn.running_var, "
        "network.1.bn.running_mean, network.1.bn.running_var, …): the model was trained with "
        "track_running_stats=False and cannot be folded for export"
    )


def test_custom_meshnet_from_spec(tmp_path):
    spec = MeshNetSpec(channels=7, classes=3, dilations=(1, 2, 1))
    model = MeshNet(spec)
    path = tmp_path / "custom.pt"
    torch.save(model.state_dict(), path)
    loaded = build_model(read_state_dict(path), spec, "custom", None)
    assert count_parameters(loaded) == spec.parameter_count == (7 * 27 + 7 + 14) + 2 * (7 * 7 * 27 + 7 + 14) + (7 * 3 + 3)


class _Server:
    """A real HTTP server on 127.0.0.1 serving one folder, counting requests."""

    def __init__(self, folder: Path):
        counter = self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(folder), **kw)

            def do_GET(self):
                counter.append(self.path)
                super().do_GET()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server(tmp_path):
    (tmp_path / "final.pt").write_bytes(CHECKPOINT.read_bytes())
    server = _Server(tmp_path)
    yield server
    server.close()


def test_http_source_is_streamed_cached_by_hash_and_pinned(http_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MESHRELEASE_CACHE", str(tmp_path / "cache"))
    seen = []
    src = pull_checkpoint(f"{http_server.url}/final.pt", REAL_SHA, progress=lambda d, t: seen.append((d, t)))
    assert src.sha256 == REAL_SHA and src.kind == "http"
    assert src.path == tmp_path / "cache" / "checkpoints" / REAL_SHA
    assert seen[-1] == (CHECKPOINT.stat().st_size, CHECKPOINT.stat().st_size)
    assert len(http_server.requests) == 1
    again = pull_checkpoint(f"{http_server.url}/final.pt", REAL_SHA)  # pinned and cached: no request
    assert again.path == src.path and len(http_server.requests) == 1
    with pytest.raises(IntegrityError):
        pull_checkpoint(f"{http_server.url}/final.pt", "1" * 64)
    assert sorted(p.name for p in (tmp_path / "cache" / "checkpoints").iterdir()) == [REAL_SHA]


def test_http_errors_are_one_line(http_server):
    with pytest.raises(SourceError) as exc:
        pull_checkpoint(f"{http_server.url}/missing.pt")
    assert str(exc.value) == f"checkpoint {http_server.url}/missing.pt: HTTP 404 File not found"
    with pytest.raises(SourceError) as exc:
        pull_checkpoint("ftp://example.org/x.pt")
    assert str(exc.value) == "checkpoint ftp://example.org/x.pt: unsupported scheme (use a local path, http(s)://, or hf://)"
