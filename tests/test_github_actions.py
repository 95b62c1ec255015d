"""meshrelease inside a GitHub Actions job: the pushed tag wins, the summary and outputs are written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshrelease.cli import main
from meshrelease.document import github
from meshrelease.errors import ConfigError, TagMismatchError

REPO = Path(__file__).resolve().parents[1]

TAG_PUSH = {"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/tags/v1", "GITHUB_REF_NAME": "v1", "GITHUB_REF_TYPE": "tag"}
MISMATCH = ("--tag v2 does not match the tag that started this GitHub Actions run (v1, GITHUB_REF_NAME); "
            "release v1 or start the workflow by hand with tag v2")


@pytest.fixture(autouse=True)
def outside_actions(monkeypatch):
    """Start every test outside GitHub Actions, whatever runs the suite."""
    for key in list(os.environ):
        if key.startswith(("GITHUB_", "RUNNER_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(REPO)


def test_the_tag_given_must_be_the_pushed_tag():
    assert github.check_tag("v1", TAG_PUSH) == "v1"
    with pytest.raises(TagMismatchError) as exc:
        github.check_tag("v2", TAG_PUSH)
    assert str(exc.value) == MISMATCH
    assert isinstance(exc.value, ConfigError) and exc.value.exit_code == 2


def test_runs_not_started_by_a_tag_take_the_tag_given():
    branch = {"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main", "GITHUB_REF_TYPE": "branch"}
    assert github.check_tag("v2", branch) == "v2"  # a manual run (workflow_dispatch) started on a branch
    assert github.check_tag("v2", {}) == "v2"  # not in Actions at all
    assert github.pushed_tag({"GITHUB_REF": "refs/tags/v7"}) == "v7"  # older runners set only GITHUB_REF


def test_build_refuses_a_tag_other_than_the_pushed_one_and_says_so_in_the_summary(monkeypatch, tmp_path, capsys):
    summary = tmp_path / "summary.md"
    for k, v in {**TAG_PUSH, "GITHUB_STEP_SUMMARY": str(summary)}.items():
        monkeypatch.setenv(k, v)
    rc = main(["build", "meshnet_26", "--tag", "v2", "--out", str(tmp_path / "out")])
    assert rc == 2
    assert capsys.readouterr().err == f"meshrelease: error: {MISMATCH}\n"
    assert summary.read_text() == (f"## ❌ meshnet_26 v2: not released\n\n**Error:** `{MISMATCH}`\n\n"
                                   "Nothing was pushed to the Hub.\n\n")
    assert not (tmp_path / "out" / "meshnet_26" / "v2").exists()


def test_publish_refuses_the_embedded_hub_inside_actions(monkeypatch, tmp_path, capsys):
    for k, v in TAG_PUSH.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    rc = main(["publish", "meshnet_26", "--tag", "v1", "--out", str(tmp_path / "out"), "--hub-root", str(tmp_path / "hub")])
    assert rc == 2
    assert capsys.readouterr().err == (
        "meshrelease: error: refusing to publish to the embedded local hub inside GitHub Actions (it is deleted with the "
        'runner): set repo = "OWNER/NAME" for the variant in meshrelease.toml, pass --repo, or set HF_ENDPOINT\n')
    assert not (tmp_path / "hub").exists() and not (tmp_path / "out").exists()


def test_step_outputs_use_the_multiline_form_only_when_needed(tmp_path):
    out = tmp_path / "output"
    assert github.set_outputs({"release_dir": "/r/meshnet_26/v1", "skip": None, "notes": "a\nb"}, {"GITHUB_OUTPUT": str(out)})
    lines = out.read_text().splitlines()
    assert lines[0] == "release_dir=/r/meshnet_26/v1"
    assert lines[1].startswith("notes<<ghadelimiter_") and lines[2:4] == ["a", "b"] and lines[4] == lines[1].split("<<")[1]
    assert github.set_outputs({"x": "1"}, {}) is False
    assert github.write_step_summary({"variant": "v", "tag": "t"}, env={}) is None


def test_the_summary_of_a_failed_build_lists_what_failed():
    manifest = {
        "variant": "meshnet_26", "tag": "v3",
        "files": [{"path": "onnx/model.onnx", "format": "onnx", "precision": "fp32", "size": 591369, "sha256": "ac897ca2471214459"}],
        "parity": [
            {"artifact": "onnx/model.onnx", "runtime": "onnxruntime", "input": "random 32³ seed 0", "max_abs": 2.98e-06,
             "agreement": 1.0, "dice": 1.0, "passed": True, "failures": []},
            {"artifact": "onnx/model_int8.onnx", "runtime": "onnxruntime", "input": "t1 centre 96³", "max_abs": 0.159,
             "agreement": 0.99, "dice": 0.97, "passed": False,
             "failures": ["agreement 99.0000% < 99.5000%", "Dice 0.9700 < 0.98"]},
        ],
        "sizes": [{"artifact": "onnx/model.onnx", "bytes": 700000, "budget": 607592, "rule": "<= 1.03 x params x 4 B",
                   "passed": False}],
        "provenance": {"git_commit": "c0ffee", "github_actions": {"run_url": "https://github.com/o/r/actions/runs/5"}},
    }
    assert github.summary_markdown(manifest, error="verification failed: …; nothing was written") == "\n".join([
        "## ❌ meshnet_26 v3: not released",
        "",
        "**Error:** `verification failed: …; nothing was written`",
        "",
        "Nothing was pushed to the Hub.",
        "",
        "### Files",
        "",
        "| file | format | precision | bytes | sha256 |",
        "|---|---|---|--:|---|",
        "| `onnx/model.onnx` | onnx | fp32 | 591,369 | `ac897ca247121445…` |",
        "",
        "### Parity against PyTorch: 1/2 passed",
        "",
        "| artifact | runtime | input | max abs diff | argmax agreement | Dice | result |",
        "|---|---|---|--:|--:|--:|---|",
        "| `onnx/model.onnx` | onnxruntime | random 32³ seed 0 | 2.98e-06 | 100.0000% | 1.0000 | pass |",
        "| `onnx/model_int8.onnx` | onnxruntime | t1 centre 96³ | 1.59e-01 | 99.0000% | 0.9700 | **FAIL**: "
        "agreement 99.0000% < 99.5000%; Dice 0.9700 < 0.98 |",
        "",
        "### Sizes: 0/1 within budget",
        "",
        "| artifact | bytes | budget | rule | result |",
        "|---|--:|--:|---|---|",
        "| `onnx/model.onnx` | 700,000 | 607,592 | <= 1.03 x params x 4 B | **FAIL** |",
        "",
        "Built by run https://github.com/o/r/actions/runs/5 from commit `c0ffee`.",
        "",
    ])


def test_publishing_a_prebuilt_folder_reports_it_from_its_manifest(tmp_path):
    folder = tmp_path / "meshnet_26" / "v1"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text('{"variant": "meshnet_26", "tag": "v1", "files": [], "parity": [], "sizes": []}')
    env = {"GITHUB_OUTPUT": str(tmp_path / "out"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    published = {"status": "released", "repo": "me/meshnet_26", "tag": "v1", "commit": "a" * 40,
                 "endpoint": "https://huggingface.co", "url": "https://huggingface.co/me/meshnet_26/tree/v1"}
    assert github.report_folder(folder, published=published, env=env) is True
    assert (tmp_path / "out").read_text() == (
        f"variant=meshnet_26\ntag=v1\nrelease_dir={folder}\nrepo=me/meshnet_26\ncommit={'a' * 40}\n"
        "url=https://huggingface.co/me/meshnet_26/tree/v1\nstatus=released\n")
    assert (tmp_path / "summary.md").read_text() == "\n".join([
        "## ✅ meshnet_26 v1: released",
        "",
        f"Published to **me/meshnet_26** on https://huggingface.co as tag `v1`, commit `{'a' * 40}`.",
        "Browse: https://huggingface.co/me/meshnet_26/tree/v1",
        "",
        "Fetch it with:",
        "",
        "```",
        "hf_hub_download('me/meshnet_26', 'manifest.json', revision='v1')",
        "```",
        "",
        f"Release folder: `{folder}`",
        "",
        "",
    ])
