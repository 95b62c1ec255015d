"""The local Hub server speaks what the unmodified huggingface_hub client needs (protocol notes §2-§4)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from meshrelease.publish.server import Fault, HubServer

from .hub_fixtures import hub, hub_env  # noqa: F401 - fixtures

BIG = bytes(range(256)) * 64  # 16 KiB with NUL bytes: the server puts it in LFS


def _raw(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def _first_release(api: HfApi, repo: str = "me/model") -> str:
    api.create_repo(repo)
    head = api.list_repo_refs(repo).branches[0].target_commit
    info = api.create_commit(repo, [CommitOperationAdd("weights/model.onnx", BIG), CommitOperationAdd("notes.txt", b"hi\n")],
                             commit_message="Release v1", parent_commit=head)
    api.create_tag(repo, tag="v1", revision=info.oid)
    return info.oid


def test_client_round_trip_create_commit_tag_list_download(hub, tmp_path):
    api = HfApi(endpoint=hub.url, token=False)
    commit = _first_release(api)

    refs = api.list_repo_refs("me/model")
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", commit)]
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", commit)]
    assert refs.converts == []
    with pytest.raises(HfHubHTTPError) as dup:
        api.create_tag("me/model", tag="v1", revision=commit)
    assert dup.value.response.status_code == 409

    files = {f.path: f for f in api.list_repo_tree("me/model", revision="v1", recursive=True) if hasattr(f, "blob_id")}
    assert sorted(files) == [".gitattributes", "notes.txt", "weights/model.onnx"]
    assert files["weights/model.onnx"].lfs.sha256 == hashlib.sha256(BIG).hexdigest()
    assert files["notes.txt"].lfs is None
    assert files["notes.txt"].blob_id == hashlib.sha1(b"blob 3\0hi\n").hexdigest()
    commits = api.list_repo_commits("me/model", revision="v1")
    assert [c.title for c in commits] == ["Release v1", "initial commit"]
    assert api.model_info("me/model", revision="v1").sha == commit

    path = hf_hub_download("me/model", "weights/model.onnx", revision="v1", endpoint=hub.url, cache_dir=tmp_path / "c1")
    assert Path(path).read_bytes() == BIG
    snap = Path(snapshot_download("me/model", revision="v1", endpoint=hub.url, cache_dir=tmp_path / "c2"))
    assert (snap / "notes.txt").read_bytes() == b"hi\n"
    assert (snap / "weights/model.onnx").read_bytes() == BIG

    assert api.file_exists("me/model", "missing.txt") is False
    assert api.repo_exists("me/other") is False
    assert api.revision_exists("me/model", "v2") is False


def test_tree_and_commits_paginate_with_link_headers(hub_env, tmp_path):
    with HubServer(tmp_path / "hub", page_size=2) as server:
        api = HfApi(endpoint=server.url, token=False)
        api.create_repo("me/many")
        ops = [CommitOperationAdd(f"f{i}.txt", f"{i}\n".encode()) for i in range(5)]
        api.create_commit("me/many", ops, commit_message="five files")
        assert sorted(api.list_repo_files("me/many")) == [".gitattributes"] + [f"f{i}.txt" for i in range(5)]
        status, headers, _ = _raw(server.url, "GET", "/api/models/me/many/tree/main?recursive=true")
        assert status == 200 and 'rel="next"' in headers["Link"]


def test_stale_parent_commit_is_refused_with_412(hub):
    api = HfApi(endpoint=hub.url, token=False)
    api.create_repo("me/race")
    initial = api.list_repo_refs("me/race").branches[0].target_commit
    api.create_commit("me/race", [CommitOperationAdd("a.txt", b"a")], commit_message="first", parent_commit=initial)
    with pytest.raises(HfHubHTTPError) as stale:
        api.create_commit("me/race", [CommitOperationAdd("b.txt", b"b")], commit_message="second", parent_commit=initial)
    assert stale.value.response.status_code == 412
    assert sorted(api.list_repo_files("me/race")) == [".gitattributes", "a.txt"]


def test_download_headers_range_and_missing_entries(hub):
    api = HfApi(endpoint=hub.url, token=False)
    commit = _first_release(api)
    status, headers, body = _raw(hub.url, "HEAD", "/me/model/resolve/v1/weights/model.onnx")
    assert status == 200
    assert headers["X-Repo-Commit"] == commit
    assert headers["X-Linked-Etag"] == f'"{hashlib.sha256(BIG).hexdigest()}"'
    assert headers["Content-Length"] == str(len(BIG))
    assert not any(h.lower().startswith("x-xet") for h in headers)
    status, headers, body = _raw(hub.url, "GET", "/me/model/resolve/v1/weights/model.onnx", headers={"Range": "bytes=100-"})
    assert status == 206 and body == BIG[100:] and headers["Content-Range"] == f"bytes 100-{len(BIG) - 1}/{len(BIG)}"
    status, headers, _ = _raw(hub.url, "HEAD", "/me/model/resolve/v1/missing.txt")
    assert (status, headers["X-Error-Code"], headers["X-Repo-Commit"]) == (404, "EntryNotFound", commit)
    status, headers, _ = _raw(hub.url, "GET", "/api/models/me/model/revision/v9")
    assert (status, headers["X-Error-Code"]) == (404, "RevisionNotFound")
    status, headers, _ = _raw(hub.url, "GET", "/api/models/me/nothing")
    assert (status, headers["X-Error-Code"]) == (404, "RepoNotFound")


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/api/models/..%2F..%2Fetc/passwd", None),
        ("GET", "/api/models/me/..", None),
        ("GET", "/api/models/me/a--b", None),
        ("POST", "/api/repos/create", json.dumps({"name": "../../evil", "organization": "me"}).encode()),
        ("POST", "/api/repos/create", json.dumps({"name": "evil", "organization": ".."}).encode()),
        ("HEAD", "/me/model/resolve/main/..%2F..%2F..%2Frepos.json", None),
        ("PUT", "/lfs-upload/..%2F..%2Fescape?size=1&sig=x", b"x"),
    ],
)
def test_path_traversal_and_malformed_repo_ids_are_rejected(hub, method, path, body):
    HfApi(endpoint=hub.url, token=False).create_repo("me/model")
    status, headers, _ = _raw(hub.url, method, path, body=body, headers={"Content-Type": "application/json"})
    assert status in (400, 403)
    assert sorted(p.name for p in hub.root.iterdir()) == ["blobs", "repos", "tmp"]
    assert not (hub.root.parent / "escape").exists() and not (hub.root.parent / "evil").exists()


def test_commit_with_traversal_path_is_rejected_and_nothing_changes(hub):
    api = HfApi(endpoint=hub.url, token=False)
    api.create_repo("me/model")
    head = api.list_repo_refs("me/model").branches[0].target_commit
    lines = [
        {"key": "header", "value": {"summary": "evil", "description": ""}},
        {"key": "file", "value": {"path": "../../outside.txt", "content": base64.b64encode(b"x").decode(), "encoding": "base64"}},
    ]
    body = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    status, headers, data = _raw(hub.url, "POST", "/api/models/me/model/commit/main", body=body,
                                 headers={"Content-Type": "application/x-ndjson"})
    assert status == 400
    assert json.loads(data)["error"] == "Invalid path in repo: '../../outside.txt'"
    assert api.list_repo_refs("me/model").branches[0].target_commit == head


def test_token_is_enforced_with_clear_messages(hub_env, tmp_path):
    with HubServer(tmp_path / "hub", token="right-token") as server:
        with pytest.raises(HfHubHTTPError) as missing:
            HfApi(endpoint=server.url, token=False).create_repo("me/x")
        assert missing.value.response.status_code == 401
        assert "this Hub server was started with a token" in str(missing.value)
        with pytest.raises(HfHubHTTPError) as wrong:
            HfApi(endpoint=server.url, token="wrong-token").list_repo_refs("me/x")
        assert wrong.value.response.status_code == 403
        assert "Invalid token" in str(wrong.value)
        HfApi(endpoint=server.url, token="right-token").create_repo("me/x")
        assert not (server.root / "repos" / "models" / "me" / "y").exists()


def test_validate_yaml_uses_huggingface_hub_card_parsing(hub):
    status, _, body = _raw(hub.url, "POST", "/api/validate-yaml",
                           json.dumps({"content": "---\nlicense: mit\n---\n# ok\n", "repoType": "model"}).encode())
    assert (status, json.loads(body)) == (200, {"errors": [], "warnings": []})
    status, _, body = _raw(hub.url, "POST", "/api/validate-yaml",
                           json.dumps({"content": "---\nlicense: [mit\n---\n", "repoType": "model"}).encode())
    assert status == 400 and json.loads(body)["errors"][0]["message"].startswith("Invalid YAML in metadata")
    api = HfApi(endpoint=hub.url, token=False)
    api.create_repo("me/card")
    bad_index = "---\nmodel-index:\n- name: x\n  results:\n  - foo: 1\n---\n# card\n"
    with pytest.raises(ValueError) as bad:
        api.create_commit("me/card", [CommitOperationAdd("README.md", bad_index.encode())], commit_message="card")
    assert str(bad.value).startswith(
        "Invalid metadata in README.md.\n- Invalid `model_index` in metadata cannot be parsed: <class 'KeyError'> 'task'."
    )
    assert api.list_repo_files("me/card") == [".gitattributes"]


def test_data_survives_a_server_restart(hub_env, tmp_path):
    root = tmp_path / "hub"
    with HubServer(root) as first:
        commit = _first_release(HfApi(endpoint=first.url, token=False))
    with HubServer(root) as second:
        assert second.url != "" and tags_after(second) == {"v1": commit}
        path = hf_hub_download("me/model", "weights/model.onnx", revision="v1", endpoint=second.url, cache_dir=tmp_path / "c")
        assert Path(path).read_bytes() == BIG


def tags_after(server: HubServer) -> dict[str, str]:
    return {t.name: t.target_commit for t in HfApi(endpoint=server.url, token=False).list_repo_refs("me/model").tags}


def test_chunked_lfs_upload_is_accepted_and_hash_checked(hub):
    api = HfApi(endpoint=hub.url, token=False)
    api.create_repo("me/chunked")
    data = os.urandom(3000)
    oid = hashlib.sha256(data).hexdigest()
    batch = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(data)}], "hash_algo": "sha256"}
    status, _, body = _raw(hub.url, "POST", "/me/chunked.git/info/lfs/objects/batch", json.dumps(batch).encode())
    href = json.loads(body)["objects"][0]["actions"]["upload"]["href"]
    u = urlsplit(href)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("PUT", f"{u.path}?{u.query}", body=iter([data[:1000], data[1000:]]), encode_chunked=True)
    assert conn.getresponse().status == 200
    conn.close()
    assert (hub.root / "blobs" / oid[:2] / oid).read_bytes() == data
    status, _, body = _raw(hub.url, "PUT", f"{u.path}?{u.query.replace('size=3000', 'size=2999')}", data[:2999])
    assert status == 403


def test_injected_faults_fail_the_chosen_requests_only(hub_env, tmp_path):
    with HubServer(tmp_path / "hub", faults=[Fault("refs", action="503", nth=2)]) as server:
        api = HfApi(endpoint=server.url, token=False)
        api.create_repo("me/f")
        api.list_repo_refs("me/f")
        with pytest.raises(HfHubHTTPError) as injected:
            api.list_repo_refs("me/f")
        assert injected.value.response.status_code == 503
        assert api.list_repo_refs("me/f").branches[0].name == "main"
        assert server.faults.count("refs") == 3
