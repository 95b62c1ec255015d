"""Push one release folder to a Hub repo as exactly one commit plus one tag.

The order is what makes a release safe to re-run and to race:

1. create the repo if needed;
2. read the refs: if the tag exists, compare its files with ours (sha256 of LFS files, git blob
   ids of the others; manifest.json apart from its build time and timings) -> identical:
   "already released"; different: refuse, or with ``force``
   delete the tag (loudly) and go on;
3. one ``create_commit`` on ``main`` with every file (and deletions of files that are not part of
   this release), ``parent_commit`` = the head read in step 2;
4. ``create_tag`` on that commit.

A 412 (someone committed since step 2) or a 409 (someone created the tag since step 2) sends
us back to step 2, a bounded number of times. So two concurrent publishes of one tag end with
one release: the loser sees the winner's tag and reports "already released" when the contents
are identical, or refuses when they differ. The tag is the last write, so a failure anywhere
leaves no tag; a commit without a tag is harmless and a re-run tags it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import httpx2
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError

from ..errors import PublishError
from .endpoint import HubSession
from .plan import MANIFEST_NAME, ReleasePlan
from .retry import RetryPolicy, status_of, with_retries

DEFAULT_BRANCH = "main"
MAX_CONFLICT_ROUNDS = 5
KEEP_PATHS = frozenset({".gitattributes"})  # repo housekeeping, kept across releases
# Manifest fields (at any depth) that change on every build of the same inputs: wall-clock
# time and durations. Two builds equal apart from these are the same release.
VOLATILE_MANIFEST_KEYS = frozenset({"created", "timings", "seconds"})


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in VOLATILE_MANIFEST_KEYS}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value

Log = Callable[[str], None]


@dataclass
class PublishResult:
    """What happened: ``status`` is "released", "already released" or "re-released" (``--force``)."""

    status: str
    repo_id: str
    tag: str
    commit: str
    endpoint: str
    files: list[dict[str, Any]] = field(default_factory=list)
    replaced_commit: str | None = None

    @property
    def url(self) -> str:
        return f"{self.endpoint}/{self.repo_id}/tree/{self.tag}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "repo": self.repo_id,
            "tag": self.tag,
            "commit": self.commit,
            "endpoint": self.endpoint,
            "url": self.url,
            "files": self.files,
            "replaced_commit": self.replaced_commit,
        }


class _Conflict(Exception):
    """Someone else moved main or created the tag since we read the refs: re-read and retry."""


def hub_error(what: str, exc: BaseException, endpoint: str) -> PublishError:
    """One line for a failed Hub call: the status and the server's message (never headers or token)."""
    status = status_of(exc)
    if status is not None:
        message = getattr(exc, "server_message", None) or ""
        message = " ".join(str(message).split()) or getattr(getattr(exc, "response", None), "reason_phrase", "")
        hint = ""
        if status in (401, 403):
            hint = " (check HF_TOKEN / 'hf auth login' and the token's write access)"
        return PublishError(f"{what}: HTTP {status} from {endpoint}: {message}{hint}")
    if isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError)):
        return PublishError(f"{what}: cannot reach {endpoint} ({type(exc).__name__}: {exc})")
    return PublishError(f"{what}: {type(exc).__name__}: {exc}")


def release_differences(plan: ReleasePlan, remote: dict[str, dict[str, Any]]) -> list[str]:
    """How the files at a remote commit differ from the plan's; empty when byte-identical.

    ``remote`` maps path -> {"sha256" (LFS files only), "git_oid"}; ``.gitattributes`` is ignored
    unless the release itself carries one.
    """
    ours = {f.path: f for f in plan.files}
    diffs: list[str] = []
    for path, f in ours.items():
        r = remote.get(path)
        if r is None:
            diffs.append(f"{path} missing")
        elif (r.get("sha256") or None) not in (None, f.sha256) or (r.get("sha256") is None and r.get("git_oid") != f.git_oid):
            diffs.append(f"{path} differs")
    for path in sorted(set(remote) - set(ours) - KEEP_PATHS):
        diffs.append(f"{path} extra")
    return diffs


class Publisher:
    """Runs a :class:`ReleasePlan` against an open :class:`HubSession`."""

    def __init__(self, session: HubSession, *, retry: RetryPolicy | None = None, log: Log | None = None) -> None:
        self.session = session
        self.api = session.api
        self.retry = retry or RetryPolicy()
        self.log = log or (lambda message: None)

    # ---- Hub calls, each retried on transient failures --------------------------------
    def _call(self, what: str, fn: Callable[[], Any], passthrough: tuple[int, ...] = (409, 412)) -> Any:
        def on_retry(attempt: int, exc: BaseException) -> None:
            self.log(f"{what}: transient failure ({hub_error(what, exc, self.session.endpoint)}); retry {attempt}")

        try:
            return with_retries(fn, self.retry, on_retry=on_retry)
        except RuntimeError as wrapped:
            # huggingface_hub wraps LFS upload failures: "Error while uploading 'x' to the Hub."
            cause = wrapped.__cause__
            if isinstance(cause, (HfHubHTTPError, httpx2.TransportError, ConnectionError, TimeoutError)):
                raise hub_error(f"{what} ({wrapped})", cause, self.session.endpoint) from None
            raise
        except (HfHubHTTPError, httpx2.TransportError, ConnectionError, TimeoutError) as exc:
            if status_of(exc) in passthrough:
                raise
            raise hub_error(what, exc, self.session.endpoint) from None

    def remote_files(self, repo_id: str, commit: str) -> dict[str, dict[str, Any]]:
        """path -> {"sha256", "git_oid"} of every file at ``commit``."""
        entries = self._call(
            f"list files of {repo_id}@{commit[:12]}",
            lambda: list(self.api.list_repo_tree(repo_id, revision=commit, recursive=True)),
        )
        out: dict[str, dict[str, Any]] = {}
        for e in entries:
            if hasattr(e, "blob_id"):  # RepoFile (folders have tree_id)
                out[e.path] = {"sha256": e.lfs.sha256 if e.lfs else None, "git_oid": e.blob_id, "size": e.size}
        return out

    def _differences(self, plan: ReleasePlan, commit: str) -> list[str]:
        diffs = release_differences(plan, self.remote_files(plan.repo_id, commit))
        if diffs == [f"{MANIFEST_NAME} differs"] and self._same_manifest(plan, commit):
            return []
        return diffs

    def _same_manifest(self, plan: ReleasePlan, commit: str) -> bool:
        """True when the remote manifest equals ours apart from the volatile fields."""
        with tempfile.TemporaryDirectory(prefix="meshrelease-manifest-") as tmp:
            path = self._call(
                f"download {MANIFEST_NAME} of {plan.repo_id}@{commit[:12]}",
                lambda: hf_hub_download(
                    plan.repo_id, MANIFEST_NAME, revision=commit, endpoint=self.session.endpoint,
                    token=self.session.token or False, cache_dir=tmp,
                ),
            )
            try:
                remote = json.loads(Path(path).read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                return False
        return isinstance(remote, dict) and _without_volatile(remote) == _without_volatile(plan.manifest)

    # ---- the publish -------------------------------------------------------------------
    def push(self, plan: ReleasePlan) -> PublishResult:
        """Commit every file of the plan in one commit and tag it; see the module docstring."""
        repo = plan.repo_id
        self._call(f"create repo {repo}", lambda: self.api.create_repo(repo, private=plan.private, exist_ok=True))
        force = plan.force
        replaced: str | None = None
        ours: str | None = None  # the commit we tagged, if our tag request's answer was lost
        for _ in range(MAX_CONFLICT_ROUNDS):
            refs = self._call(f"read refs of {repo}", lambda: self.api.list_repo_refs(repo))
            tags = {t.name: t.target_commit for t in refs.tags}
            existing = tags.get(plan.tag)
            if existing is not None:
                diffs = self._differences(plan, existing)
                if not diffs:
                    status = "already released"
                    if existing == ours:
                        status = "re-released" if replaced else "released"
                    return self._result(plan, status, existing, replaced)
                if not force:
                    shown = ", ".join(diffs[:3]) + (f" and {len(diffs) - 3} more" if len(diffs) > 3 else "")
                    raise PublishError(
                        f"tag {plan.tag} already exists on {repo} (commit {existing[:12]}) with different content "
                        f"({shown}); tags are never moved: publish under a new tag, or pass --force to delete and recreate it"
                    )
                self.log(
                    f"--force: DELETING existing tag {plan.tag} of {repo} (commit {existing[:12]}: {', '.join(diffs[:3])}) "
                    "and publishing this build under it"
                )
                self._delete_tag(repo, plan.tag)
                replaced, force = existing, False  # delete at most once: never fight another --force
                continue
            heads = {b.name: b.target_commit for b in refs.branches}
            head = heads.get(DEFAULT_BRANCH)
            if head is None:
                raise PublishError(f"{repo} has no {DEFAULT_BRANCH} branch; cannot commit a release to it")
            try:
                commit = self._commit(plan, head)
                ours = commit if commit != head else None  # head itself: nothing changed, not our commit
                self._tag(plan, commit)
            except _Conflict as why:
                self.log(f"{why}; re-reading the refs")
                continue
            return self._result(plan, "re-released" if replaced else "released", commit, replaced)
        raise PublishError(
            f"gave up publishing {plan.tag} to {repo} after {MAX_CONFLICT_ROUNDS} conflicting concurrent updates; no tag was created"
        )

    def _operations(self, plan: ReleasePlan, head: str) -> list[Any]:
        current = self.remote_files(plan.repo_id, head)
        ops: list[Any] = [CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(f.local_path)) for f in plan.files]
        ours = {f.path for f in plan.files}
        # A tag shows exactly one release: files of earlier releases leave this commit.
        ops += [CommitOperationDelete(path_in_repo=p) for p in sorted(set(current) - ours - KEEP_PATHS)]
        return ops

    def _commit(self, plan: ReleasePlan, head: str) -> str:
        what = f"commit {plan.tag} to {plan.repo_id}"

        def attempt() -> str:
            # Fresh operations per attempt: huggingface_hub marks them as used after a commit.
            info = self.api.create_commit(
                plan.repo_id,
                operations=self._operations(plan, head),
                commit_message=plan.commit_message,
                commit_description=plan.commit_description,
                revision=DEFAULT_BRANCH,
                parent_commit=head,
            )
            return str(info.oid)

        try:
            commit = self._call(what, attempt)
        except HfHubHTTPError as exc:
            if status_of(exc) in (409, 412):
                raise _Conflict(f"{plan.repo_id}:{DEFAULT_BRANCH} moved while committing {plan.tag}") from None
            raise
        if commit == head:
            self.log(f"{plan.repo_id}@{DEFAULT_BRANCH} already holds exactly these files ({commit[:12]}); tagging it")
        else:
            self.log(f"committed {len(plan.files)} files to {plan.repo_id}@{DEFAULT_BRANCH} as {commit[:12]}")
        return commit

    def _tag(self, plan: ReleasePlan, commit: str) -> None:
        what = f"create tag {plan.tag} on {plan.repo_id}"
        try:
            self._call(
                what,
                lambda: self.api.create_tag(
                    plan.repo_id, tag=plan.tag, revision=commit, tag_message=plan.commit_message
                ),
            )
        except HfHubHTTPError as exc:
            if status_of(exc) == 409:
                # Created meanwhile: by a concurrent publish, or by our own attempt whose answer was lost.
                raise _Conflict(f"tag {plan.tag} appeared on {plan.repo_id} while tagging") from None
            raise
        except PublishError as exc:
            raise PublishError(f"{exc}; no tag was created (commit {commit[:12]} is on {DEFAULT_BRANCH}, untagged)") from None

    def _delete_tag(self, repo: str, tag: str) -> None:
        try:
            self._call(f"delete tag {tag} of {repo}", lambda: self.api.delete_tag(repo, tag=tag), passthrough=(404,))
        except RevisionNotFoundError:
            pass  # already gone: someone else deleted it

    def _result(self, plan: ReleasePlan, status: str, commit: str, replaced: str | None) -> PublishResult:
        return PublishResult(
            status=status,
            repo_id=plan.repo_id,
            tag=plan.tag,
            commit=commit,
            endpoint=self.session.endpoint,
            files=[f.to_dict() for f in plan.files],
            replaced_commit=replaced,
        )


def push_release(
    plan: ReleasePlan, session: HubSession, *, retry: RetryPolicy | None = None, log: Log | None = None
) -> PublishResult:
    """Publish ``plan`` through ``session``: one commit, one tag, never a moved tag."""
    return Publisher(session, retry=retry, log=log).push(plan)
