"""The released TF.js model matches PyTorch in the real TF.js runtime, fed the way BrainChop feeds it (LIA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from meshrelease.export.orientation import reorient_volume
from meshrelease.export.tfjs import export_pytorch_to_tfjs
from meshrelease.model.meshnet import MeshNet, MeshNetSpec
from meshrelease.verify.mri import load_sample
from meshrelease.verify.tfjs_parity import (
    brainchop_conform,
    crop_box,
    node_runner_status,
    reorient_box,
    run_tfjs_node,
    run_tfjs_python,
    tfjs_parity,
)
from meshrelease.verify.tfjs_validate import validate_layers_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CHECKPOINT = SHARED / "arc-meshchop" / "fold_0_restart_0" / "final.pt"
T1 = SHARED / "brainchop" / "t1_crop.nii.gz"
CROP = 24  # 26 channels in pure-JS tfjs: ~3 s at 24^3, ~9 s at 32^3 (2 cores)


@pytest.fixture(scope="module")
def meshnet26() -> MeshNet:
    net = MeshNet(MeshNetSpec(channels=26))
    net.load_state_dict(torch.load(CHECKPOINT, weights_only=True, map_location="cpu")["model_state_dict"])
    return net.eval()


@pytest.fixture(scope="module")
def exports(meshnet26, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tfjs-parity")
    out = {q: export_pytorch_to_tfjs(meshnet26, root / q, quantization=q) for q in ("float32", "float16", "uint8")}
    out["unoriented"] = export_pytorch_to_tfjs(meshnet26, root / "unoriented", input_orientation="RAS")
    return out


def require_node() -> None:
    status = node_runner_status()
    assert status.available, status.reason


def test_brainchop_conform_of_the_real_t1_is_the_training_array_reordered():
    ras, lia = load_sample(T1), brainchop_conform(T1)
    assert np.array_equal(reorient_volume(ras, "RAS", "LIA"), lia)
    box = crop_box(ras.shape, 20, (60, 90, 150))
    assert np.array_equal(reorient_volume(ras[box], "RAS", "LIA"), lia[reorient_box(box, ras.shape, "RAS", "LIA")])


def test_fp32_tfjs_in_node_matches_pytorch_in_brainchop_orientation(meshnet26, exports):
    require_node()
    parity = tfjs_parity(exports["float32"], meshnet26, T1, crop=CROP, runner="node")
    r = parity.result
    assert parity.runner == "node" and parity.fallback_reason is None
    assert r.runtime == "tfjs 4.22.0 (cpu, Node)"
    assert r.input == f"t1_crop.nii.gz centre {CROP}³ fed LIA (BrainChop)"
    assert r.failures == [] and r.max_abs <= 1e-4 and r.agreement == 1.0
    assert parity.orientation == {"fed": "LIA", "declared_input": "LIA", "trained": "RAS", "reference": "RAS"}
    print(f"tfjs node fp32 {CROP}³: max |Δ| {r.max_abs:.2e}, agreement {r.agreement:.4%}, {parity.seconds:.1f} s")


def test_without_reoriented_kernels_the_model_is_wrong_in_brainchop(meshnet26, exports):
    """The control: the same weights exported as trained (RAS) disagree with PyTorch on BrainChop's LIA input."""
    require_node()
    good = tfjs_parity(exports["float32"], meshnet26, T1, crop=16, center=(90, 150, 120), runner="node").result
    bad = tfjs_parity(exports["unoriented"], meshnet26, T1, crop=16, center=(90, 150, 120), runner="node").result
    assert good.failures == []
    assert bad.max_abs > 1000 * max(good.max_abs, 1e-6)
    assert bad.failures[0].startswith(f"tfjs/model.json on t1_crop.nii.gz at 82x142x112 16³ fed LIA (BrainChop): max |Δlogit|")


@pytest.mark.parametrize("precision", ["float16", "uint8"])
def test_quantized_tfjs_is_judged_by_labels(meshnet26, exports, precision):
    require_node()
    r = tfjs_parity(exports[precision], meshnet26, T1, crop=16, runner="node").result
    assert r.precision == {"float16": "fp16", "uint8": "uint8"}[precision]
    assert "max_abs" not in r.thresholds.to_dict() and r.thresholds.agreement >= 0.995
    assert r.failures == [] and r.agreement >= r.thresholds.agreement
    assert r.max_abs > 0  # the weights really are rounded


def test_python_reader_recomputes_what_tfjs_computes(exports):
    require_node()
    volume = np.ascontiguousarray(brainchop_conform(T1)[crop_box((256,) * 3, 16, (120, 110, 140))])
    for name in ("float32", "uint8"):
        node_out, summary = run_tfjs_node(exports[name], volume)
        py_out = run_tfjs_python(validate_layers_model(exports[name]), volume)
        assert summary["output_shape"] == [1, 16, 16, 16, 2] and py_out.shape == (16, 16, 16, 2)
        assert np.abs(node_out - py_out).max() <= 1e-5


def test_without_node_the_parity_says_so_and_uses_the_python_reader(meshnet26, exports, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'node' anywhere on PATH
    parity = tfjs_parity(exports["float32"], meshnet26, T1, crop=CROP)
    assert parity.runner == "python"
    assert parity.fallback_reason == "Node.js is not installed (no 'node' on PATH)"
    assert parity.result.runtime == "python re-implementation of tfjs (Node.js is not installed (no 'node' on PATH))"
    assert parity.result.failures == [] and parity.result.max_abs <= 1e-4


def test_labels_match_pytorch_in_brainchop_orientation_on_a_tissue_model(tmp_path):
    """With a model whose labels vary on a small crop (BrainChop's grey/white-matter MeshNet, imported to RAS),
    the re-oriented TF.js export gives PyTorch's labels voxel for voxel; exported without re-orientation it does not."""
    require_node()
    from meshrelease.checkpoint.brainchop_import import import_brainchop

    model = import_brainchop(SHARED / "brainchop" / "models" / "model5_gw_ae").to_model()
    good = export_pytorch_to_tfjs(model, tmp_path / "good")
    bad = export_pytorch_to_tfjs(model, tmp_path / "bad", input_orientation="RAS")
    kw = dict(crop=32, center=(128, 150, 140), runner="node")
    ok, wrong = tfjs_parity(good, model, T1, **kw).result, tfjs_parity(bad, model, T1, **kw).result
    assert ok.failures == [] and ok.agreement == 1.0 and ok.max_abs <= 1e-4
    assert 0.05 < ok.dice <= 1.0 and wrong.agreement < 0.99
    print(f"gw_ae 32³ labels: oriented agreement {ok.agreement:.4%}, unoriented {wrong.agreement:.4%}")


def test_brainchop_input_does_not_depend_on_the_files_voxel_order(tmp_path):
    import nibabel as nib

    ras_file = tmp_path / "t1_ras.nii.gz"
    nib.save(nib.as_closest_canonical(nib.load(str(T1))), str(ras_file))
    assert "".join(nib.aff2axcodes(nib.load(str(ras_file)).affine)) == "RAS"
    assert np.array_equal(brainchop_conform(ras_file), brainchop_conform(T1))
