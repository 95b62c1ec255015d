"""HTTP front of the local Hub: routes the requests huggingface_hub makes to :class:`HubStorage`.

Speaks the subset of the Hub API described in ``docs/hub-protocol.md`` (create repo, info,
refs, tree, commits, preupload, LFS batch/basic upload/verify, ndjson commit, tags, branches,
resolve with the download headers, validate-yaml). Never advertises Xet.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import struct
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .faults import FaultPlan
from .storage import (
    DEFAULT_BRANCH,
    REPO_TYPES,
    Commit,
    HubStorage,
    RepoKey,
    StorageError,
    TreeEntry,
    b64decode_strict,
    lfs_pointer,
    validate_repo_path,
)

if TYPE_CHECKING:
    from . import HubServer

LFS_CONTENT_TYPE = "application/vnd.git-lfs+json"
MAX_JSON_BODY = 512 * 1024 * 1024
COPY_CHUNK = 1024 * 1024


class HubRequestHandler(BaseHTTPRequestHandler):
    """One request to the local Hub. ``self.server.hub`` is the owning :class:`HubServer`."""

    protocol_version = "HTTP/1.1"
    server_version = "meshrelease-hub"
    sys_version = ""

    # ---- plumbing ----------------------------------------------------------------------
    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    @property
    def storage(self) -> HubStorage:
        return self.hub.storage

    @property
    def faults(self) -> FaultPlan:
        return self.hub.faults

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.hub.log_requests:
            super().log_message(format, *args)

    def base_url(self) -> str:
        host = self.headers.get("Host") or f"{self.hub.host}:{self.hub.port}"
        return f"http://{host}"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _body_chunks(self) -> Iterator[bytes]:
        """The request body, from Content-Length or chunked transfer encoding."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                remaining = size
                while remaining:
                    chunk = self.rfile.read(min(remaining, COPY_CHUNK))
                    if not chunk:
                        raise StorageError(400, "Truncated chunked request body")
                    remaining -= len(chunk)
                    yield chunk
                self.rfile.readline(3)  # CRLF after each chunk
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, COPY_CHUNK))
                if not chunk:
                    raise StorageError(400, "Truncated request body")
                remaining -= len(chunk)
                yield chunk
        self._body_consumed = True

    def _read_body(self) -> bytes:
        out = bytearray()
        for chunk in self._body_chunks():
            out += chunk
            if len(out) > MAX_JSON_BODY:
                raise StorageError(413, "Request body too large")
        return bytes(out)

    def _json_body(self) -> Any:
        raw = self._read_body()
        try:
            return json.loads(raw or b"{}")
        except ValueError as e:
            raise StorageError(400, f"Request body is not valid JSON: {e}") from e

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None, ctype: str = "application/json") -> None:
        self._send(status, json.dumps(payload).encode(), ctype, headers)

    def _send_error(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        safe = message.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")
        h = {"X-Error-Message": safe, **(headers or {})}
        if code:
            h["X-Error-Code"] = code
        self._send_json(status, {"error": message}, h)

    def _reset_connection(self) -> None:
        """Drop the connection with a TCP RST, as a crashed proxy would."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    # ---- auth --------------------------------------------------------------------------
    def _check_token(self) -> None:
        expected = self.hub.token
        if expected is None:
            return
        header = self.headers.get("Authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise StorageError(
                401, "Authentication required: this Hub server was started with a token; send it as 'Authorization: Bearer <token>' (HF_TOKEN)"
            )
        if not hmac.compare_digest(header[7:].strip().encode(), expected.encode()):
            raise StorageError(403, "Invalid token: the token sent is not the one this Hub server was started with")

    def _upload_signature(self, oid: str, size: int) -> str:
        return hmac.new(self.hub.upload_secret, f"{oid}:{size}".encode(), hashlib.sha256).hexdigest()

    # ---- routing -----------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        self._body_consumed = False
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        raw_segments = split.path.split("/")[1:]
        segs = [unquote(s) for s in raw_segments]
        try:
            route, handler, args = self._route(method, segs)
            if route is None:
                raise StorageError(404, f"Not found: {method} {split.path}")
            fault = self.faults.check(route)
            if fault is not None:
                if fault.action == "reset":
                    self._reset_connection()
                    return
                self.close_connection = True  # body left unread
                self._send_error(int(fault.action), f"Injected fault on route {route}")
                return
            if route not in ("lfs-upload", "validate-yaml", "agent-harnesses"):
                self._check_token()
            handler(*args)
        except StorageError as e:
            if not self._body_consumed and method in ("POST", "PUT"):
                self.close_connection = True
            extra = {}
            if e.code in ("EntryNotFound",) and getattr(self, "_repo_commit", None):
                extra["X-Repo-Commit"] = self._repo_commit
            self._send_error(e.status, e.message, e.code, extra)
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True

    def _repo_from(self, repo_type: str, ns: str, name: str) -> RepoKey:
        return RepoKey.parse(repo_type, ns, name)

    def _route(self, method: str, segs: list[str]) -> tuple[str | None, Any, tuple]:
        n = len(segs)
        if segs[:1] == ["api"] and n >= 2:
            if segs[1] == "agent-harnesses" and method == "GET":
                return "agent-harnesses", self.h_not_found, ()
            if segs[1] == "validate-yaml" and method == "POST":
                return "validate-yaml", self.h_validate_yaml, ()
            if segs[1:3] == ["repos", "create"] and method == "POST":
                return "create-repo", self.h_create_repo, ()
            if segs[1:3] == ["repos", "delete"] and method == "DELETE":
                return "delete-repo", self.h_delete_repo, ()
            if segs[1].endswith("s") and segs[1][:-1] in REPO_TYPES and n >= 4:
                key = self._repo_from(segs[1][:-1], segs[2], segs[3])
                rest = segs[4:]
                action = rest[0] if rest else None
                tail = rest[1:]
                if action is None and method == "GET":
                    return "repo-info", self.h_repo_info, (key, DEFAULT_BRANCH)
                if action == "revision" and tail and method == "GET":
                    return "repo-info", self.h_repo_info, (key, "/".join(tail))
                if action == "refs" and not tail and method == "GET":
                    return "refs", self.h_refs, (key,)
                if action == "tree" and tail and method == "GET":
                    return "tree", self.h_tree, (key, tail[0], "/".join(tail[1:]))
                if action == "paths-info" and tail and method == "POST":
                    return "paths-info", self.h_paths_info, (key, "/".join(tail))
                if action == "commits" and tail and method == "GET":
                    return "commits", self.h_commits, (key, "/".join(tail))
                if action == "preupload" and tail and method == "POST":
                    return "preupload", self.h_preupload, (key, "/".join(tail))
                if action == "commit" and tail and method == "POST":
                    return "commit", self.h_commit, (key, "/".join(tail))
                if action == "tag" and tail and method == "POST":
                    return "tag-create", self.h_tag_create, (key, "/".join(tail))
                if action == "tag" and tail and method == "DELETE":
                    return "tag-delete", self.h_tag_delete, (key, "/".join(tail))
                if action == "branch" and tail and method == "POST":
                    return "branch-create", self.h_branch_create, (key, "/".join(tail))
                if action == "branch" and tail and method == "DELETE":
                    return "branch-delete", self.h_branch_delete, (key, "/".join(tail))
            return None, None, ()
        if segs[:1] == ["lfs-upload"] and n == 2 and method == "PUT":
            return "lfs-upload", self.h_lfs_upload, (segs[1],)
        # Download and git-LFS routes: [<type>s/]ns/name...
        repo_type = "model"
        if segs and segs[0] in ("datasets", "spaces") and n >= 3:
            repo_type, segs = segs[0][:-1], segs[1:]
            n = len(segs)
        if n >= 5 and segs[1].endswith(".git") and segs[2:4] == ["info", "lfs"] and method == "POST":
            key = self._repo_from(repo_type, segs[0], segs[1][: -len(".git")])
            if segs[4:] == ["objects", "batch"]:
                return "lfs-batch", self.h_lfs_batch, (key,)
            if segs[4:] == ["objects", "verify"]:
                return "lfs-verify", self.h_lfs_verify, (key,)
        if n >= 5 and segs[2] == "resolve" and method in ("GET", "HEAD"):
            key = self._repo_from(repo_type, segs[0], segs[1])
            return "resolve", self.h_resolve, (key, segs[3], "/".join(segs[4:]))
        return None, None, ()

    # ---- helpers -----------------------------------------------------------------------
    def _repo_url(self, key: RepoKey) -> str:
        prefix = "" if key.repo_type == "model" else f"{key.repo_type}s/"
        return f"{self.base_url()}/{prefix}{key.repo_id}"

    def _tree_entry_json(self, e: TreeEntry) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "file", "path": e.path, "size": e.size, "oid": e.git_oid}
        if e.lfs:
            out["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": len(lfs_pointer(e.sha256, e.size))}
        return out

    @staticmethod
    def _dir_json(path: str, commit: Commit) -> dict[str, Any]:
        oid = hashlib.sha1(f"tree {commit.oid} {path}".encode()).hexdigest()
        return {"type": "directory", "path": path, "oid": oid, "size": 0}

    def _paginate(self, items: list[Any], route_path: str) -> None:
        try:
            cursor = max(0, int(self.query.get("cursor", ["0"])[0]))
        except ValueError as e:
            raise StorageError(400, "Invalid cursor") from e
        size = self.hub.page_size
        page = items[cursor : cursor + size]
        headers = {}
        if cursor + size < len(items):
            params = {k: v[-1] for k, v in self.query.items() if k != "cursor"}
            params["cursor"] = str(cursor + size)
            qs = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
            headers["Link"] = f'<{self.base_url()}{route_path}?{qs}>; rel="next"'
        self._send_json(200, page, headers)

    def _card_data(self, commit: Commit) -> dict[str, Any] | None:
        entry = commit.tree.get("README.md")
        if entry is None or entry.size > 1024 * 1024:
            return None
        text = self.storage.read_blob(entry.sha256).decode("utf-8", "replace")
        data = _front_matter(text)
        return data if isinstance(data, dict) else None

    # ---- handlers ----------------------------------------------------------------------
    def h_not_found(self) -> None:
        raise StorageError(404, "Not found")

    def h_validate_yaml(self) -> None:
        body = self._json_body()
        content = body.get("content", "") if isinstance(body, dict) else ""
        repo_type = body.get("repoType") or "model" if isinstance(body, dict) else "model"
        errors = _validate_card(str(content), str(repo_type))
        if errors:
            self._send_json(400, {"errors": [{"message": m} for m in errors], "warnings": []})
        else:
            self._send_json(200, {"errors": [], "warnings": []})

    def _key_from_body(self, body: Any) -> RepoKey:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise StorageError(400, "Missing repo 'name'")
        name = body["name"]
        org = body.get("organization")
        if org is None and "/" in name:
            org, name = name.split("/", 1)
        if not org:
            raise StorageError(400, "A namespace ('organization') is required: repo ids are 'namespace/name'")
        return RepoKey.parse(body.get("type") or "model", org, name)

    def h_create_repo(self) -> None:
        body = self._json_body()
        key = self._key_from_body(body)
        private = body.get("visibility") == "private" or bool(body.get("private"))
        created = self.storage.create_repo(key, private)
        url = self._repo_url(key)
        if created:
            self._send_json(200, {"url": url, "name": key.repo_id})
        else:
            self._send_json(409, {"url": url, "error": "You already created this model repo"},
                            {"X-Error-Message": "You already created this model repo"})

    def h_delete_repo(self) -> None:
        key = self._key_from_body(self._json_body())
        self.storage.delete_repo(key)
        self._send_json(200, {})

    def h_repo_info(self, key: RepoKey, revision: str) -> None:
        settings = self.storage.repo_settings(key)
        oid = self.storage.resolve(key, revision)
        commit = self.storage.commit(key, oid)
        files_metadata = self.query.get("blobs", ["false"])[0].lower() in ("true", "1")
        siblings = []
        for path in sorted(commit.tree):
            e = commit.tree[path]
            sib: dict[str, Any] = {"rfilename": path}
            if files_metadata:
                sib.update(size=e.size, blobId=e.git_oid)
                if e.lfs:
                    sib["lfs"] = {"sha256": e.sha256, "size": e.size, "pointerSize": len(lfs_pointer(e.sha256, e.size))}
            siblings.append(sib)
        card = self._card_data(commit)
        info: dict[str, Any] = {
            "id": key.repo_id,
            "_id": hashlib.sha1(key.repo_id.encode()).hexdigest()[:24],
            "author": key.namespace,
            "sha": oid,
            "private": settings.get("private", False),
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "createdAt": settings["createdAt"],
            "lastModified": commit.date,
            "tags": list((card or {}).get("tags") or []) if isinstance((card or {}).get("tags"), list) else [],
            "siblings": siblings,
        }
        if card is not None:
            info["cardData"] = card
            for field in ("library_name", "pipeline_tag"):
                if isinstance(card.get(field), str):
                    info[field] = card[field]
        self._send_json(200, info)

    def h_refs(self, key: RepoKey) -> None:
        refs = self.storage.refs(key)
        out: dict[str, Any] = {
            "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in sorted(refs["branches"].items())],
            "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": c} for t, c in sorted(refs["tags"].items())],
            "converts": [],
        }
        if self.query.get("include_prs"):
            out["pullRequests"] = []
        self._send_json(200, out)

    def _listing(self, commit: Commit, path: str, recursive: bool) -> list[dict[str, Any]]:
        path = path.strip("/")
        prefix = f"{path}/" if path else ""
        if path and path in commit.tree:
            raise StorageError(404, f"{path} is a file, not a folder", "EntryNotFound")
        files = sorted(p for p in commit.tree if p.startswith(prefix))
        if path and not files:
            raise StorageError(404, f"Path {path} not found in revision {commit.oid}", "EntryNotFound")
        dirs: set[str] = set()
        out_files = []
        for p in files:
            rel = p[len(prefix) :]
            parts = rel.split("/")
            if recursive:
                for i in range(1, len(parts)):
                    dirs.add(prefix + "/".join(parts[:i]))
                out_files.append(p)
            elif len(parts) > 1:
                dirs.add(prefix + parts[0])
            else:
                out_files.append(p)
        entries = [self._dir_json(d, commit) for d in sorted(dirs)]
        entries += [self._tree_entry_json(commit.tree[p]) for p in out_files]
        return entries

    def h_tree(self, key: RepoKey, revision: str, path: str) -> None:
        oid = self.storage.resolve(key, revision)
        self._repo_commit = oid
        commit = self.storage.commit(key, oid)
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("true", "1")
        route = urlsplit(self.path).path
        self._paginate(self._listing(commit, path, recursive), route)

    def h_paths_info(self, key: RepoKey, revision: str) -> None:
        raw = self._read_body()
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            paths = json.loads(raw or b"{}").get("paths", [])
        else:
            paths = parse_qs(raw.decode()).get("paths", [])
        oid = self.storage.resolve(key, revision)
        commit = self.storage.commit(key, oid)
        out = []
        for p in paths:
            p = p.strip("/")
            if p in commit.tree:
                out.append(self._tree_entry_json(commit.tree[p]))
            elif p and any(q.startswith(p + "/") for q in commit.tree):
                out.append(self._dir_json(p, commit))
        self._send_json(200, out)

    def h_commits(self, key: RepoKey, revision: str) -> None:
        oid = self.storage.resolve(key, revision)
        items = [
            {
                "id": c.oid,
                "title": c.title,
                "message": c.description,
                "authors": [{"user": c.author}],
                "date": c.date,
            }
            for c in self.storage.history(key, oid)
        ]
        self._paginate(items, urlsplit(self.path).path)

    def h_preupload(self, key: RepoKey, revision: str) -> None:
        body = self._json_body()
        if self.query.get("create_pr"):
            raise StorageError(400, "Pull requests are not supported by this Hub server")
        oid = self.storage.resolve(key, revision)
        commit = self.storage.commit(key, oid)
        ga = commit.tree.get(".gitattributes")
        gitattributes = self.storage.read_blob(ga.sha256) if ga else b""
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list):
            raise StorageError(400, "Preupload body needs a 'files' list")
        out = []
        for f in files:
            path = validate_repo_path(str(f.get("path", "")))
            sample = b64decode_strict(str(f.get("sample", "")))
            size = int(f.get("size", 0))
            lfs = self.storage.lfs_mode(path, size, sample, gitattributes)
            item: dict[str, Any] = {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            existing = commit.tree.get(path)
            if existing is not None:
                item["oid"] = existing.sha256 if lfs else existing.git_oid
            out.append(item)
        self._send_json(200, {"files": out, "commitOid": oid})

    def h_lfs_batch(self, key: RepoKey) -> None:
        body = self._json_body()
        self.storage.repo_settings(key)
        if not isinstance(body, dict) or body.get("operation") not in ("upload", "download"):
            raise StorageError(400, "LFS batch needs operation 'upload' or 'download'")
        base = self.base_url()
        prefix = "" if key.repo_type == "model" else f"{key.repo_type}s/"
        objects = []
        for obj in body.get("objects") or []:
            oid, size = str(obj.get("oid", "")), obj.get("size")
            if not isinstance(size, int) or size < 0:
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid size"}})
                continue
            try:
                present = self.storage.has_blob(oid, size)
            except StorageError as e:
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": e.message}})
                continue
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if body["operation"] == "upload" and not present:
                sig = self._upload_signature(oid, size)
                item["actions"] = {
                    "upload": {"href": f"{base}/lfs-upload/{oid}?size={size}&sig={sig}"},
                    "verify": {"href": f"{base}/{prefix}{key.repo_id}.git/info/lfs/objects/verify"},
                }
            elif body["operation"] == "download":
                if not present:
                    item["error"] = {"code": 404, "message": "Object does not exist"}
            objects.append(item)
        self._send_json(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, ctype=LFS_CONTENT_TYPE)

    def h_lfs_upload(self, oid: str) -> None:
        try:
            size = int(self.query.get("size", [""])[0])
        except ValueError as e:
            raise StorageError(400, "Upload URL is missing its size") from e
        sig = self.query.get("sig", [""])[0]
        if not hmac.compare_digest(sig.encode(), self._upload_signature(oid, size).encode()):
            raise StorageError(403, "Invalid or expired upload URL: ask the LFS batch endpoint for a new one")
        self.storage.blob_path(oid)  # validates the oid before anything touches the disk
        self.storage.put_blob_stream(self._body_chunks(), oid, size)
        self._send(200, b"", headers={"ETag": f'"{oid}"'})

    def h_lfs_verify(self, key: RepoKey) -> None:
        body = self._json_body()
        oid, size = str(body.get("oid", "")), body.get("size")
        if not self.storage.has_blob(oid, size if isinstance(size, int) else None):
            raise StorageError(404, f"Object {oid} was not uploaded")
        self._send_json(200, {"oid": oid, "size": size}, ctype=LFS_CONTENT_TYPE)

    def h_commit(self, key: RepoKey, revision: str) -> None:
        raw = self._read_body()
        if self.query.get("create_pr"):
            raise StorageError(400, "Pull requests are not supported by this Hub server")
        self.storage.repo_settings(key)
        if revision not in self.storage.refs(key)["branches"]:
            raise StorageError(404, f"Invalid rev id: {revision} (commits go to a branch)", "RevisionNotFound")
        header: dict[str, Any] | None = None
        regular: dict[str, bytes] = {}
        lfs: dict[str, tuple[str, int]] = {}
        deleted_files: list[str] = []
        deleted_folders: list[str] = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                kind, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError) as e:
                raise StorageError(400, f"Malformed commit line: {e}") from e
            if kind == "header":
                header = value
            elif kind == "file":
                if value.get("encoding", "base64") != "base64":
                    raise StorageError(400, "Only base64-encoded file contents are supported")
                regular[str(value["path"])] = b64decode_strict(str(value["content"]))
            elif kind == "lfsFile":
                if value.get("algo", "sha256") != "sha256":
                    raise StorageError(400, "Only sha256 LFS oids are supported")
                lfs[str(value["path"])] = (str(value["oid"]), int(value["size"]))
            elif kind == "deletedFile":
                deleted_files.append(str(value["path"]))
            elif kind == "deletedFolder":
                deleted_folders.append(str(value["path"]))
            else:
                raise StorageError(400, f"Unsupported commit operation {kind!r}")
        if header is None or not str(header.get("summary", "")).strip():
            raise StorageError(400, "The commit needs a header with a non-empty summary")
        commit = self.storage.apply_commit(
            key,
            revision,
            header.get("parentCommit"),
            str(header["summary"]),
            str(header.get("description") or ""),
            regular,
            lfs,
            deleted_files,
            deleted_folders,
            author=key.namespace,
        )
        self._send_json(
            200,
            {"success": True, "commitOid": commit.oid, "commitUrl": f"{self._repo_url(key)}/commit/{commit.oid}", "commitMessage": commit.title},
        )

    def h_tag_create(self, key: RepoKey, revision: str) -> None:
        body = self._json_body()
        tag = body.get("tag") if isinstance(body, dict) else None
        if not isinstance(tag, str):
            raise StorageError(400, "Missing 'tag'")
        self.storage.create_tag(key, tag, revision, body.get("message"))
        self._send_json(200, {"tag": tag})

    def h_tag_delete(self, key: RepoKey, tag: str) -> None:
        self._read_body()
        self.storage.delete_tag(key, tag)
        self._send_json(200, {})

    def h_branch_create(self, key: RepoKey, branch: str) -> None:
        body = self._json_body()
        self.storage.create_branch(key, branch, body.get("startingPoint") if isinstance(body, dict) else None)
        self._send_json(200, {})

    def h_branch_delete(self, key: RepoKey, branch: str) -> None:
        self._read_body()
        self.storage.delete_branch(key, branch)
        self._send_json(200, {})

    def h_resolve(self, key: RepoKey, revision: str, path: str) -> None:
        self.storage.repo_settings(key)
        oid = self.storage.resolve(key, revision)
        self._repo_commit = oid
        validate_repo_path(path)
        commit = self.storage.commit(key, oid)
        entry = commit.tree.get(path)
        if entry is None:
            raise StorageError(404, f"Entry not found: {path} in revision {revision}", "EntryNotFound")
        blob = self.storage.blob_path(entry.sha256)
        total = blob.stat().st_size
        start, end, status = 0, total - 1, 200
        rng = self.headers.get("Range")
        headers = {
            "X-Repo-Commit": oid,
            "ETag": f'"{entry.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{quote(path.rsplit("/", 1)[-1])}"',
        }
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{entry.sha256}"'
            headers["X-Linked-Size"] = str(total)
        if rng:
            start, end = _parse_range(rng, total)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        length = max(0, end - start + 1)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        with blob.open("rb") as f:
            f.seek(start)
            remaining = length
            while remaining > 0:
                chunk = f.read(min(remaining, COPY_CHUNK))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)


def _parse_range(header: str, total: int) -> tuple[int, int]:
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        raise StorageError(416, f"Unsupported range {header!r}")
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            start, end = max(0, total - int(last)), total - 1
        else:
            start = int(first)
            end = int(last) if last else total - 1
    except ValueError as e:
        raise StorageError(416, f"Invalid range {header!r}") from e
    end = min(end, total - 1)
    if start > end or start >= total:
        raise StorageError(416, f"Range {header!r} not satisfiable for {total} bytes")
    return start, end


def _front_matter(text: str) -> Any:
    import yaml

    if not text.startswith("---"):
        return None
    lines = text.splitlines()
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        return None
    try:
        return yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError:
        return None


def _validate_card(content: str, repo_type: str) -> list[str]:
    """Errors the Hub would report for a README's metadata, decided by huggingface_hub's own card parsing."""
    import yaml
    from huggingface_hub import DatasetCard, ModelCard, SpaceCard

    lines = content.splitlines()
    if lines and lines[0].strip() == "---":
        try:
            end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
        except StopIteration:
            return ["Invalid metadata: the YAML block opened by '---' is never closed"]
        try:
            data = yaml.safe_load("\n".join(lines[1:end]))
        except yaml.YAMLError as e:
            return [f"Invalid YAML in metadata: {' '.join(str(e).split())}"]
        if data is not None and not isinstance(data, dict):
            return ["Invalid metadata: the YAML block must be a mapping"]
    card_cls = {"model": ModelCard, "dataset": DatasetCard, "space": SpaceCard}.get(repo_type, ModelCard)
    try:
        card_cls(content, ignore_metadata_errors=False)
    except Exception as e:  # huggingface_hub raises ValueError for bad model-index and friends
        return [" ".join(str(e).split())]
    return []


__all__ = ["HubRequestHandler"]
