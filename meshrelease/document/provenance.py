"""Where a release came from: source, tool and library versions, git commit, CI run."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

LIBRARIES = ("torch", "numpy", "onnx", "onnxruntime", "onnxconverter-common", "nibabel", "huggingface_hub")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("meshrelease",) + LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(cwd: str | None = None) -> str | None:
    """Commit of the checkout meshrelease runs in (the training/release repo), if any."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def github_actions() -> dict[str, str] | None:
    """The GitHub Actions run that built this release, when running inside one."""
    env = os.environ
    if env.get("GITHUB_ACTIONS") != "true" and "GITHUB_RUN_ID" not in env:
        return None
    keys = {"repository": "GITHUB_REPOSITORY", "sha": "GITHUB_SHA", "ref": "GITHUB_REF", "ref_name": "GITHUB_REF_NAME",
            "ref_type": "GITHUB_REF_TYPE", "event_name": "GITHUB_EVENT_NAME", "run_id": "GITHUB_RUN_ID",
            "workflow": "GITHUB_WORKFLOW", "server_url": "GITHUB_SERVER_URL"}
    # Not GITHUB_RUN_ATTEMPT: "Re-run jobs" keeps the run id and must rebuild the same bytes, so that a
    # re-run publish finds its tag "already released" instead of refusing different content.
    info = {k: env[v] for k, v in keys.items() if env.get(v)}
    if {"server_url", "repository", "run_id"} <= info.keys():
        info["run_url"] = f"{info['server_url']}/{info['repository']}/actions/runs/{info['run_id']}"
    return info


def collect(source: dict) -> dict:
    gh = github_actions()
    # The checked-out commit first: a manual run (workflow_dispatch) checks out the release tag, while
    # GITHUB_SHA stays the head of the branch it was started from.
    prov = {"source": source, "versions": library_versions(), "git_commit": git_commit() or (gh or {}).get("sha")}
    if gh:
        prov["github_actions"] = gh
    return prov
