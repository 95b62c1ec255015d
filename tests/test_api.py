"""The Python API the original export spec promised, with its mistakes fixed."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from meshrelease.api import ExportConfig, export_model, export_to_onnx, load_exported_model, quantize_fp16, quantize_int8, validate_onnx
from meshrelease.checkpoint.load import build_model, read_state_dict
from meshrelease.errors import ConfigError
from meshrelease.model.meshnet import MeshNetSpec

from .conftest import CHECKPOINT


@pytest.fixture(scope="module")
def model():
    return build_model(read_state_dict(CHECKPOINT), MeshNetSpec(26), "meshnet_26", 147_474)


def test_export_model_returns_paths_that_run_and_match(tmp_path, model):
    paths = export_model(model, ExportConfig(output_dir=tmp_path, validation_shape=(20, 24, 16)))
    assert set(paths) == {"onnx", "onnx_fp16", "onnx_int8"}
    x = np.random.default_rng(3).random((1, 1, 16, 20, 12), dtype=np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(load_exported_model(paths["onnx"])(x) - ref).max() < 1e-4
    # fp16: float32 in, float32 out (the spec's version returned fp16 and needed fp16 input)
    out16 = load_exported_model(paths["onnx_fp16"])(x)
    assert out16.dtype == np.float32 and (out16.argmax(1) == ref.argmax(1)).mean() > 0.999
    # int8: actually loads and runs in onnxruntime on CPU
    out8 = load_exported_model(paths["onnx_int8"])(x)
    assert out8.shape == ref.shape and (out8.argmax(1) == ref.argmax(1)).mean() > 0.99


def test_validation_runs_at_any_shape_the_model_accepts(tmp_path, model):
    path = export_to_onnx(model, tmp_path / "m.onnx")
    for shape in [(8, 8, 8), (33, 7, 21)]:
        r = validate_onnx(model, path, shape=shape)
        assert r.passed and r.max_abs < 1e-4 and r.shape == (1, 2, *shape)


@pytest.mark.parametrize("method", ["weight-only", "dynamic"])
def test_quantize_from_an_onnx_file(tmp_path, model, method):
    src = export_to_onnx(model, tmp_path / "m.onnx", metadata={"variant": "meshnet_26"})
    q8 = quantize_int8(src, tmp_path / "m8.onnx", method=method)
    assert {p.key: p.value for p in onnx.load(str(q8)).metadata_props}["variant"] == "meshnet_26"
    assert validate_onnx(model, q8, shape=(16, 16, 16), precision="int8").agreement > 0.99
    q16 = quantize_fp16(src, tmp_path / "m16.onnx")
    assert q16.stat().st_size < 0.53 * src.stat().st_size


def test_export_config_rejects_unknown_formats():
    with pytest.raises(ConfigError) as exc:
        ExportConfig(formats=("onnx", "coreml"))
    assert str(exc.value) == "unknown export format(s) coreml (choose from onnx, onnx_fp16, onnx_int8, tfjs)"


def test_dice_on_a_tiny_foreground_is_reported_not_judged():
    """A few boundary voxels swing Dice by percents when the lesion is tiny; agreement still decides."""
    from meshrelease.verify.parity import Thresholds, compare_logits

    ref = np.zeros((1, 2, 20, 20, 20), np.float32)
    ref[0, 0] = 1.0
    ref[0, 1, 5:9, 5:9, 5:8] = 2.0  # 48 foreground voxels
    cand = ref.copy()
    cand[0, 1, 5, 5:9, 5:8] = 0.0  # 12 of them lost
    lenient = compare_logits(ref, cand, artifact="a", precision="int8", input_name="x",
                             thresholds=Thresholds(agreement=0.995, dice=0.98, min_foreground=1000))
    assert lenient.foreground == 48 and lenient.dice == 2 * 36 / (48 + 36) and lenient.passed
    assert lenient.notes == [f"Dice {lenient.dice:.4f} not judged: 48 foreground voxels < 1000 (agreement is)"]
    strict = compare_logits(ref, cand, artifact="a", precision="int8", input_name="x",
                            thresholds=Thresholds(agreement=0.995, dice=0.98))
    assert strict.failures == [f"a on x: foreground Dice {strict.dice:.4f} < 0.9800"]
