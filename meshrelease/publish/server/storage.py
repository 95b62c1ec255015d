"""On-disk storage of the local Hub: content-addressed blobs, commit objects and refs.

Layout under the root::

    blobs/<sha256[:2]>/<sha256>          file contents, addressed by sha256
    repos/<type>s/<ns>/<name>/repo.json  repo settings (private, creation date)
    repos/<type>s/<ns>/<name>/commits/<oid>.json
    repos/<type>s/<ns>/<name>/refs.json  {"branches": {name: oid}, "tags": {name: oid}}
    tmp/                                 partial uploads, renamed into blobs/ once hashed

Every write goes to a temporary file first and is moved into place with ``os.replace``,
so a crash never leaves a half-written blob, commit or ref. Ref updates run under a
per-repo lock (a thread lock plus ``flock`` so two server processes on one root agree).
"""

from __future__ import annotations

import base64
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO_TYPES = ("model", "dataset", "space")
DEFAULT_BRANCH = "main"
LFS_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = (
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.onnx filter=lfs diff=lfs merge=lfs -text\n"
    "*.pt filter=lfs diff=lfs merge=lfs -text\n"
    "*.pth filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    "*.nii.gz filter=lfs diff=lfs merge=lfs -text\n"
).encode()

_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_OID_RE = re.compile(r"^[0-9a-f]{40}$")
_REF_CHAR_RE = re.compile(r"^[A-Za-z0-9._/+-]+$")


class StorageError(Exception):
    """A request the storage refuses; carries the HTTP status and Hub error code to answer with."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def now_iso() -> str:
    """The current UTC time in the Hub's ``%Y-%m-%dT%H:%M:%S.%fZ`` format."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    """The git object id (sha1 of ``blob <size>\\0<data>``) of a file's content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file stored in git in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def validate_repo_name(part: str) -> str:
    """Check one half (namespace or name) of a repo id; raise StorageError(400) when malformed."""
    if not _NAME_RE.match(part) or "--" in part or ".." in part:
        raise StorageError(
            400,
            f"Invalid repo id component {part!r}: use letters, digits, '-', '_', '.', "
            "no '--' or '..', not starting or ending with '-' or '.', at most 96 characters",
        )
    return part


def validate_repo_path(path: str) -> str:
    """Check a file path inside a repo: relative, no '..' or empty segments, no backslash or NUL."""
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\0" in path
        or any(seg in ("", ".", "..") for seg in path.split("/"))
        or path.split("/")[0] == ".git"
    ):
        raise StorageError(400, f"Invalid path in repo: {path!r}")
    return path


def validate_ref_name(name: str) -> str:
    """Check a branch or tag name against the subset of git's ref-name rules the Hub enforces."""
    if (
        not name
        or len(name) > 255
        or not _REF_CHAR_RE.match(name)
        or name.startswith(("-", "/", "."))
        or name.endswith(("/", ".", ".lock"))
        or ".." in name
        or "//" in name
        or "/." in name
        or _OID_RE.match(name)
    ):
        raise StorageError(400, f"Invalid ref name: {name!r}")
    return name


@dataclass(frozen=True)
class RepoKey:
    """A repository: its type ("model", "dataset", "space") and "ns/name" id."""

    repo_type: str
    namespace: str
    name: str

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, repo_type: str, namespace: str, name: str) -> RepoKey:
        if repo_type not in REPO_TYPES:
            raise StorageError(400, f"Invalid repo type: {repo_type!r}")
        return cls(repo_type, validate_repo_name(namespace), validate_repo_name(name))


@dataclass(frozen=True)
class TreeEntry:
    """One file of a commit's tree."""

    path: str
    sha256: str
    size: int
    lfs: bool
    git_oid: str  # git blob id: of the pointer file for LFS files, of the content otherwise

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "lfs": self.lfs, "oid": self.git_oid}

    @property
    def etag(self) -> str:
        """What downloads use as ETag: the sha256 for LFS files, the git oid otherwise (as the Hub does)."""
        return self.sha256 if self.lfs else self.git_oid


@dataclass(frozen=True)
class Commit:
    """A commit object: its id, parent and flat tree."""

    oid: str
    parent: str | None
    tree: dict[str, TreeEntry]
    title: str
    description: str
    date: str
    author: str


def _atomic_write(path: Path, data: bytes, tmp_dir: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=".w-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class HubStorage:
    """Blobs, commits and refs of every repo under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.blobs_dir = self.root / "blobs"
        self.tmp_dir = self.root / "tmp"
        self.repos_dir = self.root / "repos"
        for d in (self.blobs_dir, self.tmp_dir, self.repos_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._locks: dict[RepoKey, threading.RLock] = {}
        self._locks_guard = threading.Lock()

    # ---- blobs -------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        if not _SHA256_RE.match(sha256):
            raise StorageError(400, f"Invalid sha256 oid: {sha256!r}")
        return self.blobs_dir / sha256[:2] / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        path = self.blob_path(sha256)
        if not path.is_file():
            return False
        return size is None or path.stat().st_size == size

    def put_blob_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if not path.is_file():
            _atomic_write(path, data, self.tmp_dir)
        return sha

    def put_blob_stream(self, chunks: Iterator[bytes], expected_sha256: str, expected_size: int) -> None:
        """Store streamed content under its sha256, refusing it when hash or size differ."""
        path = self.blob_path(expected_sha256)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix=".up-")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            if size != expected_size or digest.hexdigest() != expected_sha256:
                raise StorageError(
                    400,
                    f"Uploaded content does not match its oid: expected sha256 {expected_sha256} and "
                    f"{expected_size} bytes, got {digest.hexdigest()} and {size} bytes",
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def open_blob(self, sha256: str) -> IO[bytes]:
        return self.blob_path(sha256).open("rb")

    # ---- repos -------------------------------------------------------------------------
    def repo_dir(self, key: RepoKey) -> Path:
        return self.repos_dir / f"{key.repo_type}s" / key.namespace / key.name

    @contextmanager
    def lock(self, key: RepoKey) -> Iterator[None]:
        """Serialise ref updates of one repo, across threads and processes."""
        with self._locks_guard:
            tlock = self._locks.setdefault(key, threading.RLock())
        with tlock:
            lock_dir = self.repo_dir(key).parent
            lock_dir.mkdir(parents=True, exist_ok=True)
            with open(lock_dir / f".{key.name}.lock", "a+b") as lf:
                fcntl.flock(lf.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lf.fileno(), fcntl.LOCK_UN)

    def repo_exists(self, key: RepoKey) -> bool:
        return (self.repo_dir(key) / "repo.json").is_file()

    def repo_settings(self, key: RepoKey) -> dict[str, Any]:
        path = self.repo_dir(key) / "repo.json"
        if not path.is_file():
            raise StorageError(404, f"Repository {key.repo_id} not found", "RepoNotFound")
        return json.loads(path.read_text())

    def create_repo(self, key: RepoKey, private: bool) -> bool:
        """Create the repo with an initial commit on main; False when it already exists."""
        with self.lock(key):
            if self.repo_exists(key):
                return False
            rdir = self.repo_dir(key)
            (rdir / "commits").mkdir(parents=True, exist_ok=True)
            sha = self.put_blob_bytes(GITATTRIBUTES)
            entry = TreeEntry(".gitattributes", sha, len(GITATTRIBUTES), False, git_blob_oid(GITATTRIBUTES))
            commit = self._write_commit(key, None, {entry.path: entry}, "initial commit", "", "system")
            self._write_refs(key, {"branches": {DEFAULT_BRANCH: commit.oid}, "tags": {}})
            # repo.json last: a repo "exists" only once its first commit and refs are in place.
            _atomic_write(
                rdir / "repo.json",
                json.dumps({"id": key.repo_id, "type": key.repo_type, "private": private, "createdAt": now_iso()}).encode(),
                self.tmp_dir,
            )
            return True

    def delete_repo(self, key: RepoKey) -> None:
        import shutil

        with self.lock(key):
            self.repo_settings(key)
            shutil.rmtree(self.repo_dir(key))

    # ---- refs --------------------------------------------------------------------------
    def refs(self, key: RepoKey) -> dict[str, dict[str, str]]:
        self.repo_settings(key)
        return json.loads((self.repo_dir(key) / "refs.json").read_text())

    def _write_refs(self, key: RepoKey, refs: dict[str, dict[str, str]]) -> None:
        _atomic_write(self.repo_dir(key) / "refs.json", json.dumps(refs, sort_keys=True).encode(), self.tmp_dir)

    def resolve(self, key: RepoKey, revision: str) -> str:
        """The commit id a branch, tag, full ref or commit id points at (404 RevisionNotFound otherwise)."""
        refs = self.refs(key)
        rev = revision
        if rev.startswith("refs/heads/"):
            rev = rev[len("refs/heads/") :]
            found = refs["branches"].get(rev)
        elif rev.startswith("refs/tags/"):
            found = refs["tags"].get(rev[len("refs/tags/") :])
        else:
            found = refs["branches"].get(rev) or refs["tags"].get(rev)
        if found is None and _OID_RE.match(revision) and (self.repo_dir(key) / "commits" / f"{revision}.json").is_file():
            found = revision
        if found is None:
            raise StorageError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return found

    def create_tag(self, key: RepoKey, tag: str, revision: str, message: str | None) -> str:
        """Point a new tag at a revision; 409 when the tag exists (check and set under the repo lock)."""
        validate_ref_name(tag)
        with self.lock(key):
            oid = self.resolve(key, revision)
            refs = self.refs(key)
            if tag in refs["tags"]:
                raise StorageError(409, f"Tag {tag} already exists", None)
            refs["tags"][tag] = oid
            self._write_refs(key, refs)
            return oid

    def delete_tag(self, key: RepoKey, tag: str) -> None:
        with self.lock(key):
            refs = self.refs(key)
            if tag not in refs["tags"]:
                raise StorageError(404, f"Tag {tag} not found", "RevisionNotFound")
            del refs["tags"][tag]
            self._write_refs(key, refs)

    def create_branch(self, key: RepoKey, branch: str, starting_point: str | None) -> None:
        validate_ref_name(branch)
        with self.lock(key):
            oid = self.resolve(key, starting_point or DEFAULT_BRANCH)
            refs = self.refs(key)
            if branch in refs["branches"]:
                raise StorageError(409, f"Branch {branch} already exists", None)
            refs["branches"][branch] = oid
            self._write_refs(key, refs)

    def delete_branch(self, key: RepoKey, branch: str) -> None:
        with self.lock(key):
            refs = self.refs(key)
            if branch not in refs["branches"]:
                raise StorageError(404, f"Branch {branch} not found", "RevisionNotFound")
            if branch == DEFAULT_BRANCH:
                raise StorageError(403, "The default branch cannot be deleted")
            del refs["branches"][branch]
            self._write_refs(key, refs)

    # ---- commits -----------------------------------------------------------------------
    def _write_commit(
        self, key: RepoKey, parent: str | None, tree: dict[str, TreeEntry], title: str, description: str, author: str
    ) -> Commit:
        body = {
            "parent": parent,
            "tree": {p: tree[p].to_json() for p in sorted(tree)},
            "title": title,
            "description": description,
            "date": now_iso(),
            "author": author,
        }
        data = json.dumps(body, sort_keys=True).encode()
        oid = hashlib.sha1(b"commit %d\0" % len(data) + data).hexdigest()
        _atomic_write(self.repo_dir(key) / "commits" / f"{oid}.json", data, self.tmp_dir)
        return Commit(oid, parent, dict(tree), title, description, body["date"], author)

    def commit(self, key: RepoKey, oid: str) -> Commit:
        path = self.repo_dir(key) / "commits" / f"{oid}.json"
        if not _OID_RE.match(oid) or not path.is_file():
            raise StorageError(404, f"Invalid rev id: {oid}", "RevisionNotFound")
        body = json.loads(path.read_text())
        tree = {
            p: TreeEntry(p, e["sha256"], e["size"], e["lfs"], e["oid"]) for p, e in body["tree"].items()
        }
        return Commit(oid, body["parent"], tree, body["title"], body["description"], body["date"], body["author"])

    def history(self, key: RepoKey, oid: str) -> list[Commit]:
        """The commit and its ancestors, newest first."""
        out: list[Commit] = []
        cur: str | None = oid
        while cur is not None:
            c = self.commit(key, cur)
            out.append(c)
            cur = c.parent
        return out

    def apply_commit(
        self,
        key: RepoKey,
        branch: str,
        parent_commit: str | None,
        title: str,
        description: str,
        regular: dict[str, bytes],
        lfs: dict[str, tuple[str, int]],
        deleted_files: list[str],
        deleted_folders: list[str],
        author: str,
    ) -> Commit:
        """Create one commit on a branch from the ndjson operations, atomically.

        ``parent_commit`` that is not the branch head gives 412: someone else committed first.
        """
        for path in [*regular, *lfs, *deleted_files]:
            validate_repo_path(path)
        for path in deleted_folders:
            validate_repo_path(path.rstrip("/"))
        for path, (sha, size) in lfs.items():
            if not self.has_blob(sha, size):
                raise StorageError(
                    422, f"LFS file {path!r} (sha256 {sha}, {size} bytes) was not uploaded before the commit"
                )
        # Store regular contents before taking the lock: blobs are immutable and shareable.
        new_entries: dict[str, TreeEntry] = {}
        for path, data in regular.items():
            sha = self.put_blob_bytes(data)
            new_entries[path] = TreeEntry(path, sha, len(data), False, git_blob_oid(data))
        for path, (sha, size) in lfs.items():
            new_entries[path] = TreeEntry(path, sha, size, True, git_blob_oid(lfs_pointer(sha, size)))
        with self.lock(key):
            refs = self.refs(key)
            head = refs["branches"].get(branch)
            if head is None:
                raise StorageError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            if parent_commit is not None and parent_commit != head:
                raise StorageError(
                    412,
                    f"A commit has happened since. Please refresh and try again. "
                    f"(parent commit {parent_commit} is not the head {head} of {branch})",
                )
            tree = dict(self.commit(key, head).tree)
            for path in deleted_files:
                if path not in tree:
                    raise StorageError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del tree[path]
            for folder in deleted_folders:
                prefix = folder.rstrip("/") + "/"
                doomed = [p for p in tree if p.startswith(prefix)]
                if not doomed:
                    raise StorageError(404, f"A folder with this name doesn't exist: {folder}", "EntryNotFound")
                for p in doomed:
                    del tree[p]
            tree.update(new_entries)
            commit = self._write_commit(key, head, tree, title, description, author)
            refs["branches"][branch] = commit.oid
            self._write_refs(key, refs)
            return commit

    def lfs_mode(self, path: str, size: int, sample: bytes, gitattributes: bytes) -> bool:
        """The server's LFS decision at preupload: big, binary-looking or matched by .gitattributes."""
        if size >= LFS_THRESHOLD or b"\0" in sample:
            return True
        import fnmatch

        for line in gitattributes.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and "filter=lfs" in parts[1:]:
                pattern = parts[0]
                target = path if "/" in pattern else path.rsplit("/", 1)[-1]
                if fnmatch.fnmatch(target, pattern):
                    return True
        return False

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()


def b64decode_strict(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except Exception as e:  # binascii.Error / ValueError
        raise StorageError(400, f"Invalid base64 content: {e}") from e
