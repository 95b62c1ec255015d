"""`meshrelease build` on the real MeshNet-26 checkpoint and real T1: artifacts, parity, sizes, manifest."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from meshrelease.checkpoint.load import build_model, read_state_dict
from meshrelease.cli import main
from meshrelease.model.meshnet import MeshNetSpec
from meshrelease.verify.mri import center_crop, load_sample

from .conftest import CHECKPOINT, REPO, T1, read_manifest

CONFIG = str(REPO / "meshrelease.toml")


@pytest.fixture(scope="module")
def torch_model():
    return build_model(read_state_dict(CHECKPOINT), MeshNetSpec(26), "meshnet_26", 147_474)


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_release_folder_has_every_artifact_hashed_in_the_manifest(release_26):
    folder = release_26.out_dir
    m = read_manifest(folder)
    assert m["variant"] == "meshnet_26" and m["tag"] == "v1" and m["passed"] is True
    assert m["architecture"]["parameters"] == 147_474
    on_disk = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert sorted(f["path"] for f in m["files"]) == on_disk
    for f in m["files"]:
        assert sha(folder / f["path"]) == f["sha256"]
        assert (folder / f["path"]).stat().st_size == f["size"]
    precisions = {f["path"]: f["precision"] for f in m["files"] if f["format"] == "onnx"}
    assert precisions == {"onnx/model.onnx": "fp32", "onnx/model_fp16.onnx": "fp16", "onnx/model_int8.onnx": "int8"}
    assert m["provenance"]["source"]["sha256"] == sha(CHECKPOINT)
    # a local source is recorded relative to the working directory: no machine layout in a published manifest
    assert m["provenance"]["source"]["uri"] == os.path.relpath(CHECKPOINT, Path.cwd())
    assert str(REPO.parent) not in (folder / "manifest.json").read_text()
    assert m["provenance"]["versions"]["torch"] == torch.__version__.split("+")[0] or m["provenance"]["versions"]["torch"].startswith("2.")
    assert m["settings"]["int8_method"] == "weight-only"


def test_fp32_onnx_is_folded_dynamic_checked_and_path_free(release_26):
    path = release_26.out_dir / "onnx/model.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == 10 and ops.count("Relu") == 9 and set(ops) == {"Conv", "Relu"}
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 1, "D", "H", "W"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["variant"] == "meshnet_26" and meta["tag"] == "v1" and meta["classes"] == "2"
    assert meta["source_sha256"] == sha(CHECKPOINT)
    assert "RAS" in meta["preprocessing"]
    assert model.opset_import[0].version == 17
    blob = path.read_bytes()
    for local in (str(REPO), str(Path.home()), str(CHECKPOINT.parent), "Traceback", "site-packages"):
        assert local.encode() not in blob
    # folded initializers: conv weights + biases only (BatchNorm gone), 147,006 values
    n_values = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert n_values == 147_474 - 9 * 2 * 26


def test_fp16_keeps_float32_io_and_int8_runs_in_onnxruntime(release_26):
    fp16 = onnx.load(str(release_26.out_dir / "onnx/model_fp16.onnx"))
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    int8 = onnx.load(str(release_26.out_dir / "onnx/model_int8.onnx"))
    assert {t.data_type for t in int8.graph.initializer if t.name.endswith(".int8")} == {onnx.TensorProto.INT8}
    assert {p.key: p.value for p in int8.metadata_props}["int8_method"] == "weight-only"
    sess = ort.InferenceSession(str(release_26.out_dir / "onnx/model_int8.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": np.zeros((2, 1, 9, 17, 5), np.float32)})[0]
    assert y.shape == (2, 2, 9, 17, 5)


def test_parity_is_recomputed_independently_on_real_mri(release_26, torch_model):
    """Re-run the released files on a real-MRI crop (different from the build's) and measure against PyTorch."""
    crop = center_crop(load_sample(T1), 48)[4:44, 0:48, 8:40]  # non-cubic: dynamic D, H, W
    with torch.inference_mode():
        ref = torch_model(torch.from_numpy(crop[None, None].copy())).numpy()
    labels = ref.argmax(1)
    limits = {"model.onnx": (1e-4, 1.0), "model_fp16.onnx": (None, 0.999), "model_int8.onnx": (None, 0.995)}
    for name, (max_abs, agreement) in limits.items():
        out = ort.InferenceSession(str(release_26.out_dir / "onnx" / name), providers=["CPUExecutionProvider"]).run(
            None, {"input": crop[None, None]})[0]
        if max_abs is not None:
            assert np.abs(out - ref).max() <= max_abs
        assert (out.argmax(1) == labels).mean() >= agreement


def test_manifest_parity_numbers_meet_thresholds_on_both_inputs(release_26):
    m = read_manifest(release_26.out_dir)
    onnx_rows = [r for r in m["parity"] if r["runtime"] == "onnxruntime"]
    rows = {(r["artifact"], r["input"]): r for r in onnx_rows}
    assert len(rows) == 6  # 3 artifacts x (random volume, real T1 crop)
    inputs = {r["input"] for r in onnx_rows}
    assert inputs == {"random 32³ seed 0", "t1_crop.nii.gz centre 96³"}
    assert {r["artifact"] for r in m["parity"]} - {r["artifact"] for r in onnx_rows} == {"tfjs/model.json"}
    for r in onnx_rows:
        assert r["shape"] == [1, 2, 32, 32, 32] or r["shape"] == [1, 2, 96, 96, 96]
        assert r["passed"] and not r["failures"]
    fp32 = rows[("onnx/model.onnx", "t1_crop.nii.gz centre 96³")]
    assert fp32["max_abs"] <= 1e-4 and fp32["agreement"] == 1.0 and fp32["dice"] == 1.0
    fp16 = rows[("onnx/model_fp16.onnx", "t1_crop.nii.gz centre 96³")]
    assert fp16["agreement"] >= 0.999
    int8 = rows[("onnx/model_int8.onnx", "t1_crop.nii.gz centre 96³")]
    assert int8["agreement"] >= 0.995 and int8["dice"] >= 0.98
    # the real crop contains foreground, so Dice is informative rather than trivially 1
    assert 0 < int8["mean_abs"] < int8["max_abs"]


def test_size_budgets_follow_the_parameter_count(release_26):
    m = read_manifest(release_26.out_dir)
    sizes = {s["artifact"]: s for s in m["sizes"]}
    fp32_bytes = (release_26.out_dir / "onnx/model.onnx").stat().st_size
    assert sizes["onnx/model.onnx"]["budget"] == int(1.03 * 147_474 * 4)
    assert sizes["onnx/model_fp16.onnx"]["budget"] == int(0.53 * fp32_bytes)
    assert sizes["onnx/model_int8.onnx"]["budget"] == int(0.30 * fp32_bytes)
    shards = sorted((release_26.out_dir / "tfjs").glob("*.bin"))
    tfjs = sizes[f"tfjs/*.bin ({len(shards)} shard{'s' if len(shards) > 1 else ''})"]
    assert tfjs["bytes"] == sum(p.stat().st_size for p in shards) and tfjs["budget"] == int(1.03 * 147_474 * 4)
    assert all(s["passed"] and s["bytes"] <= s["budget"] for s in sizes.values())
    act = m["estimates"]["activation_memory"]
    assert act["bytes_per_activation_fp32"] == 26 * 256**3 * 4


def build_cli(out: Path, *extra: str, tag: str = "v1", variant: str = "meshnet_26") -> list[str]:
    return ["build", variant, "--tag", tag, "--checkpoint", str(CHECKPOINT), "--sample", str(T1), "--out", str(out),
            "--crop", "32", "--config", CONFIG, *extra]


def test_two_builds_are_byte_identical(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    for name in ("a", "b"):
        assert main(build_cli(tmp_path / name, "--json")) == 0
    summary = json.loads(capsys.readouterr().out.split("\n}\n")[0] + "\n}")
    assert summary["passed"] and summary["parameters"] == 147_474
    ma, mb = read_manifest(tmp_path / "a/meshnet_26/v1"), read_manifest(tmp_path / "b/meshnet_26/v1")
    assert ma["created"] == mb["created"] == "2023-11-14T22:13:20Z"
    for f in ma["files"]:
        if f["path"] != "report.md":
            assert sha(tmp_path / "a/meshnet_26/v1" / f["path"]) == sha(tmp_path / "b/meshnet_26/v1" / f["path"])
    ma.pop("timings"), mb.pop("timings")
    assert ma == mb


def test_json_summary_is_machine_readable(tmp_path, capsys):
    assert main(build_cli(tmp_path, "--json")) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["out_dir"] == str(tmp_path / "meshnet_26" / "v1")
    assert {f["path"] for f in data["files"]} >= {"onnx/model.onnx", "onnx/model_fp16.onnx", "onnx/model_int8.onnx"}
    assert captured.err == ""  # --json keeps progress off the terminal too


@pytest.mark.parametrize("method,op", [("dynamic", "ConvInteger"), ("static", "QuantizeLinear")])
def test_other_int8_methods_are_recorded_and_run(tmp_path, method, op):
    assert main(build_cli(tmp_path, "--int8-method", method, "--json")) == 0
    m = read_manifest(tmp_path / "meshnet_26/v1")
    int8 = next(f for f in m["files"] if f["precision"] == "int8")
    assert int8["meta"]["int8_method"] == method and op in int8["meta"]["ops"]
    assert m["settings"]["int8_method"] == method


def test_failed_parity_fails_the_build_and_writes_nothing(tmp_path, capsys):
    cfg = tmp_path / "strict.toml"
    cfg.write_text((REPO / "meshrelease.toml").read_text().replace(
        'checkpoint = "../shared', f'checkpoint = "{REPO.parent}/shared').replace(
        'samples = ["../shared', f'samples = ["{REPO.parent}/shared').replace(
        'results = "../shared', f'results = "{REPO.parent}/shared').replace("max_abs = 1e-4", "max_abs = 1e-9"))
    out = tmp_path / "out"
    code = main(["build", "meshnet_26", "--tag", "v1", "--out", str(out), "--crop", "32", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 4
    line = err.strip().splitlines()[-1]
    assert line.startswith("meshrelease: error: verification failed: onnx/model.onnx on random 32³ seed 0: max |Δlogit| ")
    # fp32 ONNX on both inputs and the fp32 TF.js model all miss a 1e-9 bound
    assert line.endswith(" > 1e-09 (and 2 more); nothing was written")
    assert list(out.iterdir()) == []  # not even an empty meshnet_26/ folder


def test_full_flag_and_crop_bounds(tmp_path, capsys):
    assert main(build_cli(tmp_path, "--crop", "2")) == 2
    assert capsys.readouterr().err.strip() == "meshrelease: error: crop 2 must be between 4 and 256 voxels"


def test_github_actions_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    monkeypatch.setenv("GITHUB_REPOSITORY", "org/models")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.delenv("GITHUB_REF_NAME", raising=False)
    assert main(build_cli(tmp_path, "--json")) == 0
    prov = read_manifest(tmp_path / "meshnet_26/v1")["provenance"]
    assert prov["github_actions"]["sha"] == "a" * 40
    assert prov["github_actions"]["run_url"] == "https://github.com/org/models/actions/runs/42"


def test_tfjs_weights_can_be_stored_as_float16(tmp_path):
    assert main(build_cli(tmp_path, "--tfjs-weights", "float16", "--tfjs-crop", "16", "--json")) == 0
    folder = tmp_path / "meshnet_26/v1"
    m = read_manifest(folder)
    model_json = json.loads((folder / "tfjs/model.json").read_text())
    (group,) = model_json["weightsManifest"]
    assert {w["quantization"]["dtype"] for w in group["weights"]} == {"float16"}
    shard_bytes = sum(p.stat().st_size for p in (folder / "tfjs").glob("*.bin"))
    assert shard_bytes == 2 * (147_474 - 9 * 2 * 26)  # two bytes per folded value
    (row,) = [r for r in m["parity"] if r["artifact"] == "tfjs/model.json"]
    assert row["precision"] == "fp16" and row["shape"] == [1, 2, 16, 16, 16] and row["passed"]
    assert m["settings"]["tfjs_weights"] == "float16" and m["settings"]["tfjs_crop"] == 16


def test_small_variant_releases_with_its_size_allowance(tmp_path, capsys):
    """MeshNet-5's ~3 KB of ONNX graph exceed 3 % of 5,682 params; the shipped config allows 8 KB per budget."""
    from meshrelease.model.meshnet import MeshNet

    torch.manual_seed(5)
    model = MeshNet(MeshNetSpec(channels=5))
    for block in list(model.network)[:-1]:
        block.bn.running_mean.uniform_(-0.1, 0.1)
        block.bn.running_var.uniform_(0.5, 1.5)
    ckpt = tmp_path / "mn5.pt"
    torch.save({"model_state_dict": model.state_dict()}, ckpt)
    args = ["build", "meshnet_5", "--tag", "v1", "--checkpoint", str(ckpt), "--sample", str(T1), "--out",
            str(tmp_path / "out"), "--crop", "32", "--tfjs-crop", "16", "--config", CONFIG, "--json"]
    assert main(args) == 0
    sizes = {s["artifact"]: s for s in json.loads(capsys.readouterr().out)["sizes"]}
    fp32 = sizes["onnx/model.onnx"]
    assert fp32["budget"] == int(1.03 * 5_682 * 4) + 8192 and fp32["bytes"] > int(1.03 * 5_682 * 4)
    assert fp32["rule"] == "<= 1.03 x 5,682 params x 4 B + 8,192 B allowance"


def test_int8_method_none_releases_no_int8_file(tmp_path):
    assert main(build_cli(tmp_path, "--int8-method", "none", "--json")) == 0
    m = read_manifest(tmp_path / "meshnet_26/v1")
    assert not (tmp_path / "meshnet_26/v1/onnx/model_int8.onnx").exists()
    assert {f["precision"] for f in m["files"] if f["format"] == "onnx"} == {"fp32", "fp16"}
    assert m["settings"]["int8_method"] == "none" and all(r["precision"] != "int8" for r in m["parity"])
