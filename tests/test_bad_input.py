"""Every kind of bad input: one line on stderr, exit code != 0, nothing in the release folder."""

from __future__ import annotations

import pickle

import nibabel as nib
import nibabel.processing
import numpy as np
import pytest
import torch

from meshrelease.cli import main

from .conftest import CHECKPOINT, REPO, T1

CONFIG = str(REPO / "meshrelease.toml")


def run(capsys, out, *args):
    code = main(["build", *args, "--out", str(out), "--crop", "16", "--config", CONFIG])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def assert_nothing_written(out):
    assert not out.exists() or list(out.iterdir()) == []  # not even an empty VARIANT/ folder


@pytest.fixture
def out(tmp_path):
    return tmp_path / "releases"


def ck(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_missing_file(capsys, out, tmp_path):
    code, line = run(capsys, out, "meshnet_26", "--tag", "v1", "--checkpoint", str(tmp_path / "nope.pt"))
    assert (code, line) == (2, f"meshrelease: error: checkpoint {tmp_path / 'nope.pt'}: no such file")
    assert_nothing_written(out)


def test_empty_file(capsys, out, tmp_path):
    p = ck(tmp_path, "empty.pt", b"")
    assert run(capsys, out, "meshnet_26", "--tag", "v1", "--checkpoint", p) == (2, f"meshrelease: error: checkpoint {p}: file is empty")
    assert_nothing_written(out)


def test_truncated_file(capsys, out, tmp_path):
    p = ck(tmp_path, "cut.pt", CHECKPOINT.read_bytes()[:400_000])
    assert run(capsys, out, "meshnet_26", "--tag", "v1", "--checkpoint", p) == (
        2, f"meshrelease: error: checkpoint {p}: truncated or corrupt PyTorch zip archive")
    assert_nothing_written(out)


def test_text_file(capsys, out, tmp_path):
    p = ck(tmp_path, "notes.pt", b"these are not weights\n")
    assert run(capsys, out, "meshnet_26", "--tag", "v1", "--checkpoint", p) == (
        2, f"meshrelease: error: checkpoint {p}: not a PyTorch checkpoint or safetensors file (looks like text)")


def test_code_executing_pickle_is_refused_and_never_runs(capsys, out, tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    p = ck(tmp_path, "evil.pt", pickle.dumps({"model_state_dict": Payload()}))
    code, line = run(capsys, out, "meshnet_26", "--tag", "v1", "--checkpoint", p)
    assert code == 2
    assert line == (f"meshrelease: error: checkpoint {p}: refused to load, it references builtins.exec, which would "
                    "execute code (only weights_only loading is allowed)")
    assert not marker.exists()
    assert_nothing_written(out)


def test_weights_of_another_variant(capsys, out):
    code, line = run(capsys, out, "meshnet_16", "--tag", "v1", "--checkpoint", str(CHECKPOINT))
    assert code == 2
    assert line == ("meshrelease: error: weights do not fit meshnet_16: expected 16 channels, found 26 "
                    "(network.0.conv.weight has shape (26, 1, 3, 3, 3))")
    assert_nothing_written(out)


def _state():
    return torch.load(CHECKPOINT, weights_only=True, map_location="cpu")["model_state_dict"]


def test_missing_and_unexpected_keys(capsys, out, tmp_path):
    s = _state()
    del s["network.9.bias"]
    s["head.weight"] = torch.zeros(2)
    p = tmp_path / "keys.pt"
    torch.save(s, p)
    assert run(capsys, out, "meshnet_26", "--tag", "v1", "--checkpoint", str(p)) == (
        2, "meshrelease: error: weights do not fit meshnet_26: missing keys: network.9.bias; unexpected keys: head.weight")


def test_nan_weights(capsys, out, tmp_path):
    s = _state()
    s["network.9.weight"] = torch.full_like(s["network.9.weight"], float("nan"))
    p = tmp_path / "nan.pt"
    torch.save({"state_dict": s}, p)
    assert run(capsys, out, "meshnet_26", "--tag", "v1", "--checkpoint", str(p)) == (
        2, "meshrelease: error: non-finite weights: network.9.weight (52 NaN, 0 Inf)")


def test_batchnorm_without_running_statistics(capsys, out, tmp_path):
    s = {k: v for k, v in _state().items() if "running_" not in k}
    p = tmp_path / "nostats.pt"
    torch.save(s, p)
    code, line = run(capsys, out, "meshnet_26", "--tag", "v1", "--checkpoint", str(p))
    assert code == 2 and line.startswith("meshrelease: error: BatchNorm without running statistics (network.0.bn.running_mean")


def test_sha256_pin_mismatch(capsys, out):
    code, line = run(capsys, out, "meshnet_26", "--tag", "v1", "--checkpoint", str(CHECKPOINT), "--sha256", "ab" * 32)
    assert code == 3
    assert line.startswith(f"meshrelease: error: checkpoint {CHECKPOINT}: sha256 ")
    assert line.endswith(f" does not match the pinned {'ab' * 32}; refusing to load it")
    assert_nothing_written(out)


def test_unknown_variant_suggests_the_closest(capsys, out):
    assert run(capsys, out, "meshnet26", "--tag", "v1") == (
        2, "meshrelease: error: unknown variant 'meshnet26'; did you mean meshnet_26? (known: meshnet_16, meshnet_26, meshnet_5)")


@pytest.mark.parametrize("tag", ["v 1", ".v1", "v1..2", "release/v1", "v1.lock", "ünï"])
def test_invalid_tag(capsys, out, tag):
    code, line = run(capsys, out, "meshnet_26", "--tag", tag)
    assert code == 2
    assert line == (f"meshrelease: error: invalid tag {tag!r}: use letters, digits, '.', '_' and '-' "
                    "(start with a letter or digit, e.g. v1 or v1.2.0)")


def test_unwritable_output_folder(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, line = run(capsys, blocker / "releases", "meshnet_26", "--tag", "v1", "--checkpoint", str(CHECKPOINT))
    assert code == 2
    assert line == f"meshrelease: error: cannot write release folder {blocker / 'releases' / 'meshnet_26'}: Not a directory"


def test_sample_that_is_not_3d(capsys, out, tmp_path):
    p = tmp_path / "dwi.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 3), np.float32), np.eye(4)), p)
    code, line = run(capsys, out, "meshnet_26", "--tag", "v1", "--checkpoint", str(CHECKPOINT), "--sample", str(p))
    assert (code, line) == (2, f"meshrelease: error: sample {p}: expected a 3-D volume, got 4-D shape (8, 8, 8, 3)")
    assert_nothing_written(out)


def test_sample_that_is_not_nifti(capsys, out, tmp_path):
    p = tmp_path / "scan.nii"
    p.write_text("hello")
    code, line = run(capsys, out, "meshnet_26", "--tag", "v1", "--checkpoint", str(CHECKPOINT), "--sample", str(p))
    assert code == 2 and line.startswith(f"meshrelease: error: sample {p}: not a readable NIfTI image")


def test_resampled_sample_is_conformed_to_256_ras(tmp_path):
    """A 2 mm LPS sample is brought to RAS 256³ at 1 mm like training data."""
    from meshrelease.verify.mri import load_sample

    img = nib.load(str(T1))
    small = nib.processing.resample_to_output(img, voxel_sizes=(2, 2, 2), order=1)
    p = tmp_path / "t1_2mm.nii.gz"
    nib.save(small, p)
    vol = load_sample(p)
    assert vol.shape == (256, 256, 256) and vol.dtype == np.float32
    assert vol.min() == 0.0 and vol.max() == 1.0
