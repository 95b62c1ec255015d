"""The real MeshNet-26 release carries a BrainChop-ready TF.js folder, in the manifest and checked in tfjs."""

from __future__ import annotations

import hashlib
import json

from meshrelease.verify.tfjs_validate import validate_layers_model


def test_release_has_a_validated_tfjs_folder_in_the_manifest(release_26):
    folder = release_26.out_dir
    manifest = json.loads((folder / "manifest.json").read_text())
    files = {f["path"]: f for f in manifest["files"]}
    tfjs = {p: f for p, f in files.items() if f["format"] == "tfjs-layers"}
    assert set(tfjs) == {"tfjs/model.json", "tfjs/group1-shard1of1.bin"}
    for path, entry in files.items():
        if path.startswith("tfjs/"):
            data = (folder / path).read_bytes()
            assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
    assert {files[p]["format"] for p in ("tfjs/colormap.json", "tfjs/model_info.json", "tfjs/brainchop_model_entry.json")} == {
        "brainchop-colormap", "brainchop-model-info", "brainchop-model-entry"}
    assert tfjs["tfjs/model.json"]["precision"] == "fp32"
    assert tfjs["tfjs/model.json"]["meta"]["input_orientation"] == "LIA"
    model = validate_layers_model(folder / "tfjs")
    assert model.metadata["meshrelease"]["variant"] == "meshnet_26"
    colormap = json.loads((folder / "tfjs" / "colormap.json").read_text())
    assert colormap["labels"] == list(release_26.variant.labels)


def test_release_tfjs_parity_ran_in_node_tfjs_in_brainchop_orientation(release_26):
    manifest = json.loads((release_26.out_dir / "manifest.json").read_text())
    rows = [p for p in manifest["parity"] if p["artifact"] == "tfjs/model.json"]
    assert len(rows) == 1
    row = rows[0]
    assert row["runtime"] == "tfjs 4.22.0 (cpu, Node)" and row["passed"]
    assert row["input"] == "t1_crop.nii.gz centre 32³ fed LIA (BrainChop)"
    assert row["max_abs"] <= 1e-4 and row["agreement"] == 1.0
    est = manifest["estimates"]["tfjs_parity"]
    assert est["runner"] == "node" and est["fallback_reason"] is None
    assert est["orientation"]["fed"] == "LIA" and est["orientation"]["trained"] == "RAS"


def test_downloaded_release_tfjs_is_validated_and_its_parity_repeated(release_26, tmp_path):
    import shutil

    import pytest

    from meshrelease.errors import TfjsFormatError
    from meshrelease.export.tfjs_artifacts import rerun_tfjs_parity, validate_release_tfjs
    from tests.conftest import T1

    folder = release_26.out_dir
    manifest = json.loads((folder / "manifest.json").read_text())
    assert validate_release_tfjs(folder, manifest) == [folder / "tfjs"]
    results = rerun_tfjs_parity(folder, manifest, _model(), [str(T1)])
    assert [(r.artifact, r.passed, r.input) for r in results] == [
        ("tfjs/model.json", True, "t1_crop.nii.gz centre 32³ fed LIA (BrainChop)")]
    damaged = tmp_path / "release"
    shutil.copytree(folder, damaged)
    shard = damaged / "tfjs" / "group1-shard1of1.bin"
    n = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[:-8])
    with pytest.raises(TfjsFormatError) as err:
        validate_release_tfjs(damaged, manifest)
    assert str(err.value) == f"{shard}: 8 bytes short (weightsManifest group 1 implies {n} bytes, shards hold {n - 8})"


def _model():
    import torch

    from meshrelease.model.meshnet import MeshNet, MeshNetSpec
    from tests.conftest import CHECKPOINT

    net = MeshNet(MeshNetSpec(channels=26))
    net.load_state_dict(torch.load(CHECKPOINT, weights_only=True, map_location="cpu")["model_state_dict"])
    return net.eval()


def test_build_step_announces_the_python_fallback_when_node_is_missing(release_26, monkeypatch, tmp_path):
    import copy

    from meshrelease.export.tfjs_artifacts import verify_tfjs
    from tests.conftest import T1

    release = copy.copy(release_26)
    release.estimates, release.timings = {}, {}
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'node' on PATH
    notes: list[str] = []
    results = verify_tfjs(release, _model(), [str(T1)], crop=16, note=notes.append)
    assert notes == ["TF.js parity: Node.js is not installed (no 'node' on PATH); "
                     "using meshrelease's Python re-implementation of the TF.js model instead"]
    assert results[0].passed and results[0].runtime.startswith("python re-implementation of tfjs")
    assert release.estimates["tfjs_parity"]["runner"] == "python"
