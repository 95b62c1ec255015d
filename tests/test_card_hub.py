"""The model card on a Hub: published with the release, hashes equal the pushed files, and its usage runs.

Two real releases go to a local Hub-compatible server through ``meshrelease publish``: v1 (fold 0
restart 0) and then v2 (restart 2), so main has moved past v1 when v1's usage snippet runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import numpy as np
import pytest
from huggingface_hub import HfApi, ModelCard, constants, hf_hub_download

from meshrelease.cli import main
from meshrelease.document.card import usage_snippet
from meshrelease.publish.server import HubServer

from .card_helpers import (
    CHECKPOINT, CHECKPOINT_2, CONFIG, CROP, RESULTS, RESULTS_2, T1, card_files, recomputed_means, results, sha256_of,
)

REPO_ID = "me/meshnet_26"
SNIPPET_CROP = 48  # the central 48³ of the real T1 holds predicted lesion voxels; 32³ holds none


@dataclass
class Published:
    url: str
    out: Path
    downloads: Path

    def download(self, path: str, tag: str) -> Path:
        return Path(hf_hub_download(REPO_ID, path, revision=tag, endpoint=self.url, token=False,
                                    cache_dir=self.downloads))


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    tmp = tmp_path_factory.mktemp("card-hub")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(tmp / "hf-home"))
        mp.setenv("HF_TOKEN_PATH", str(tmp / "hf-home" / "token"))
        mp.setenv("HF_HUB_DISABLE_XET", "1")
        for var in ("HF_ENDPOINT", "HF_TOKEN", "MESHRELEASE_HUB_ROOT", "MESHRELEASE_HUB_FAULTS"):
            mp.delenv(var, raising=False)
        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        mp.setattr(constants, "HF_TOKEN_PATH", str(tmp / "hf-home" / "token"))
        with HubServer(tmp / "hub") as server:
            out = tmp / "releases"
            common = ["--crop", str(CROP), "--config", str(CONFIG), "--out", str(out), "--endpoint", server.url,
                      "--repo", REPO_ID, "--json"]
            assert main(["publish", "meshnet_26", "--tag", "v1", "--checkpoint", str(CHECKPOINT), *common]) == 0
            assert main(["publish", "meshnet_26", "--tag", "v2", "--checkpoint", str(CHECKPOINT_2),
                         "--results", str(RESULTS_2), *common]) == 0
            yield Published(server.url, out / "meshnet_26", tmp / "downloads")


def test_published_card_parses_and_carries_results_json(published: Published) -> None:
    card = ModelCard.load(published.download("README.md", "v1"))
    data, means = results(RESULTS), recomputed_means(RESULTS)
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert values == {"dice": data["test_dice"], "avd": data["test_avd"], "matthews_correlation": data["test_mcc"]}
    assert values["dice"] == pytest.approx(means["dice"], rel=1e-12)
    assert card.data.release_tag == "v1"
    assert card.data.source_checkpoint_sha256 == sha256_of(CHECKPOINT)
    v2 = ModelCard.load(published.download("README.md", "v2"))
    assert {r.metric_type: r.metric_value for r in v2.data.eval_results}["dice"] == results(RESULTS_2)["test_dice"]


def test_card_hashes_equal_the_pushed_files(published: Published) -> None:
    for tag in ("v1", "v2"):
        text = published.download("README.md", tag).read_text()
        listed = card_files(text)
        pushed = set(HfApi(endpoint=published.url, token=False).list_repo_files(REPO_ID, revision=tag))
        assert set(listed) == pushed - {"README.md", "manifest.json", ".gitattributes"}
        for path, row in listed.items():
            assert row["sha256"] == sha256_of(published.download(path, tag)), (tag, path)
        manifest = json.loads(published.download("manifest.json", tag).read_text())
        entry = next(f for f in manifest["files"] if f["path"] == "README.md")
        assert entry["sha256"] == sha256_of(published.download("README.md", tag))


def test_card_changelog_compares_with_the_previous_tag(published: Published) -> None:
    text = published.download("README.md", "v2").read_text()
    old, new = recomputed_means(RESULTS), recomputed_means(RESULTS_2)
    assert "Against `v1`, the previous release in this repository:" in text
    assert f"- Source checkpoint changed: sha256 `{sha256_of(CHECKPOINT)}` → `{sha256_of(CHECKPOINT_2)}`." in text
    assert f"Dice {old['dice']:.3f} → {new['dice']:.3f} ({new['dice'] - old['dice']:+.3f})" in text
    assert "No earlier release of this repository to compare against." in published.download("README.md", "v1").read_text()


def test_usage_snippet_downloads_by_tag_and_segments_real_mri(published: Published, tmp_path: Path) -> None:
    import nibabel as nib
    import onnxruntime as ort

    from meshrelease.verify.mri import center_crop, load_sample

    snippet = usage_snippet(published.download("README.md", "v1").read_text())
    script = tmp_path / "segment.py"
    script.write_text(snippet)
    # main has moved on to v2 (other weights): only a download pinned to v1 passes the snippet's hash check
    v1_model, v2_model = published.download("onnx/model.onnx", "v1"), published.download("onnx/model.onnx", "v2")
    assert sha256_of(v1_model) != sha256_of(v2_model)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=published.url, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HOME=str(tmp_path / "user-hf-home"))
    mask_path = tmp_path / "lesion.nii.gz"
    run = subprocess.run([sys.executable, str(script), str(T1), str(mask_path), str(SNIPPET_CROP)], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr

    # what the snippet must have computed: the release's fp32 model on the conformed volume's central crop
    session = ort.InferenceSession(str(v1_model), providers=["CPUExecutionProvider"])
    crop = center_crop(load_sample(T1), SNIPPET_CROP)
    expected = session.run(None, {session.get_inputs()[0].name: crop[None, None]})[0][0].argmax(0)
    lesion = int((expected == 1).sum())
    assert lesion > 0
    assert run.stdout == f"{lesion} lesion voxels (1 mm³ each) -> {mask_path}\n"

    mask = nib.load(str(mask_path))
    original = nib.load(str(T1))
    assert mask.shape == original.shape and np.allclose(mask.affine, original.affine)  # the input's own grid
    ras = np.asarray(nib.as_closest_canonical(mask).dataobj)
    start = (256 - SNIPPET_CROP) // 2
    window = (slice(start, start + SNIPPET_CROP),) * 3
    assert np.array_equal(ras[window], expected)
    assert int(ras.sum()) == lesion  # nothing outside the crop


def test_validate_yaml_accepts_the_card_and_rejects_invalid_model_index(published: Published,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    good = published.download("README.md", "v1").read_text()
    answer = httpx2.post(f"{published.url}/api/validate-yaml", json={"repoType": "model", "content": good})
    assert (answer.status_code, answer.json()) == (200, {"errors": [], "warnings": []})
    monkeypatch.setattr(constants, "ENDPOINT", published.url)
    ModelCard(good).validate()  # the client's own call to the endpoint

    bad = good.replace("    metrics:\n    - type: dice", "    scores:\n    - type: dice", 1)
    assert bad != good
    with pytest.raises(ValueError) as parsed:
        ModelCard(bad)
    expected = " ".join(str(parsed.value).split())
    answer = httpx2.post(f"{published.url}/api/validate-yaml", json={"repoType": "model", "content": bad})
    assert answer.status_code == 400
    assert answer.json() == {"errors": [{"message": expected}], "warnings": []}

    api = HfApi(endpoint=published.url, token=False)
    head = api.list_repo_commits(REPO_ID)[0].commit_id
    with pytest.raises(ValueError) as refused:  # create_commit asks validate-yaml before committing a README
        api.upload_file(path_or_fileobj=bad.encode(), path_in_repo="README.md", repo_id=REPO_ID)
    assert str(refused.value) == f"Invalid metadata in README.md.\n- {expected}"
    assert api.list_repo_commits(REPO_ID)[0].commit_id == head
