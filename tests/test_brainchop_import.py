"""BrainChop's own MeshNets re-released: import -> TF.js identical in TF.js, import -> ONNX same labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from meshrelease.checkpoint.brainchop_import import import_brainchop
from meshrelease.checkpoint.load import build_model, read_state_dict
from meshrelease.cli import main
from meshrelease.errors import UnsupportedModelError
from meshrelease.export.orientation import reorient_volume
from meshrelease.export.tfjs import export_pytorch_to_tfjs
from meshrelease.model.fold import fold_batchnorm
from meshrelease.model.meshnet import MeshNetSpec
from meshrelease.verify.mri import load_sample
from meshrelease.verify.runtimes import onnx_logits, onnx_session
from meshrelease.verify.tfjs_parity import brainchop_conform, crop_box, node_runner_status, reorient_box, run_tfjs_node
from meshrelease.verify.tfjs_validate import validate_layers_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
MODELS = SHARED / "brainchop" / "models"
T1 = SHARED / "brainchop" / "t1_crop.nii.gz"
GW = MODELS / "model5_gw_ae"


def json_layers(folder: Path) -> list[dict]:
    return json.loads((folder / "model.json").read_text())["modelTopology"]["model_config"]["config"]["layers"]


def require_node() -> None:
    status = node_runner_status()
    assert status.available, status.reason


@pytest.fixture(scope="module")
def imported():
    return import_brainchop(GW)


@pytest.fixture(scope="module")
def t1_crops():
    """The same 32^3 region (brain tissue) as BrainChop's LIA array and as the training RAS array."""
    ras = load_sample(T1)
    box = crop_box(ras.shape, 32, (128, 150, 140))
    lia = brainchop_conform(T1)[reorient_box(box, ras.shape, "RAS", "LIA")]
    return np.ascontiguousarray(lia), np.ascontiguousarray(ras[box])


def test_import_recovers_the_architecture_from_the_json(imported):
    convs = [la["config"] for la in json_layers(GW) if la["class_name"] == "Conv3D"]
    assert imported.spec == MeshNetSpec(
        channels=convs[0]["filters"], classes=convs[-1]["filters"], in_channels=1,
        dilations=tuple(c["dilation_rate"][0] for c in convs[:-1]), kernel_size=convs[0]["kernel_size"][0],
    )
    # colormap.json has 2 labels for this 3-class model; colormap3.json has the right 3
    assert imported.labels == json.loads((GW / "colormap3.json").read_text())["labels"]


def test_cli_writes_a_checkpoint_the_release_build_loads(tmp_path, capsys):
    out = tmp_path / "gw.pt"
    assert main(["import-brainchop", str(GW), "--out", str(out), "--name", "gw_ae"]) == 0
    text = capsys.readouterr().out
    assert "[variants.gw_ae]\nchannels = 5\nclasses = 3\ndilations = [1, 2, 4, 8, 16, 8, 4, 2, 1]\n" in text
    raw = torch.load(out, weights_only=True)  # tensors and plain values only
    assert raw["orientation"] == "RAS" and raw["imported_from"]["fed_orientation"] == "LIA"
    spec = MeshNetSpec(**{k: v for k, v in raw["meshnet_spec"].items() if k != "parameters"})
    model = build_model(read_state_dict(out), spec, "gw_ae", spec.parameter_count)
    assert sum(p.numel() for p in model.parameters()) == raw["meshnet_spec"]["parameters"]


def test_no_transpose_option_records_the_other_voxel_order(tmp_path, capsys):
    assert main(["import-brainchop", str(GW), "--out", str(tmp_path / "x.pt"), "--no-transpose", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fed_orientation"] == "AIL" and summary["orientation"] == "RAS"


def test_round_trip_to_tfjs_gives_the_original_weights_and_identical_outputs_in_tfjs(imported, tmp_path, t1_crops):
    again = export_pytorch_to_tfjs(imported.to_model(), tmp_path / "again")
    original, mine = validate_layers_model(GW), validate_layers_model(again)
    orig_names = [la["name"] for la in json_layers(GW) if la["class_name"] == "Conv3D"]
    my_names = [la["name"] for la in json_layers(again) if la["class_name"] == "Conv3D"]
    for a, b in zip(orig_names, my_names):
        for part in ("kernel", "bias"):
            assert np.array_equal(original.weights[f"{a}/{part}"], mine.weights[f"{b}/{part}"]), f"{a}/{part}"
    require_node()
    lia, _ = t1_crops
    out_original, _ = run_tfjs_node(GW, lia)
    out_again, _ = run_tfjs_node(again, lia)
    assert np.array_equal(out_original, out_again)


def test_round_trip_to_onnx_gives_the_same_labels_as_the_original_in_tfjs(imported, tmp_path, t1_crops):
    from meshrelease.export.onnx_graph import build_fp32_model, check_and_save

    path = tmp_path / "gw.onnx"
    check_and_save(build_fp32_model(fold_batchnorm(imported.to_model()), opset=17, metadata={}), path)
    lia, ras = t1_crops
    onnx_out = onnx_logits(onnx_session(path), ras)[0]  # (C, D, H, W) in RAS, as meshrelease's ONNX expects
    require_node()
    tfjs_out, _ = run_tfjs_node(GW, lia)  # BrainChop's own file on BrainChop's input
    tfjs_ras = np.moveaxis(reorient_volume(tfjs_out, "LIA", "RAS"), -1, 0)
    labels_tfjs, labels_onnx = tfjs_ras.argmax(0), onnx_out.argmax(0)
    assert np.array_equal(labels_onnx, labels_tfjs)
    assert len(np.unique(labels_tfjs)) == 3  # tissue crop: background, white and grey matter all present
    assert np.abs(onnx_out - tfjs_ras).max() <= 1e-4


def test_gn_layers_are_refused_with_one_line(capsys):
    mj = MODELS / "mindgrab" / "model.json"
    expected = (f"{mj}: layer 'conv3d_0_gn' ends in '_gn', so BrainChop normalises its output per channel "
                "(GroupNorm-style), which MeshNet does not have; refusing to import")
    with pytest.raises(UnsupportedModelError) as err:
        import_brainchop(MODELS / "mindgrab")
    assert str(err.value) == expected
    assert main(["import-brainchop", str(MODELS / "mindgrab")]) == 2
    assert capsys.readouterr().err == f"meshrelease: error: {expected}\n"


def test_non_relu_activations_are_refused_with_one_line():
    mj = MODELS / "model20chan3cls" / "model.json"
    with pytest.raises(UnsupportedModelError) as err:
        import_brainchop(MODELS / "model20chan3cls")
    assert str(err.value) == (f"{mj}: layer 'activation_1' uses activation 'elu'; MeshNet blocks use ReLU, so the model "
                              "cannot be released as a MeshNet; refusing to import")
