"""Rehearse .github/workflows/release.yml on this machine: a pushed tag v1 publishes the real MeshNet-26.

The workflow's own `run:` steps execute in order with bash, with the variables a tag push sets and
HF_ENDPOINT pointing at a local Hub server, the token coming from the workflow's `secrets.HF_TOKEN`.
The workspace is this checkout: its `make setup` step finds the environment `make test` made and only
checks it, as it would on a runner whose cache is warm. See tests/gha_rehearsal.py for what is emulated.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from .gha_rehearsal import Event, Rehearsal, RehearsalError, RunResult

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
TOKEN = "hf_rehearsal_token"
REPO_ID = "local/meshnet_26"  # meshrelease.toml's repo for meshnet_26


def head_sha() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def runner_base_env(tmp: Path, hub_url: str) -> dict[str, str]:
    """This machine's environment as a fresh runner would have it: no GITHUB_*, the project venv
    not on PATH (the workflow must put it there), no ambient token; the Hub is the local server."""
    venv_bin = str(REPO / ".venv" / "bin")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "RUNNER_", "HF_", "MESHRELEASE_")) and k not in ("VIRTUAL_ENV", "CI")}
    env["PATH"] = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    env.update({
        "HF_ENDPOINT": hub_url,
        "HF_HOME": str(tmp / "hf-home"),
        "HF_TOKEN_PATH": str(tmp / "hf-home" / "token"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "MESHRELEASE_CACHE": str(tmp / "meshrelease-cache"),
    })
    return env


def rehearse(tmp: Path, hub_url: str, *, workflow: str | None = None, event: Event | None = None,
             extra_env: dict[str, str] | None = None, run_attempt: str = "1") -> RunResult:
    env = runner_base_env(tmp, hub_url)
    env.update(extra_env or {})
    rehearsal = Rehearsal(workflow if workflow is not None else WORKFLOW.read_text(encoding="utf-8"),
                          workspace=REPO, tmp=tmp, event=event or Event("push", "refs/tags/v1", head_sha()),
                          secrets={"HF_TOKEN": TOKEN}, repository="neuroneural/meshrelease", run_id="987654",
                          run_attempt=run_attempt, base_env=env)
    return rehearsal.run()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from meshrelease.publish.server import HubServer

    with HubServer(tmp_path_factory.mktemp("hub"), token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def tag_push(tmp_path_factory, hub) -> RunResult:
    """`git push origin v1`, rehearsed once for the tests below (one real build and publish)."""
    return rehearse(tmp_path_factory.mktemp("tag-push"), hub.url)


def the_release_job(run: RunResult):
    (job,) = run.jobs["release"]
    assert job.status == "success", job.failure_report()
    return job


def test_a_pushed_tag_plans_one_job_per_releasable_variant_of_the_config(tag_push):
    (plan,) = tag_push.jobs["plan"]
    assert plan.status == "success", plan.failure_report()
    assert plan.outputs == {"tag": "v1", "ref": "refs/tags/v1", "variants": '["meshnet_26"]'}
    assert [j.matrix for j in tag_push.jobs["release"]] == [{"variant": "meshnet_26"}]
    assert [j.name for j in tag_push.jobs["release"]] == ["release meshnet_26 v1"]
    assert tag_push.concurrency_group == "release-v1"


def test_the_release_job_runs_the_workflows_own_commands_in_order(tag_push):
    job = the_release_job(tag_push)
    assert [(s.kind, s.outcome) for s in job.steps] == [("uses", "success")] * 3 + [("run", "success")] * 2 + [("uses", "success")]
    assert job.step("actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683").detail["ref"] == "refs/tags/v1"
    publish = job.step("publish")
    assert publish.command == 'meshrelease publish "$VARIANT" --tag "$TAG" --out "$RUNNER_TEMP/releases"'
    assert publish.returncode == 0
    assert f"meshnet_26 v1 released: {REPO_ID} on http://127.0.0.1" in publish.log
    assert publish.outputs["release_dir"] == f"{job.env['RUNNER_TEMP']}/releases/meshnet_26/v1"
    assert publish.outputs["repo"] == REPO_ID and publish.outputs["status"] == "released"
    assert len(publish.outputs["commit"]) == 40


def test_the_rehearsed_tag_push_publishes_a_release_hf_hub_download_fetches_by_tag(tag_push, hub, tmp_path):
    from huggingface_hub import hf_hub_download

    job = the_release_job(tag_push)
    cache = tmp_path / "download-cache"
    manifest = json.loads(Path(hf_hub_download(REPO_ID, "manifest.json", revision="v1", endpoint=hub.url, token=TOKEN,
                                               cache_dir=cache)).read_text())
    assert manifest["variant"] == "meshnet_26" and manifest["tag"] == "v1" and manifest["passed"] is True
    onnx = Path(hf_hub_download(REPO_ID, "onnx/model.onnx", revision="v1", endpoint=hub.url, token=TOKEN, cache_dir=cache))
    entry = next(f for f in manifest["files"] if f["path"] == "onnx/model.onnx")
    assert hashlib.sha256(onnx.read_bytes()).hexdigest() == entry["sha256"]
    assert manifest["provenance"]["source"]["sha256"] == "f66bcc77f3e91424fa43e70f11dd2d543cf000edd616233c5d71cc314e7d89b2"
    # The published commit is the one the job reported.
    from huggingface_hub import HfApi

    refs = HfApi(endpoint=hub.url, token=TOKEN).list_repo_refs(REPO_ID)
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", job.step("publish").outputs["commit"])]


def test_the_manifest_records_the_github_run_that_built_it(tag_push, hub, tmp_path):
    from huggingface_hub import hf_hub_download

    job = the_release_job(tag_push)
    sha = job.env["GITHUB_SHA"]  # HEAD when the rehearsal started
    manifest = json.loads(Path(hf_hub_download(REPO_ID, "manifest.json", revision="v1", endpoint=hub.url, token=TOKEN,
                                               cache_dir=tmp_path)).read_text())
    gh = manifest["provenance"]["github_actions"]
    assert gh == {
        "repository": "neuroneural/meshrelease", "sha": sha, "ref": "refs/tags/v1", "ref_name": "v1",
        "ref_type": "tag", "event_name": "push", "run_id": "987654", "workflow": "release",
        "server_url": "https://github.com",
        "run_url": "https://github.com/neuroneural/meshrelease/actions/runs/987654",
    }
    # The checked-out commit, read when the build ran: GITHUB_SHA, or a later commit when someone commits to
    # this working copy during the rehearsal (on a runner the checkout does not move).
    commit = manifest["provenance"]["git_commit"]
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert subprocess.run(["git", "merge-base", "--is-ancestor", sha, commit], cwd=REPO).returncode == 0


def test_re_running_the_jobs_of_a_released_run_reports_already_released(tag_push, hub, tmp_path):
    """GitHub's "Re-run all jobs" keeps the run id: the rebuild is byte-identical, so publish exits 0."""
    from huggingface_hub import HfApi

    first = the_release_job(tag_push).step("publish").outputs["commit"]
    again = rehearse(tmp_path, hub.url, run_attempt="2")
    (job,) = again.jobs["release"]
    assert job.status == "success", job.failure_report()
    publish = job.step("publish")
    assert publish.returncode == 0 and publish.outputs["status"] == "already released"
    assert publish.outputs["commit"] == first
    refs = HfApi(endpoint=hub.url, token=TOKEN).list_repo_refs(REPO_ID)
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", first)]


def test_the_job_summary_shows_files_parity_sizes_and_where_it_was_published(tag_push, hub):
    job = the_release_job(tag_push)
    s = job.summary
    assert s.startswith("## ✅ meshnet_26 v1: released\n")
    assert f"Published to **{REPO_ID}** on {hub.url} as tag `v1`, commit `{job.step('publish').outputs['commit']}`." in s
    assert f"hf_hub_download('local/meshnet_26', 'manifest.json', revision='v1', endpoint='{hub.url}')" in s
    manifest = json.loads((tag_push.artifacts / "release-meshnet_26-v1" / "manifest.json").read_text())
    for f in manifest["files"]:
        assert f"| `{f['path']}` | {f['format']} | {f['precision']} | {f['size']:,} | `{f['sha256'][:16]}…` |" in s
    n, k = len(manifest["parity"]), len(manifest["sizes"])
    assert f"### Parity against PyTorch: {n}/{n} passed" in s and f"### Sizes: {k}/{k} within budget" in s
    fp32_real = next(p for p in manifest["parity"] if p["artifact"] == "onnx/model.onnx" and "96³" in p["input"])
    assert (f"| `onnx/model.onnx` | onnxruntime | t1_crop.nii.gz centre 96³ | {fp32_real['max_abs']:.2e} | "
            "100.0000% | 1.0000 | pass |") in s
    assert "Built by run https://github.com/neuroneural/meshrelease/actions/runs/987654" in s


def test_the_release_folder_is_uploaded_as_an_artifact(tag_push):
    job = the_release_job(tag_push)
    artifact = Path(job.steps[-1].detail["artifact"])
    assert artifact == tag_push.artifacts / "release-meshnet_26-v1"
    manifest = json.loads((artifact / "manifest.json").read_text())
    listed = sorted(f["path"] for f in manifest["files"])
    on_disk = sorted(p.relative_to(artifact).as_posix() for p in artifact.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert listed == on_disk and "onnx/model_int8.onnx" in listed


def test_a_failed_parity_check_fails_the_job_and_pushes_nothing(tmp_path):
    """The repo's config with an impossible fp32 tolerance (and a small crop, to stay quick)."""
    from huggingface_hub import HfApi

    from meshrelease.publish.server import HubServer

    text = (REPO / "meshrelease.toml").read_text(encoding="utf-8")
    for old, new in (('"../shared/data/', f'"{SHARED}/'), ("max_abs = 1e-4", "max_abs = 1e-12"), ("crop = 96", "crop = 16")):
        assert old in text
        text = text.replace(old, new)
    strict = tmp_path / "strict.toml"
    strict.write_text(text, encoding="utf-8")
    with HubServer(tmp_path / "hub", token=TOKEN) as hub:
        run = rehearse(tmp_path / "run", hub.url, extra_env={"MESHRELEASE_CONFIG": str(strict)})
        (job,) = run.jobs["release"]
        publish = job.step("publish")
        assert job.status == "failure" and publish.returncode == 4
        assert re.search(r"^meshrelease: error: verification failed: onnx/model\.onnx on random 32³ seed 0: "
                         r"max \|Δlogit\| \d\.\d\de-\d\d > 1e-12 \(and \d+ more\); nothing was written$", publish.log, re.M)
        assert job.steps[-1].outcome == "skipped"  # no artifact
        assert not run.artifacts.exists()
        assert job.summary.startswith("## ❌ meshnet_26 v1: not released\n")
        assert "Nothing was pushed to the Hub." in job.summary and "**FAIL**" in job.summary
        assert HfApi(endpoint=hub.url, token=TOKEN).repo_exists(REPO_ID) is False


def mutated(old: str, new: str) -> str:
    text = WORKFLOW.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    return text.replace(old, new)


@pytest.mark.parametrize(
    "old, new, failing_step, returncode, message",
    [
        ("run: meshrelease publish", "run: meshrelease publsh", "publish", 2, "invalid choice: 'publsh'"),
        ('--tag "$TAG"', '--tag "$TAGG"', "publish", 2, "meshrelease: error: invalid tag '': use letters, digits"),
        ('          echo "$GITHUB_WORKSPACE/.venv/bin" >> "$GITHUB_PATH"\n', "", "publish", 127,
         "meshrelease: command not found"),
        ("          make setup\n", "          make set-up\n", "Install (as the README does)", 2,
         "No rule to make target 'set-up'"),
    ],
    ids=["renamed-command", "wrong-variable", "venv-not-on-path", "wrong-install-target"],
)
def test_a_workflow_whose_commands_break_fails_the_rehearsal(tmp_path, old, new, failing_step, returncode, message):
    from huggingface_hub import HfApi

    from meshrelease.publish.server import HubServer

    with HubServer(tmp_path / "hub", token=TOKEN) as hub:
        run = rehearse(tmp_path / "run", hub.url, workflow=mutated(old, new))
        (job,) = run.jobs["release"]
        step = job.step(failing_step)
        assert job.status == "failure"
        assert (step.outcome, step.returncode) == ("failure", returncode)
        assert message in step.log
        assert HfApi(endpoint=hub.url, token=TOKEN).repo_exists(REPO_ID) is False


def test_a_broken_plan_step_skips_every_release_job(tmp_path):
    run = rehearse(tmp_path, "http://127.0.0.1:9", workflow=mutated("tools/release_matrix.py", "tools/release_plan.py"))
    (plan,) = run.jobs["plan"]
    assert plan.status == "failure" and plan.step("plan").returncode == 2
    assert "can't open file" in plan.step("plan").log and "release_plan.py" in plan.step("plan").log
    assert [j.status for j in run.jobs["release"]] == ["skipped"]


def test_an_expression_the_workflow_gets_wrong_fails_loudly(tmp_path):
    with pytest.raises(RehearsalError, match=r"matrix\.varient is not defined .*known: variant"):
        rehearse(tmp_path, "http://127.0.0.1:9", workflow=mutated("VARIANT: ${{ matrix.variant }}", "VARIANT: ${{ matrix.varient }}"))


def test_a_tag_outside_the_trigger_pattern_does_not_start_a_release(tmp_path):
    with pytest.raises(RehearsalError, match=r"a push of refs/tags/release-1 does not match the tags filters \['v\*'\]"):
        rehearse(tmp_path, "http://127.0.0.1:9", event=Event("push", "refs/tags/release-1", head_sha()))


def test_a_manual_run_refuses_a_variant_without_a_checkpoint(tmp_path):
    run = rehearse(tmp_path, "http://127.0.0.1:9",
                   event=Event("workflow_dispatch", "refs/heads/main", head_sha(), {"tag": "v1", "variants": "meshnet_5"}))
    (plan,) = run.jobs["plan"]
    assert plan.step("plan").log == ("::error::cannot release meshnet_5: the variants with a checkpoint in "
                                     "meshrelease.toml are meshnet_26\n")
    assert run.concurrency_group == "release-v1"
    assert [j.status for j in run.jobs["release"]] == ["skipped"]
