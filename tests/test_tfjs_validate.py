"""Malformed TF.js folders: the validator and import-brainchop answer with one line naming the file and problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from meshrelease.cli import main
from meshrelease.errors import TfjsFormatError, VerificationError
from meshrelease.export.tfjs import export_pytorch_to_tfjs
from meshrelease.model.meshnet import MeshNet, MeshNetSpec
from meshrelease.verify.tfjs_parity import node_runner_status, run_tfjs_node
from meshrelease.verify.tfjs_validate import validate_layers_model

REPO = Path(__file__).resolve().parents[1]
BRAINCHOP_MODELS = REPO.parent / "shared" / "data" / "brainchop" / "models"
SHARD = "group1-shard1of1.bin"


@pytest.fixture(scope="module")
def small_export(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = MeshNet(MeshNetSpec(channels=4, dilations=(1, 2, 1))).eval()
    return export_pytorch_to_tfjs(net, tmp_path_factory.mktemp("tfjs") / "small")


@pytest.fixture
def broken(small_export, tmp_path):
    """A fresh copy to damage, plus helpers to edit its model.json."""
    folder = tmp_path / "broken"
    shutil.copytree(small_export, folder)

    class Folder:
        path = folder
        mj = folder / "model.json"
        bin = folder / SHARD

        def doc(self) -> dict:
            return json.loads(self.mj.read_text())

        def write(self, doc: dict) -> None:
            self.mj.write_text(json.dumps(doc))

        def layers(self, doc: dict) -> list[dict]:
            return doc["modelTopology"]["model_config"]["config"]["layers"]

        def weights(self, doc: dict) -> list[dict]:
            return doc["weightsManifest"][0]["weights"]

    return Folder()


def import_error(folder: Path, capsys) -> str:
    code = main(["import-brainchop", str(folder), "--out", str(folder.parent / "out.pt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert not (folder.parent / "out.pt").exists()
    return err.removeprefix("meshrelease: error: ")


def check(folder: Path, capsys, expected: str) -> None:
    with pytest.raises(TfjsFormatError) as err:
        validate_layers_model(folder)
    assert str(err.value) == expected
    assert import_error(folder, capsys) == expected


@pytest.mark.parametrize("name", ["model5_gw_ae", "model20chan3cls", "mindgrab"])
def test_real_brainchop_models_pass_the_validator(name):
    model = validate_layers_model(BRAINCHOP_MODELS / name)
    doc = json.loads((BRAINCHOP_MODELS / name / "model.json").read_text())
    listed = [w["name"] for g in doc["weightsManifest"] for w in g["weights"]]
    assert sorted(model.weights) == sorted(listed)
    assert model.input_shape == [None, 256, 256, 256, 1] and model.precision == "float32"


def test_missing_weight(broken, capsys):
    doc = broken.doc()
    entries = broken.weights(doc)
    idx = next(i for i, e in enumerate(entries) if e["name"] == "conv3d_1/bias")
    offset = sum(int(np.prod(e["shape"])) * 4 for e in entries[:idx])
    data = broken.bin.read_bytes()
    broken.bin.write_bytes(data[:offset] + data[offset + 4 * entries[idx]["shape"][0]:])
    del entries[idx]
    broken.write(doc)
    check(broken.path, capsys, f"{broken.mj}: weight 'conv3d_1/bias' of layer 'conv3d_1' is missing from weightsManifest")


def test_shape_mismatch(broken, capsys):
    doc = broken.doc()
    entry = next(e for e in broken.weights(doc) if e["name"] == "conv3d_1/kernel")
    assert entry["shape"] == [3, 3, 3, 4, 4]
    entry["shape"] = [3, 3, 3, 2, 8]  # same byte count, wrong layout
    broken.write(doc)
    check(broken.path, capsys, f"{broken.mj}: weight 'conv3d_1/kernel' has shape [3,3,3,2,8] in weightsManifest, layer 'conv3d_1' needs [3,3,3,4,4]")


def test_short_shard(broken, capsys):
    data = broken.bin.read_bytes()
    broken.bin.write_bytes(data[:-4])
    check(broken.path, capsys, f"{broken.bin}: 4 bytes short (weightsManifest group 1 implies {len(data)} bytes, shards hold {len(data) - 4})")


def test_extra_bytes_that_tfjs_would_accept_silently(broken, capsys):
    data = broken.bin.read_bytes()
    broken.bin.write_bytes(data + b"\0\0\0")
    check(broken.path, capsys, f"{broken.bin}: 3 extra bytes after the last weight (weightsManifest group 1 implies {len(data)} bytes, shards hold {len(data) + 3})")


def test_missing_shard(broken, capsys):
    broken.bin.unlink()
    check(broken.path, capsys, f"{broken.bin}: missing (listed in weightsManifest of model.json)")


def test_unknown_layer(broken, capsys):
    doc = broken.doc()
    broken.layers(doc)[2]["class_name"] = "BatchNormalization"
    broken.write(doc)
    check(broken.path, capsys, f"{broken.mj}: layer 'activation_0' has unknown class 'BatchNormalization' (supported: Activation, Conv3D, Dropout, InputLayer, SpatialDropout3D)")


def test_dangling_inbound_node(broken, capsys):
    doc = broken.doc()
    broken.layers(doc)[3]["inbound_nodes"] = [[["nope", 0, 0, {}]]]
    broken.write(doc)
    check(broken.path, capsys, f"{broken.mj}: layer 'conv3d_1' inbound node refers to missing layer 'nope'")


def test_dangling_inbound_node_hangs_tfjs_and_is_killed_by_the_timeout(broken):
    status = node_runner_status()
    assert status.available, status.reason
    doc = broken.doc()
    broken.layers(doc)[3]["inbound_nodes"] = [[["nope", 0, 0, {}]]]
    broken.write(doc)
    with pytest.raises(VerificationError) as err:
        run_tfjs_node(broken.path, None, timeout_s=4)
    assert str(err.value) == (f"{broken.path.resolve() / 'model.json'}: TF.js did not finish loading/running within 4 s "
                              "(tf.loadLayersModel hangs on an inbound node that names a missing layer)")


def test_invalid_layer_name(broken, capsys):
    doc = broken.doc()
    broken.layers(doc)[2]["name"] = "act:0"
    broken.write(doc)
    check(broken.path, capsys, f"{broken.mj}: layer 2 has invalid name 'act:0' (tfjs accepts [A-Za-z0-9][-A-Za-z0-9._/]*)")


def test_not_json(broken, capsys):
    broken.mj.write_text('{"format": "layers-model",')
    check(broken.path, capsys, f"{broken.mj}: not valid JSON (Expecting property name enclosed in double quotes at line 1 column 27)")


def test_missing_model_json(tmp_path, capsys):
    check(tmp_path, capsys, f"{tmp_path / 'model.json'}: missing (a TF.js layers-model folder needs model.json)")


def test_graph_model_is_not_a_layers_model(broken, capsys):
    doc = broken.doc()
    doc["format"] = "graph-model"
    broken.write(doc)
    check(broken.path, capsys, f"{broken.mj}: format is 'graph-model', expected 'layers-model' (BrainChop loads with tf.loadLayersModel)")


def test_shard_path_outside_the_folder(broken, capsys):
    doc = broken.doc()
    doc["weightsManifest"][0]["paths"] = ["../elsewhere.bin"]
    broken.write(doc)
    check(broken.path, capsys, f"{broken.mj}: weightsManifest path '../elsewhere.bin' is not a file inside the model folder")


def test_non_finite_weights(broken, capsys):
    data = bytearray(broken.bin.read_bytes())
    data[0:4] = np.array([np.nan], dtype="<f4").tobytes()
    broken.bin.write_bytes(bytes(data))
    check(broken.path, capsys, f"{broken.bin}: weight 'conv3d_0/kernel' has 1 non-finite values")


def test_validate_tfjs_verb_reports_one_line(small_export, broken, capsys):
    assert main(["validate-tfjs", str(small_export), "--node", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    doc = json.loads((small_export / "model.json").read_text())
    assert summary["layers"] == len(doc["modelTopology"]["model_config"]["config"]["layers"])
    assert summary["parameters"] == sum(int(np.prod(w["shape"])) for w in doc["weightsManifest"][0]["weights"])
    assert summary["precision"] == "float32" and summary["tfjs_load"]["tfjs"] == "4.22.0"
    broken.bin.write_bytes(broken.bin.read_bytes() + b"\0")
    assert main(["validate-tfjs", str(broken.path)]) == 2
    assert capsys.readouterr().err.startswith(f"meshrelease: error: {broken.bin}: 1 extra bytes after the last weight")
