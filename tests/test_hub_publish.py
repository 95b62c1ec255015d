"""User stories of `meshrelease publish` / `pull` / `verify` / `releases` against the local Hub over HTTP."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download

from meshrelease.cli import main
from meshrelease.errors import PublishError
from meshrelease.publish.endpoint import open_hub, resolve_target
from meshrelease.publish.hub import push_release
from meshrelease.publish.plan import plan_release
from meshrelease.publish.server import Fault, HubServer

from .hub_fixtures import (  # noqa: F401 - fixtures
    OTHER_CHECKPOINT,
    built_v1,
    built_v1_other,
    hub,
    hub_env,
    make_release_folder,
    publish_args,
    sha256_of,
    tags_of,
)

REPO = "me/meshnet"


def _publish_json(capsys, args: list[str]) -> tuple[int, dict | None, str]:
    code = main(args + ["--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


def test_publish_real_build_then_download_every_file_by_tag(hub, tmp_path, capsys):
    code, result, _ = _publish_json(capsys, publish_args(hub.url, out=tmp_path / "rel"))
    assert code == 0 and result["status"] == "released"
    folder = Path(result["release_dir"])
    manifest = json.loads((folder / "manifest.json").read_text())
    paths = sorted(f["path"] for f in manifest["files"])
    assert {"onnx/model.onnx", "onnx/model_fp16.onnx", "onnx/model_int8.onnx", "report.md"} <= set(paths)
    local = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    api = HfApi(endpoint=hub.url, token=False)
    commits = api.list_repo_commits(REPO, revision="v1")
    assert [c.title for c in commits] == ["Release v1: meshnet_26", "initial commit"]  # exactly one commit
    n = len(manifest["parity"])
    assert "- onnx/model.onnx (" in commits[0].message and f"Parity vs PyTorch: {n}/{n} checks passed" in commits[0].message
    assert tags_of(hub.url, REPO) == {"v1": result["commit"]}

    fresh = tmp_path / "fresh-cache"
    for entry in manifest["files"]:
        got = hf_hub_download(REPO, entry["path"], revision="v1", endpoint=hub.url, cache_dir=fresh)
        assert sha256_of(Path(got)) == entry["sha256"]
    got = hf_hub_download(REPO, "manifest.json", revision="v1", endpoint=hub.url, cache_dir=fresh)
    assert Path(got).read_bytes() == (folder / "manifest.json").read_bytes()

    snap = Path(snapshot_download(REPO, revision="v1", endpoint=hub.url, cache_dir=tmp_path / "snap"))
    assert sorted(p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file()) == sorted(
        [".gitattributes", *local])
    for entry in manifest["files"]:
        assert sha256_of(snap / entry["path"]) == entry["sha256"]


def test_republishing_identical_build_reports_already_released(hub, tmp_path, capsys):
    # Two real builds (a CI job re-run): reproducible bytes, same provenance -> the same release.
    assert main(publish_args(hub.url, out=tmp_path / "a")) == 0
    capsys.readouterr()
    before = HfApi(endpoint=hub.url, token=False).list_repo_commits(REPO)
    assert main(publish_args(hub.url, out=tmp_path / "b")) == 0
    captured = capsys.readouterr()
    assert "meshnet_26 v1 already released (identical content; nothing pushed)" in captured.out
    assert HfApi(endpoint=hub.url, token=False).list_repo_commits(REPO) == before


def test_same_tag_with_other_content_is_refused_and_tag_unchanged(built_v1, built_v1_other, hub, tmp_path, capsys):
    code, first, _ = _publish_json(capsys, publish_args(hub.url, release_dir=built_v1, out=tmp_path / "a"))
    assert code == 0
    code = main(publish_args(hub.url, out=tmp_path / "b", checkpoint=OTHER_CHECKPOINT, release_dir=built_v1_other))
    err = capsys.readouterr().err
    assert code == PublishError.exit_code == 5
    line = [x for x in err.splitlines() if x.startswith("meshrelease: error:")]
    a, b = built_v1, built_v1_other
    changed = [f"{p.relative_to(a).as_posix()} differs" for p in sorted(a.rglob("*"), key=lambda p: p.relative_to(a).as_posix())
               if p.is_file() and sha256_of(p) != sha256_of(b / p.relative_to(a))]
    assert "onnx/model.onnx differs" in changed
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    assert line == [
        f"meshrelease: error: tag v1 already exists on {REPO} (commit {first['commit'][:12]}) with different content "
        f"({shown}); tags are never moved: publish under a new tag, or pass --force to delete and recreate it"
    ]
    assert tags_of(hub.url, REPO) == {"v1": first["commit"]}


def test_force_deletes_and_recreates_the_tag_loudly(built_v1, built_v1_other, hub, tmp_path, capsys):
    code, first, _ = _publish_json(capsys, publish_args(hub.url, release_dir=built_v1, out=tmp_path / "a"))
    code, second, err = _publish_json(capsys, publish_args(hub.url, "--force", out=tmp_path / "b", checkpoint=OTHER_CHECKPOINT, release_dir=built_v1_other))
    assert code == 0 and second["status"] == "re-released" and second["replaced_commit"] == first["commit"]
    assert f"WARNING --force: DELETING existing tag v1 of {REPO} (commit {first['commit'][:12]}" in err
    assert tags_of(hub.url, REPO) == {"v1": second["commit"]}


def _race(url: str, folders: list[Path], repo: str = "me/race") -> list[str]:
    outcomes: list[str] = []
    barrier = threading.Barrier(len(folders))

    def one(folder: Path) -> None:
        plan = plan_release(folder, repo, "v1", url)
        with open_hub(resolve_target(repo, url)) as session:
            barrier.wait()
            try:
                outcomes.append(push_release(plan, session).status)
            except PublishError as exc:
                outcomes.append(f"error: {exc}")

    threads = [threading.Thread(target=one, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcomes)


def test_two_concurrent_publishes_of_one_tag_make_one_release(hub, tmp_path):
    a = make_release_folder(tmp_path / "a", seed=b"a")
    b = make_release_folder(tmp_path / "b", seed=b"b")
    outcomes = _race(hub.url, [a, b])
    assert outcomes[1] == "released"
    assert outcomes[0].startswith("error: tag v1 already exists on me/race (commit ")
    assert outcomes[0].endswith("tags are never moved: publish under a new tag, or pass --force to delete and recreate it")
    tags = tags_of(hub.url, "me/race")
    assert list(tags) == ["v1"]
    files = {f.path: f for f in HfApi(endpoint=hub.url, token=False).list_repo_tree("me/race", revision="v1", recursive=True)
             if hasattr(f, "blob_id")}
    winner = a if files["onnx/model.onnx"].lfs.sha256 == sha256_of(a / "onnx/model.onnx") else b
    assert files["tfjs/model.json"].size == (winner / "tfjs/model.json").stat().st_size


def test_concurrent_identical_publishes_release_once_and_report_already_released(hub, tmp_path):
    folders = [make_release_folder(tmp_path / str(i), seed=b"same") for i in range(3)]
    assert _race(hub.url, folders, repo="me/same") == ["already released", "already released", "released"]
    assert list(tags_of(hub.url, "me/same")) == ["v1"]


def test_release_survives_server_restart_before_download(built_v1, hub_env, tmp_path, capsys):
    root = tmp_path / "hub"
    with HubServer(root) as first:
        code, result, _ = _publish_json(capsys, publish_args(first.url, release_dir=built_v1, out=tmp_path / "rel"))
    assert code == 0
    with HubServer(root) as second:
        manifest = json.loads(Path(hf_hub_download(REPO, "manifest.json", revision="v1", endpoint=second.url,
                                                   cache_dir=tmp_path / "c")).read_text())
        for entry in manifest["files"]:
            got = hf_hub_download(REPO, entry["path"], revision="v1", endpoint=second.url, cache_dir=tmp_path / "c")
            assert sha256_of(Path(got)) == entry["sha256"]
        assert tags_of(second.url, REPO) == {"v1": result["commit"]}


@pytest.mark.parametrize("client_token, expected", [
    (None, "HTTP 401 from {url}: Authentication required: this Hub server "
           "was started with a token; send it as 'Authorization: Bearer <token>' (HF_TOKEN) (check HF_TOKEN / 'hf auth "
           "login' and the token's write access)"),
    ("hf_wrong", "HTTP 403 from {url}: Invalid token: the token sent is not "
                 "the one this Hub server was started with (check HF_TOKEN / 'hf auth login' and the token's write access)"),
])
def test_missing_or_wrong_token_is_a_clear_error_and_nothing_is_pushed(built_v1, hub_env, tmp_path, capsys, monkeypatch,
                                                                      client_token, expected):
    if client_token:
        monkeypatch.setenv("HF_TOKEN", client_token)
    with HubServer(tmp_path / "hub", token="hf_right") as server:
        code = main(publish_args(server.url, release_dir=built_v1, out=tmp_path / "rel"))
        err = capsys.readouterr().err
        assert code == 5
        last = err.strip().splitlines()[-1]
        assert last.startswith("meshrelease: error: ") and last.endswith(expected.format(url=server.url))
        assert list((server.root / "repos").iterdir()) == []
        assert list((server.root / "blobs").iterdir()) == []


def test_injected_failure_between_commit_and_tag_leaves_no_tag(built_v1, hub_env, tmp_path, capsys):
    with HubServer(tmp_path / "hub", faults=[Fault("tag-create", action="500", times=None)]) as server:
        code = main(publish_args(server.url, release_dir=built_v1, out=tmp_path / "rel"))
        err = capsys.readouterr().err
        assert code == 5
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"meshrelease: error: create tag v1 on {REPO}: HTTP 500 from {server.url}: "
                               "Injected fault on route tag-create; no tag was created (commit ")
        assert last.endswith("is on main, untagged)")
        assert server.faults.count("tag-create") == 4  # the first try and three retries
        assert tags_of(server.url, REPO) == {}
    with HubServer(tmp_path / "hub") as healthy:  # a re-run tags the complete commit
        assert main(publish_args(healthy.url, release_dir=built_v1, out=tmp_path / "rel2")) == 0
        assert list(tags_of(healthy.url, REPO)) == ["v1"]


def test_injected_failure_during_upload_leaves_no_commit_and_no_tag(built_v1, hub_env, tmp_path, capsys):
    with HubServer(tmp_path / "hub", faults=[Fault("lfs-upload", action="507", times=None)]) as server:
        code = main(publish_args(server.url, release_dir=built_v1, out=tmp_path / "rel"))
        err = capsys.readouterr().err
        assert code == 5
        # LFS files upload in parallel threads: whichever fails first is named
        assert re.fullmatch(
            rf"meshrelease: error: commit v1 to {REPO} \(Error while uploading '[\w/.]+\.(onnx|bin)' to the Hub\.\): "
            rf"HTTP 507 from {re.escape(server.url)}: Injected fault on route lfs-upload", err.strip().splitlines()[-1])
        api = HfApi(endpoint=server.url, token=False)
        assert tags_of(server.url, REPO) == {}
        assert [c.title for c in api.list_repo_commits(REPO)] == ["initial commit"]
        assert server.faults.count("commit") == 0


def test_transient_failures_are_retried_and_the_release_completes(built_v1, hub_env, tmp_path, capsys):
    faults = [Fault("commit", action="503"), Fault("create-repo", action="502"), Fault("lfs-upload", action="reset")]
    with HubServer(tmp_path / "hub", faults=faults) as server:
        code, result, _ = _publish_json(capsys, publish_args(server.url, release_dir=built_v1, out=tmp_path / "rel"))
        assert code == 0 and result["status"] == "released"
        assert tags_of(server.url, REPO) == {"v1": result["commit"]}
        assert [c.title for c in HfApi(endpoint=server.url, token=False).list_repo_commits(REPO)] == [
            "Release v1: meshnet_26", "initial commit"]


def test_dry_run_prints_the_plan_and_touches_nothing(built_v1, hub, tmp_path, capsys):
    code, plan, _ = _publish_json(capsys, publish_args(hub.url, "--dry-run", release_dir=built_v1, out=tmp_path / "rel"))
    assert code == 0 and plan["dry_run"] is True
    assert (plan["repo"], plan["tag"], plan["endpoint"]) == (REPO, "v1", hub.url)
    assert {"manifest.json", "onnx/model.onnx", "onnx/model_fp16.onnx", "onnx/model_int8.onnx"} <= {
        f["path"] for f in plan["files"]}
    assert plan["commit_message"] == "Release v1: meshnet_26"
    assert not (tmp_path / "rel").exists()
    assert list((hub.root / "repos").iterdir()) == []
    code, plan, _ = _publish_json(capsys, publish_args(hub.url, "--dry-run", out=tmp_path / "rel"))  # builds in a temp dir
    assert code == 0 and "onnx/model.onnx" in {f["path"] for f in plan["files"]}
    assert not (tmp_path / "rel").exists()
    assert list((hub.root / "repos").iterdir()) == []


def test_embedded_default_publishes_to_a_local_hub_folder(hub_env, tmp_path, capsys, monkeypatch):
    root = tmp_path / "embedded"
    monkeypatch.setenv("MESHRELEASE_HUB_ROOT", str(root))
    code = main(publish_args(None, repo=None, out=tmp_path / "rel"))
    out = capsys.readouterr().out
    assert code == 0
    assert f"meshnet_26 v1 released: local/meshnet_26 on the embedded hub at {root}, commit " in out
    assert "hf_hub_download('local/meshnet_26', 'manifest.json', revision='v1', endpoint='http://127.0.0.1:8080')" in out
    with HubServer(root) as server:  # what `meshrelease hub serve --root` serves
        manifest = json.loads(Path(hf_hub_download("local/meshnet_26", "manifest.json", revision="v1",
                                                   endpoint=server.url, cache_dir=tmp_path / "c")).read_text())
        assert manifest["variant"] == "meshnet_26" and manifest["tag"] == "v1"
    assert main(["releases", "local/meshnet_26", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["tag"], r["manifest"]["variant"], r["manifest"]["parity"]) for r in listed["releases"]] == [
        ("v1", "meshnet_26", f"{len(manifest['parity'])}/{len(manifest['parity'])}")]


def test_sentinel_token_never_appears_in_output_release_or_hub(built_v1, hub_env, tmp_path, capsys, monkeypatch):
    sentinel = "hf_SENTINELtokenXYZ0123456789"
    monkeypatch.setenv("HF_TOKEN", sentinel)
    with HubServer(tmp_path / "hub", token=sentinel) as server:
        assert main(publish_args(server.url, out=tmp_path / "rel")) == 0
        built = tmp_path / "rel" / "meshnet_26" / "v1"
        assert main(publish_args(server.url, release_dir=built, out=tmp_path / "rel")) == 0  # already released
        assert main(publish_args(server.url, "--json", release_dir=built, out=tmp_path / "rel")) == 0
        assert main(["pull", REPO, "--tag", "v1", "--dest", str(tmp_path / "pulled"), "--endpoint", server.url]) == 0
        assert main(["releases", REPO, "--endpoint", server.url]) == 0
        captured = capsys.readouterr()
    assert sentinel not in captured.out and sentinel not in captured.err
    scanned = 0
    for folder in (tmp_path / "rel", built_v1, tmp_path / "hub", tmp_path / "pulled", hub_env):
        for path in folder.rglob("*"):
            if path.is_file():
                assert sentinel.encode() not in path.read_bytes(), path
                scanned += 1
    assert scanned > 10


def test_pull_and_verify_pass_on_an_intact_release(built_v1, hub, tmp_path, capsys):
    assert main(publish_args(hub.url, release_dir=built_v1, out=tmp_path / "rel")) == 0
    capsys.readouterr()
    assert main(["pull", REPO, "--tag", "v1", "--dest", str(tmp_path / "pulled"), "--endpoint", hub.url, "--json"]) == 0
    pulled = json.loads(capsys.readouterr().out)
    manifest = json.loads((built_v1 / "manifest.json").read_text())
    assert [f["path"] for f in pulled["files"]] == [f["path"] for f in manifest["files"]]
    assert (tmp_path / "pulled" / "onnx" / "model.onnx").read_bytes() == (built_v1 / "onnx" / "model.onnx").read_bytes()
    assert main(["verify", REPO, "--tag", "v1", "--endpoint", hub.url, "--json"]) == 0
    verified = json.loads(capsys.readouterr().out)
    onnx_files = [f for f in manifest["files"] if f["format"] == "onnx"]
    onnx_rows = [r for r in verified["parity"] if r["runtime"] == "onnxruntime"]
    assert {r["artifact"] for r in onnx_rows} == {f["path"] for f in onnx_files}
    assert len(onnx_rows) >= 2 * len(onnx_files) and all(r["passed"] for r in verified["parity"])
    # the TF.js model is re-run too, in the real tfjs runtime, fed BrainChop's LIA orientation
    (tfjs_row,) = [r for r in verified["parity"] if r["artifact"] == "tfjs/model.json"]
    assert tfjs_row["runtime"].startswith("tfjs 4.22.0") and tfjs_row["max_abs"] <= 1e-4


def _tamper(hub_root: Path, sha256: str, same_size: bool) -> None:
    blob = hub_root / "blobs" / sha256[:2] / sha256
    data = bytearray(blob.read_bytes())
    if same_size:
        data[len(data) // 2] ^= 0xFF
    else:
        data += b"extra"
    blob.write_bytes(bytes(data))


@pytest.mark.parametrize("same_size", [True, False])
def test_pull_and_verify_fail_clearly_on_a_tampered_stored_file(built_v1, hub, tmp_path, capsys, same_size):
    code, result, _ = _publish_json(capsys, publish_args(hub.url, release_dir=built_v1, out=tmp_path / "rel"))
    target = next(f for f in result["files"] if f["path"] == "onnx/model_int8.onnx")
    _tamper(hub.root, target["sha256"], same_size)
    for argv in (["pull", REPO, "--tag", "v1", "--dest", str(tmp_path / "pulled")], ["verify", REPO, "--tag", "v1"]):
        assert main(argv + ["--endpoint", hub.url]) == 3
        last = capsys.readouterr().err.strip().splitlines()[-1]
        size = target["size"] + (0 if same_size else len(b"extra"))
        assert last.startswith(f"meshrelease: error: {REPO}@v1: onnx/model_int8.onnx has sha256 ")
        assert last.endswith(f" ({size} bytes) but the manifest says {target['sha256']} ({target['size']} bytes); "
                             "the stored file is damaged or tampered with")
    assert not (tmp_path / "pulled").exists()


def test_hf_checkpoint_source_downloads_through_the_hub(hub, tmp_path, monkeypatch):
    from meshrelease.checkpoint.pull import pull_checkpoint

    from .hub_fixtures import CHECKPOINT

    api = HfApi(endpoint=hub.url, token=False)
    api.create_repo("me/ckpt")
    commit = api.upload_file(path_or_fileobj=str(CHECKPOINT), path_in_repo="fold_0/final.pt", repo_id="me/ckpt")
    api.create_tag("me/ckpt", tag="trained", revision=commit.oid)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    src = pull_checkpoint("hf://me/ckpt/fold_0/final.pt@trained", sha256_of(CHECKPOINT))
    assert (src.kind, src.sha256, src.size) == ("hf", sha256_of(CHECKPOINT), CHECKPOINT.stat().st_size)
    from meshrelease.errors import IntegrityError, SourceError

    with pytest.raises(SourceError, match=r"^checkpoint hf://me/ckpt/missing.pt@trained: missing.pt not found in me/ckpt@trained"):
        pull_checkpoint("hf://me/ckpt/missing.pt@trained")
    with pytest.raises(IntegrityError):
        pull_checkpoint("hf://me/ckpt/fold_0/final.pt@trained", "0" * 64)
