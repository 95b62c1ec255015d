"""Fixtures for the Hub tests: an isolated huggingface_hub environment and a local HubServer.

Everything runs the unmodified huggingface_hub client over HTTP against
:class:`meshrelease.publish.server.HubServer` on 127.0.0.1 (protocol notes §6).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CHECKPOINT = SHARED_DATA / "arc-meshchop" / "fold_0_restart_0" / "final.pt"
OTHER_CHECKPOINT = SHARED_DATA / "arc-meshchop" / "fold_0_restart_2" / "final.pt"
CONFIG = REPO_ROOT / "meshrelease.toml"
CROP = "32"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean client environment per test: own HF_HOME, no Xet, no telemetry, no ambient endpoint/token."""
    from huggingface_hub import constants
    from huggingface_hub.utils import disable_progress_bars

    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("MESHRELEASE_CACHE", str(tmp_path / "meshrelease-cache"))
    monkeypatch.setenv("HF_TOKEN_PATH", str(home / "token"))
    for var in ("HF_ENDPOINT", "HF_TOKEN", "MESHRELEASE_HUB_ROOT", "MESHRELEASE_HUB_FAULTS", "MESHRELEASE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    disable_progress_bars()
    return home


@pytest.fixture
def hub(tmp_path: Path, hub_env: Path) -> Iterator["HubServer"]:  # noqa: F821
    from meshrelease.publish.server import HubServer

    with HubServer(tmp_path / "hub-data") as server:
        yield server


def make_release_folder(folder: Path, tag: str = "v1", seed: bytes = b"a", lfs_size: int = 4096) -> Path:
    """A small release folder: a binary 'model', a JSON file in a subfolder and a manifest listing both."""
    files = {
        "onnx/model.onnx": hashlib.sha256(seed).digest() * (lfs_size // 32) + b"\0",
        "tfjs/model.json": json.dumps({"seed": seed.decode()}).encode(),
    }
    entries = []
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        entries.append({"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                        "format": rel.rsplit(".", 1)[-1], "precision": "fp32"})
    manifest = {"variant": "meshnet_26", "tag": tag, "files": entries, "passed": True, "parity": [], "sizes": []}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def _build(out: Path, checkpoint: Path) -> Path:
    from meshrelease.pipeline import BuildOptions, build_release

    opts = BuildOptions(variant="meshnet_26", tag="v1", checkpoint=str(checkpoint), out=out, crop=int(CROP),
                        config_path=str(CONFIG), repo="me/meshnet")
    return build_release(opts).out_dir


@pytest.fixture(scope="session")
def built_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real MeshNet-26 release (fold 0 restart 0) built once per session with a 32^3 parity crop."""
    return _build(tmp_path_factory.mktemp("built-v1"), CHECKPOINT)


@pytest.fixture(scope="session")
def built_v1_other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same variant and tag built from another checkpoint (restart 2): other content."""
    return _build(tmp_path_factory.mktemp("built-v1-other"), OTHER_CHECKPOINT)


def publish_args(server_url: str | None, *extra: str, tag: str = "v1", repo: str | None = "me/meshnet", out: Path,
                 checkpoint: Path = CHECKPOINT, release_dir: Path | None = None) -> list[str]:
    """argv for ``meshrelease publish meshnet_26`` on the real checkpoint with a small parity crop.

    With ``release_dir`` the already-built folder is published (``--release-dir``) instead of rebuilding.
    """
    args = ["publish", "meshnet_26", "--tag", tag, "--checkpoint", str(checkpoint), "--crop", CROP,
            "--config", str(CONFIG), "--out", str(out)]
    if release_dir is not None:
        args += ["--release-dir", str(release_dir)]
    if server_url is not None:
        args += ["--endpoint", server_url]
    if repo is not None:
        args += ["--repo", repo]
    return args + list(extra)


def tags_of(url: str, repo: str, token: str | None = None) -> dict[str, str]:
    from huggingface_hub import HfApi

    refs = HfApi(endpoint=url, token=token or False).list_repo_refs(repo)
    return {t.name: t.target_commit for t in refs.tags}
