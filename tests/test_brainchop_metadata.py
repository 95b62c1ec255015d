"""BrainChop metadata: the model-list entry has every field BrainChop reads, chosen from the model."""

from __future__ import annotations

import json
import math

import pytest

from meshrelease.document.brainchop import brainchop_model_entry, colormap, texture_size, write_brainchop_files
from meshrelease.model.meshnet import MeshNetSpec

# inferenceModelsList fields BrainChop reads (brainchop-parameters.js)
BRAINCHOP_FIELDS = {
    "id", "type", "path", "modelName", "colormapPath", "preModelId", "preModelPostProcess", "isBatchOverlapEnable",
    "numOverlapBatches", "enableTranspose", "enableCrop", "cropPadding", "autoThreshold", "enableQuantileNorm",
    "filterOutWithPreMask", "enableSeqConv", "textureSize", "warning", "inferenceDelay", "description",
}


@pytest.mark.parametrize("channels", [5, 16, 26])
def test_model_list_entry_follows_the_activation_memory(channels):
    spec = MeshNetSpec(channels=channels)
    entry = brainchop_model_entry(name="meshnet", display_name="MeshNet", spec=spec, description="d", model_id=3)
    assert set(entry) == BRAINCHOP_FIELDS
    assert (entry["id"], entry["type"], entry["enableCrop"], entry["enableTranspose"]) == (3, "Segmentation", True, True)
    assert entry["path"] == "/models/meshnet/model.json" and entry["colormapPath"] == "./models/meshnet/colormap.json"
    assert entry["enableQuantileNorm"] is False  # arc-meshchop trains with min-max
    activation = spec.activation_bytes()
    assert activation == channels * 256**3 * 4
    assert entry["enableSeqConv"] is (activation > 512 * 1024**2)
    if activation > 1024**3:
        assert entry["warning"].startswith(f"This model holds {activation / 1024**3:.1f} GiB per layer activation")
    else:
        assert entry["warning"] is None
    assert entry["textureSize"] == math.ceil(math.sqrt(channels * 256**3 / 4))
    assert entry["textureSize"] == texture_size(spec)


def test_colormap_has_one_colour_and_label_per_class():
    cmap = colormap(["background", "lesion"])
    assert cmap == {"R": [0, 255], "G": [0, 0], "B": [0, 0], "labels": ["background", "lesion"]}
    many = colormap([f"c{i}" for i in range(13)])
    assert all(len(many[k]) == 13 for k in ("R", "G", "B", "labels")) and many["R"][0] == many["G"][0] == many["B"][0] == 0


def test_files_are_laid_out_for_public_models(tmp_path):
    spec = MeshNetSpec(channels=26)
    paths = write_brainchop_files(tmp_path / "meshnet_26", name="meshnet_26", display_name="MeshNet-26 (v1)", spec=spec,
                                  labels=("background", "stroke lesion"), description="stroke")
    assert [p.name for p in paths] == ["colormap.json", "model_info.json", "brainchop_model_entry.json"]
    cmap = json.loads(paths[0].read_text())
    assert cmap["labels"] == ["background", "stroke lesion"]
    info = json.loads(paths[1].read_text())
    assert (info["channels"], info["numClasses"], info["outputLabels"]) == (26, 2, ["background", "stroke lesion"])
    assert info["preprocessor"]["inputOrientation"] == "LIA" and info["kernelReorientation"] == "RAS->LIA"
    entry = json.loads(paths[2].read_text())
    assert entry["path"] == "/models/meshnet_26/model.json" and entry["modelName"] == "MeshNet-26 (v1)"
    with pytest.raises(ValueError) as err:
        write_brainchop_files(tmp_path / "x", name="x", display_name="x", spec=spec, labels=("a", "b", "c"))
    assert str(err.value) == "3 labels for a 2-class model"
