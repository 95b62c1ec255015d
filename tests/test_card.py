"""The model card of a real MeshNet-26 release, rendered offline: header, numbers, files, changelog, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from meshrelease.cli import main
from meshrelease.document import card as card_doc
from meshrelease.errors import CardError
from meshrelease.pipeline import BuildOptions, build_release
from meshrelease.publish.plan import plan_release

from .card_helpers import (
    CHECKPOINT, CHECKPOINT_2, CONFIG, CROP, RESULTS, RESULTS_2, card_files, recomputed_means, results, sha256_of,
)

REPO_ID = "me/meshnet_26"


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real MeshNet-26 release (fold 0 restart 0, its results.json from the config), built once."""
    opts = BuildOptions(variant="meshnet_26", tag="v1", checkpoint=str(CHECKPOINT), out=tmp_path_factory.mktemp("rel"),
                        crop=CROP, config_path=str(CONFIG), repo=REPO_ID)
    return build_release(opts).out_dir


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_card_is_readme_with_hub_metadata(release_dir: Path) -> None:
    card = ModelCard.load(release_dir / "README.md")
    d = card.data
    assert d.license == "apache-2.0"
    assert d.library_name == "onnx"
    assert d.pipeline_tag == "image-segmentation"
    assert d.datasets == ["hugging-science/arc-aphasia-bids"]
    for tag in ("meshnet", "brainchop", "onnx", "tfjs", "medical-imaging", "segmentation"):
        assert tag in d.tags
    assert d.release_tag == "v1"
    assert d.source_checkpoint_sha256 == sha256_of(CHECKPOINT)


def test_model_index_equals_results_json(release_dir: Path) -> None:
    card = ModelCard.load(release_dir / "README.md")
    data, means = results(), recomputed_means()
    by_type = {r.metric_type: r for r in card.data.eval_results}
    assert set(by_type) == {"dice", "avd", "matthews_correlation"}
    for hub_type, key in (("dice", "dice"), ("avd", "avd"), ("matthews_correlation", "mcc")):
        r = by_type[hub_type]
        assert r.metric_value == data[f"test_{key}"]
        assert r.metric_value == pytest.approx(means[key], rel=1e-12)
        assert r.dataset_name == "Aphasia Recovery Cohort (ARC)"
        assert r.dataset_type == "hugging-science/arc-aphasia-bids"
        assert r.dataset_split == "test"
        assert r.metric_args == {"outer_fold": data["outer_fold"], "restart": data["restart"], "seed": data["seed"],
                                 "subjects": len(data["per_subject_dice"])}
    assert {r.task_type for r in card.data.eval_results} == {"image-segmentation"}


def test_paper_values_shown_beside_measured(release_dir: Path) -> None:
    text = (release_dir / "README.md").read_text()
    means = recomputed_means()
    for name, key, paper in (("Dice", "dice", "0.876 (0.016)"), ("AVD", "avd", "0.245 (0.036)"), ("MCC", "mcc", "0.760 (0.030)")):
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} | "))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == f"{means[key]:.3f}"
        assert cells[4] == paper
    # the measured means are below the paper's, and the card says so rather than implying otherwise
    assert (f"This checkpoint does **not** reach the paper's MeshNet-26 means (Dice {means['dice']:.3f} vs 0.876; "
            f"AVD {means['avd']:.3f} vs 0.245; MCC {means['mcc']:.3f} vs 0.760)") in text


def test_paper_reference_only_for_its_architecture() -> None:
    arch = {"channels": 26, "classes": 2, "in_channels": 1, "dilations": [1, 2, 4, 8, 16, 16, 8, 4, 2], "parameters": 147_474}
    assert card_doc.paper_reference(arch).values["dice"] == (0.876, 0.016)
    assert card_doc.paper_reference({**arch, "dilations": [1, 2, 4, 8, 16, 8, 4, 2, 1]}) is None
    assert card_doc.paper_reference({**arch, "classes": 3}) is None


def test_card_lists_every_file_with_its_sha256(release_dir: Path) -> None:
    listed = card_files((release_dir / "README.md").read_text())
    on_disk = {p.relative_to(release_dir).as_posix() for p in release_dir.rglob("*") if p.is_file()}
    assert set(listed) == on_disk - {"README.md", "manifest.json"}
    for path, row in listed.items():
        assert row["sha256"] == sha256_of(release_dir / path), path
        assert row["size"] == (release_dir / path).stat().st_size, path
    fp32 = listed["onnx/model.onnx"]
    assert (fp32["format"], fp32["precision"]) == ("onnx", "fp32")


def test_manifest_lists_the_card(release_dir: Path) -> None:
    entry = next(f for f in manifest_of(release_dir)["files"] if f["path"] == "README.md")
    assert entry["sha256"] == sha256_of(release_dir / "README.md")
    assert entry["size"] == (release_dir / "README.md").stat().st_size


def test_card_renders_again_byte_identical_from_the_manifest(release_dir: Path) -> None:
    manifest = manifest_of(release_dir)
    again = card_doc.render_card(manifest, repo_id=REPO_ID, folder=release_dir)
    assert again.content == (release_dir / "README.md").read_text()
    assert "created" not in again.content and manifest["created"] not in again.content


def test_card_usage_names_the_repo_tag_and_file_hash(release_dir: Path) -> None:
    snippet = card_doc.usage_snippet((release_dir / "README.md").read_text())
    fp32 = sha256_of(release_dir / "onnx" / "model.onnx")
    assert f'hf_hub_download("{REPO_ID}", "onnx/model.onnx", revision="v1")' in snippet
    assert f'!= "{fp32}"' in snippet
    compile(snippet, "segment.py", "exec")


def test_card_describes_brainchop_input_from_the_tfjs_metadata(release_dir: Path) -> None:
    meta = json.loads((release_dir / "tfjs" / "model.json").read_text())["userDefinedMetadata"]["meshrelease"]
    text = (release_dir / "README.md").read_text()
    assert f"`tfjs/model.json` takes channels-last input (1, 256, 256, 256, 1) in\n**{meta['input_orientation']}** voxel order" in text
    entry = json.loads((release_dir / "tfjs" / "brainchop_model_entry.json").read_text())
    assert json.dumps(entry, indent=2) in text
    assert "Research use only. This is not a medical device" in text


def test_changelog_against_previous_release(release_dir: Path, tmp_path: Path) -> None:
    opts = BuildOptions(variant="meshnet_26", tag="v2", checkpoint=str(CHECKPOINT_2), results=str(RESULTS_2),
                        out=tmp_path, crop=CROP, config_path=str(CONFIG), repo=REPO_ID,
                        previous_manifest=manifest_of(release_dir))
    v2 = build_release(opts).out_dir
    text = (v2 / "README.md").read_text()
    old, new = recomputed_means(RESULTS), recomputed_means(RESULTS_2)
    assert "Against `v1`, the previous release in this repository:" in text
    assert f"- Source checkpoint changed: sha256 `{sha256_of(CHECKPOINT)}` → `{sha256_of(CHECKPOINT_2)}`." in text
    metrics = ", ".join(f"{n} {old[k]:.3f} → {new[k]:.3f} ({new[k] - old[k]:+.3f})"
                        for n, k in (("Dice", "dice"), ("AVD", "avd"), ("MCC", "mcc")))
    assert f"- Test metrics: {metrics}." in text
    a, b = (release_dir / "onnx/model.onnx").stat().st_size, (v2 / "onnx/model.onnx").stat().st_size
    size = f"{a:,} → {b:,} bytes ({b - a:+,})" if a != b else f"same size ({b:,} bytes)"
    assert f"- `onnx/model.onnx`: {size}, new sha256." in text
    assert f"- `tfjs/colormap.json` unchanged ({(v2 / 'tfjs/colormap.json').stat().st_size:,} bytes, same sha256)." in text
    # the card of v2 carries v2's own metrics in its model-index
    card = ModelCard.load(v2 / "README.md")
    assert {r.metric_type: r.metric_value for r in card.data.eval_results}["dice"] == results(RESULTS_2)["test_dice"]


def test_no_metrics_card_says_so(tmp_path: Path) -> None:
    out = tmp_path / "card.md"
    # another checkpoint than the configured one, and no --results: the configured numbers must not be used
    rc = main(["card", "meshnet_26", "--tag", "v9", "--checkpoint", str(CHECKPOINT_2), "--crop", "16",
               "--config", str(CONFIG), "--out", str(out)])
    assert rc == 0
    text = out.read_text()
    card = ModelCard.load(out)
    assert card.data.eval_results is None
    assert card.data.datasets is None
    assert "model-index" not in card.data.to_dict()
    assert "**No test metrics for this release.**" in text
    for number in ("0.876", f"{results()['test_dice']:.3f}"):
        assert number not in text
    assert card.data.source_checkpoint_sha256 == sha256_of(CHECKPOINT_2)


def test_card_command_renders_from_a_release_folder(release_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["card", "meshnet_26", "--tag", "v1", "--from", str(release_dir), "--repo", REPO_ID,
                 "--config", str(CONFIG)]) == 0
    assert capsys.readouterr().out == (release_dir / "README.md").read_text()


def test_card_command_refuses_another_tags_folder(release_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["card", "meshnet_26", "--tag", "v2", "--from", str(release_dir), "--config", str(CONFIG)]) == 2
    assert capsys.readouterr().err == f"meshrelease: error: {release_dir} holds meshnet_26 v1, not meshnet_26 v2\n"


def test_refresh_keeps_the_manifest_listing_the_pushed_card(release_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "v2"
    shutil.copytree(release_dir, folder)
    manifest = manifest_of(folder)
    manifest["tag"] = "v2"
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    previous = {**manifest_of(release_dir), "tag": "v1"}
    before = sha256_of(folder / "README.md")
    card_doc.refresh_card(folder, repo_id=REPO_ID, previous=previous)
    assert sha256_of(folder / "README.md") != before
    assert "Against `v1`" in (folder / "README.md").read_text()
    entry = next(f for f in manifest_of(folder)["files"] if f["path"] == "README.md")
    assert entry["sha256"] == sha256_of(folder / "README.md")
    plan_release(folder, REPO_ID, "v2", "http://127.0.0.1:1")  # the publisher's own integrity check passes


def test_bad_results_json_fails_before_building(tmp_path: Path) -> None:
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"test_dice": 0.5, "test_avd": "n/a", "test_mcc": 0.4}))
    opts = BuildOptions(variant="meshnet_26", tag="v1", checkpoint=str(CHECKPOINT), results=str(bad),
                        out=tmp_path / "out", crop=CROP, config_path=str(CONFIG))
    with pytest.raises(CardError) as exc:
        build_release(opts)
    assert str(exc.value) == f"results {bad}: 'test_avd' is missing or not a finite number"
    assert not (tmp_path / "out").exists()


def test_missing_results_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CardError) as exc:
        card_doc.read_metrics(tmp_path / "nope.json")
    assert str(exc.value) == f"results {tmp_path / 'nope.json'}: no such file"


def test_configured_results_belong_to_the_configured_checkpoint_only() -> None:
    from meshrelease.config import load_config

    variant = load_config(CONFIG).variant("meshnet_26")
    assert Path(card_doc.results_for(variant, None)) == RESULTS.resolve()
    assert Path(card_doc.results_for(variant, str(CHECKPOINT))) == RESULTS.resolve()
    assert card_doc.results_for(variant, str(CHECKPOINT_2)) is None
    assert card_doc.results_for(variant, str(CHECKPOINT_2), str(RESULTS_2)) == str(RESULTS_2)


def test_missing_templates_fail_with_a_clear_message(release_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHRELEASE_MODEL_CARDS", str(tmp_path / "nowhere"))
    with pytest.raises(CardError) as exc:
        card_doc.render_card(manifest_of(release_dir), repo_id=REPO_ID)
    assert str(exc.value) == (
        f"model card templates not found at $MESHRELEASE_MODEL_CARDS={tmp_path / 'nowhere'}; install meshrelease "
        "from its checkout (pip install -e .) or set MESHRELEASE_MODEL_CARDS to a folder holding meshnet.md.j2"
    )


def test_template_variables_are_checked(release_dir: Path, tmp_path: Path) -> None:
    template = tmp_path / "card.md.j2"
    template.write_text("---\n{{ card_data }}\n---\n# {{ display_name }} {{ no_such_value }}\n")
    with pytest.raises(CardError) as exc:
        card_doc.render_card(manifest_of(release_dir), repo_id=REPO_ID, template=template)
    assert str(exc.value) == f"model card template {template} uses undefined variable(s): no_such_value"


def test_card_renders_without_network(release_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the card tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    card = card_doc.render_card(manifest_of(release_dir), repo_id=REPO_ID, folder=release_dir)
    assert card.content == (release_dir / "README.md").read_text()
