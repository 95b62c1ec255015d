"""The TF.js layers-model writer: BrainChop's structure, exact weights, orientation, quantization, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from meshrelease.errors import ExportError
from meshrelease.export import create_brainchop_model_info, export_pytorch_to_tfjs, export_to_tfjs
from meshrelease.export.orientation import reorient_kernel, reorient_volume
from meshrelease.export.tfjs import SHARD_BYTES, VALID_NAME, export_layers_model, quantize_uint8
from meshrelease.model.fold import fold_batchnorm, folded_parameter_count
from meshrelease.model.meshnet import MeshNet, MeshNetSpec
from meshrelease.verify.tfjs_validate import validate_layers_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CHECKPOINT = SHARED / "arc-meshchop" / "fold_0_restart_0" / "final.pt"


@pytest.fixture(scope="module")
def meshnet26() -> MeshNet:
    net = MeshNet(MeshNetSpec(channels=26))
    net.load_state_dict(torch.load(CHECKPOINT, weights_only=True, map_location="cpu")["model_state_dict"])
    return net.eval()


def _layers(doc: dict) -> list[dict]:
    return doc["modelTopology"]["model_config"]["config"]["layers"]


def lia_from_ras_by_hand(a: np.ndarray) -> np.ndarray:
    """LIA[i, j, k] = RAS[n-1-i, k, n-1-j]: L flips R, I flips S (RAS axis 2), A is RAS axis 1."""
    return np.flip(np.flip(a, 0), 2).transpose(0, 2, 1, *range(3, a.ndim))


def test_layers_model_follows_brainchop_structure(meshnet26, tmp_path):
    out = export_pytorch_to_tfjs(meshnet26, tmp_path / "m")
    doc = json.loads((out / "model.json").read_text())
    layers = _layers(doc)
    assert doc["format"] == "layers-model"
    assert layers[0]["class_name"] == "InputLayer"
    assert layers[0]["config"]["batch_input_shape"] == [None, 256, 256, 256, 1]
    convs = [la for la in layers if la["class_name"] == "Conv3D"]
    acts = [la for la in layers if la["class_name"] == "Activation"]
    assert len(convs) == len(meshnet26.spec.dilations) + 1 and len(acts) == len(meshnet26.spec.dilations)
    assert [c["config"]["dilation_rate"][0] for c in convs[:-1]] == list(meshnet26.spec.dilations)
    assert all(c["config"]["activation"] == "linear" and c["config"]["data_format"] == "channels_last" for c in convs)
    assert all(a["config"]["activation"] == "relu" for a in acts)
    # a plain chain: conv -> relu -> conv ..., each layer fed by the one before it
    assert [la["class_name"] for la in layers[1:]] == ["Conv3D", "Activation"] * len(acts) + ["Conv3D"]
    for prev, la in zip(layers, layers[1:]):
        assert la["inbound_nodes"] == [[[prev["name"], 0, 0, {}]]]
    head = layers[-1]["config"]
    assert head["kernel_size"] == [1, 1, 1] and head["use_bias"] and head["filters"] == meshnet26.spec.classes
    names = [la["name"] for la in layers]
    assert all(VALID_NAME.match(n) and not n.endswith("_gn") for n in names)
    shards = doc["weightsManifest"][0]["paths"]
    sizes = [(out / s).stat().st_size for s in shards]
    assert all(s <= SHARD_BYTES for s in sizes)
    assert sum(sizes) == folded_parameter_count(fold_batchnorm(meshnet26)) * 4


def test_weights_are_folded_transposed_and_reoriented_for_lia(meshnet26, tmp_path):
    model = validate_layers_model(export_pytorch_to_tfjs(meshnet26, tmp_path / "m"))
    folded = fold_batchnorm(meshnet26)
    names = [f"conv3d_{i}" for i in range(len(folded) - 1)] + ["output"]
    for layer, name in zip(folded, names):
        by_hand = np.ascontiguousarray(lia_from_ras_by_hand(np.moveaxis(layer.weight, (2, 3, 4), (0, 1, 2))))
        expected = np.moveaxis(by_hand, (0, 1, 2), (2, 3, 4)).transpose(2, 3, 4, 1, 0)
        assert np.array_equal(model.weights[f"{name}/kernel"], expected)
        assert np.array_equal(model.weights[f"{name}/bias"], layer.bias)
    meta = model.metadata["meshrelease"]
    assert (meta["input_orientation"], meta["trained_orientation"], meta["kernel_reorientation"]) == ("LIA", "RAS", "RAS->LIA")


def test_reorientation_matches_nibabel_on_volumes_and_is_exact_for_convolutions():
    rng = np.random.default_rng(3)
    vol = rng.random((12, 12, 12), dtype=np.float32)
    assert np.array_equal(reorient_volume(vol, "RAS", "LIA"), lia_from_ras_by_hand(vol))
    assert np.array_equal(reorient_volume(reorient_volume(vol, "RAS", "LIA"), "LIA", "RAS"), vol)
    # conv(reorient(x), reorient(k)) == reorient(conv(x, k)) for a dilated 'same' conv
    w = torch.from_numpy(rng.standard_normal((2, 1, 3, 3, 3), dtype=np.float32))
    x = torch.from_numpy(vol)[None, None]
    y = torch.nn.functional.conv3d(x, w, padding=2, dilation=2)[0].permute(1, 2, 3, 0).numpy()
    w_lia = torch.from_numpy(reorient_kernel(w.numpy(), "RAS", "LIA"))
    x_lia = torch.from_numpy(reorient_volume(vol, "RAS", "LIA"))[None, None]
    y_lia = torch.nn.functional.conv3d(x_lia, w_lia, padding=2, dilation=2)[0].permute(1, 2, 3, 0).numpy()
    assert np.allclose(reorient_volume(y, "RAS", "LIA"), y_lia, atol=1e-6)


def test_identical_input_gives_byte_identical_files(meshnet26, tmp_path):
    a = export_pytorch_to_tfjs(meshnet26, tmp_path / "a", quantization="uint8")
    b = export_pytorch_to_tfjs(meshnet26, tmp_path / "b", quantization="uint8")
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir()) == ["group1-shard1of1.bin", "model.json"]
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_small_shards_split_the_weights_and_stale_shards_are_removed(meshnet26, tmp_path):
    folded = fold_batchnorm(meshnet26)
    total = folded_parameter_count(folded) * 4
    result = export_layers_model(folded, tmp_path / "m", shard_bytes=200_000)
    count = -(-total // 200_000)
    assert result.shards == tuple(f"group1-shard{i}of{count}.bin" for i in range(1, count + 1))
    assert [(tmp_path / "m" / s).stat().st_size for s in result.shards] == [200_000] * (count - 1) + [total - 200_000 * (count - 1)]
    validate_layers_model(tmp_path / "m")
    again = export_layers_model(folded, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").glob("*.bin")) == list(again.shards) == ["group1-shard1of1.bin"]


@pytest.mark.parametrize("precision, size_factor", [("float16", 2), ("uint8", 1)])
def test_quantized_weights_are_declared_in_the_manifest(meshnet26, tmp_path, precision, size_factor):
    ref = validate_layers_model(export_pytorch_to_tfjs(meshnet26, tmp_path / "f32"))
    out = export_pytorch_to_tfjs(meshnet26, tmp_path / precision, quantization=precision)
    doc = json.loads((out / "model.json").read_text())
    entries = doc["weightsManifest"][0]["weights"]
    assert {e["dtype"] for e in entries} == {"float32"}
    assert {e["quantization"]["dtype"] for e in entries} == {precision}
    model = validate_layers_model(out)
    assert model.precision == precision
    assert (out / "group1-shard1of1.bin").stat().st_size == sum(w.size for w in ref.weights.values()) * size_factor
    for e in entries:
        original, decoded = ref.weights[e["name"]], model.weights[e["name"]]
        if precision == "float16":
            bound = np.abs(original) * 2.0**-11 + 2.0**-25
        else:
            bound = np.full(original.shape, e["quantization"]["scale"] / 2 * (1 + 1e-6))
        assert np.all(np.abs(decoded - original) <= bound), e["name"]
        assert np.all(decoded[original == 0] == 0)


def test_uint8_quantization_represents_zero_exactly():
    for values in (np.array([0.25, 1.0, 3.0], np.float32), np.array([-2.0, -0.1], np.float32),
                   np.array([-0.3, 0.0, 0.7, 0.01], np.float32), np.zeros(4, np.float32)):
        q, lo, scale = quantize_uint8(values)
        zero_point = round(-lo / scale)
        assert zero_point * scale + lo == 0.0  # tfjs de-quantizes as q*scale + min in float64
        assert lo <= 0.0 <= lo + 255 * scale
        assert np.all(np.abs(q * scale + lo - values) <= scale / 2 + 1e-12)


def test_export_from_folded_onnx_equals_export_from_pytorch(meshnet26, tmp_path):
    from meshrelease.export.onnx_graph import build_fp32_model, check_and_save

    onnx_path = tmp_path / "model.onnx"
    check_and_save(build_fp32_model(fold_batchnorm(meshnet26), opset=17, metadata={}), onnx_path)
    a = export_to_tfjs(onnx_path, tmp_path / "from_onnx")
    b = export_to_tfjs(meshnet26, tmp_path / "from_torch")
    for name in ("model.json", "group1-shard1of1.bin"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_seed_function_names_work_without_tensorflow(meshnet26, tmp_path):
    import importlib.util

    assert importlib.util.find_spec("tensorflow") is None
    out = export_pytorch_to_tfjs(meshnet26, tmp_path / "seed", model_name="meshnet_26")
    assert out == tmp_path / "seed" and (out / "model.json").is_file()
    info = create_brainchop_model_info(out, "MeshNet-26", 26)
    assert info == out / "model_info.json"
    data = json.loads(info.read_text())
    assert (data["name"], data["channels"], data["numClasses"], data["outputLabels"]) == ("MeshNet-26", 26, 2, ["background", "lesion"])
    with pytest.raises(ExportError) as err:
        export_pytorch_to_tfjs(meshnet26, tmp_path / "bad", input_shape=(1, 1, 64, 64, 64))
    assert str(err.value) == "TF.js export: BrainChop models are declared for 1x256^3 inputs, not (1, 1, 64, 64, 64)"
    with pytest.raises(ExportError) as err:
        export_to_tfjs(meshnet26, tmp_path / "bad", quantization="int4")
    assert str(err.value) == "TF.js precision 'int4' is not one of float32, float16, uint8"
