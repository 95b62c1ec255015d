"""Shared fixtures: the real data beside the checkout, and isolated caches per test session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CHECKPOINT = SHARED / "arc-meshchop" / "fold_0_restart_0" / "final.pt"
CHECKPOINT_2 = SHARED / "arc-meshchop" / "fold_0_restart_2" / "final.pt"
T1 = SHARED / "brainchop" / "t1_crop.nii.gz"
BRAINCHOP_MODELS = SHARED / "brainchop" / "models"


def pytest_configure(config):
    missing = [p for p in (CHECKPOINT, T1) if not p.is_file()]
    if missing:
        raise pytest.UsageError(f"real test data missing (expected ../shared/data beside the checkout): {missing}")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Never touch the user's ~/.cache or a real Hub from tests."""
    cache = tmp_path_factory.mktemp("meshrelease-cache")
    old = {k: os.environ.get(k) for k in ("MESHRELEASE_CACHE", "HF_HUB_DISABLE_TELEMETRY", "HF_HOME")}
    os.environ["MESHRELEASE_CACHE"] = str(cache)
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ.setdefault("HF_HOME", str(tmp_path_factory.mktemp("hf-home")))
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True, scope="session")
def _outside_github_actions():
    """Tests run as if outside a workflow job even under GitHub Actions (ci.yml): meshrelease reads
    GITHUB_* there (pushed-tag check, embedded-hub refusal, step summary and outputs). Tests of that
    behaviour set the variables themselves."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("GITHUB_", "RUNNER_"))}
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def release_26(tmp_path_factory):
    """The real MeshNet-26 release built once with the default settings (96³ real-MRI crop)."""
    from meshrelease.pipeline import BuildOptions, build_release

    out = tmp_path_factory.mktemp("releases")
    release = build_release(BuildOptions(variant="meshnet_26", tag="v1", checkpoint=str(CHECKPOINT),
                                         samples=[str(T1)], out=out, config_path=str(REPO / "meshrelease.toml")))
    return release


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())
