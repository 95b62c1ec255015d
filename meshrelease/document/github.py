"""GitHub Actions: what a release run reads from the runner and what it hands back to it.

Inside a workflow run meshrelease

- refuses a ``--tag`` that differs from the pushed tag (``GITHUB_REF_TYPE=tag``, ``GITHUB_REF_NAME``),
  so a tag push can only ever publish itself;
- refuses to publish to the embedded hub, which disappears with the runner;
- appends a markdown release summary (files, parity, sizes, where it was published) to
  ``$GITHUB_STEP_SUMMARY``, on success and on a failed check alike;
- writes step outputs (``release_dir``, ``repo``, ``commit``, ...) to ``$GITHUB_OUTPUT`` so later
  steps, such as the artifact upload, need not guess paths.

The provenance side (run id, repository, commit) lives in :mod:`meshrelease.document.provenance`.
Every function takes the environment as an argument (default ``os.environ``) so it can be tested alone.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TagMismatchError
from .manifest import _fmt, parity_markdown, sizes_markdown

Env = Mapping[str, str]


def _env(env: Env | None) -> Env:
    return os.environ if env is None else env


def in_actions(env: Env | None = None) -> bool:
    """True inside a GitHub Actions job (the runner sets ``GITHUB_ACTIONS=true``)."""
    return _env(env).get("GITHUB_ACTIONS") == "true"


def pushed_tag(env: Env | None = None) -> str | None:
    """The tag whose push started this run, or None (branch push, pull request, manual run on a branch)."""
    env = _env(env)
    if env.get("GITHUB_REF_TYPE") == "tag" and env.get("GITHUB_REF_NAME"):
        return env["GITHUB_REF_NAME"]
    ref = env.get("GITHUB_REF", "")
    if not env.get("GITHUB_REF_TYPE") and ref.startswith("refs/tags/"):
        return ref[len("refs/tags/"):]
    return None


def check_tag(tag: str, env: Env | None = None) -> str:
    """Refuse to release ``tag`` from a run that a different tag started; returns ``tag``."""
    pushed = pushed_tag(env)
    if pushed is not None and pushed != tag:
        raise TagMismatchError(
            f"--tag {tag} does not match the tag that started this GitHub Actions run ({pushed}, "
            f"GITHUB_REF_NAME); release {pushed} or start the workflow by hand with tag {tag}"
        )
    return tag


def check_publish_target(embedded: bool, env: Env | None = None) -> None:
    """Refuse the embedded hub inside Actions: its data would vanish with the runner."""
    if embedded and in_actions(env):
        raise ConfigError(
            "refusing to publish to the embedded local hub inside GitHub Actions (it is deleted with the runner): "
            "set repo = \"OWNER/NAME\" for the variant in meshrelease.toml, pass --repo, or set HF_ENDPOINT"
        )


def set_outputs(values: Mapping[str, Any], env: Env | None = None) -> bool:
    """Append ``name=value`` lines to ``$GITHUB_OUTPUT``; False when not in a workflow step."""
    path = _env(env).get("GITHUB_OUTPUT")
    if not path:
        return False
    lines = []
    for name, value in values.items():
        if value is None:
            continue
        text = str(value)
        if "\n" in text:  # the multi-line form, with a delimiter that cannot occur in the value
            delimiter = f"ghadelimiter_{secrets.token_hex(8)}"
            lines.append(f"{name}<<{delimiter}\n{text}\n{delimiter}")
        else:
            lines.append(f"{name}={text}")
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return True


def summary_markdown(manifest: Mapping[str, Any], published: Mapping[str, Any] | None = None,
                     error: str | None = None, release_dir: str | os.PathLike | None = None) -> str:
    """The release summary: outcome, where it went, files, parity and sizes, from a manifest dict.

    ``published`` is a publish result (``repo``, ``tag``, ``commit``, ``endpoint``, ``url``, ``status``);
    ``error`` the one-line reason a build or publish failed (then nothing was pushed).
    """
    name = manifest.get("variant") or manifest.get("name") or "?"
    tag = manifest.get("tag") or (published or {}).get("tag") or "?"
    if error:
        headline = f"## ❌ {name} {tag}: not released"
    elif published:
        headline = f"## ✅ {name} {tag}: {published.get('status', 'released')}"
    else:
        headline = f"## ✅ {name} {tag}: built and verified (not published)"
    lines = [headline, ""]
    if error:
        lines += [f"**Error:** `{error}`", "", "Nothing was pushed to the Hub.", ""]
    if published:
        repo = published.get("repo")
        where = published.get("endpoint") or f"the embedded hub at `{published.get('hub_root')}`"
        lines.append(f"Published to **{repo}** on {where} as tag `{published.get('tag', tag)}`, "
                     f"commit `{published.get('commit')}`.")
        if published.get("url"):
            lines.append(f"Browse: {published['url']}")
        fetch = published.get("download") or f"hf_hub_download({repo!r}, 'manifest.json', revision={tag!r})"
        lines += ["", "Fetch it with:", "", "```", str(fetch), "```", ""]
    if release_dir:
        lines += [f"Release folder: `{release_dir}`", ""]
    files = manifest.get("files") or []
    if files:
        lines += ["### Files", "", "| file | format | precision | bytes | sha256 |", "|---|---|---|--:|---|"]
        for f in files:
            lines.append(f"| `{f.get('path')}` | {f.get('format', '')} | {f.get('precision', '')} | "
                         f"{_fmt(f.get('size'), ',')} | `{str(f.get('sha256', ''))[:16]}…` |")
        lines.append("")
    lines += parity_markdown(manifest.get("parity") or [])
    lines += sizes_markdown(manifest.get("sizes") or [])
    provenance = manifest.get("provenance") or {}
    run = provenance.get("github_actions") or {}
    if run.get("run_url"):
        commit = provenance.get("git_commit") or run.get("sha") or "?"
        lines += [f"Built by run {run['run_url']} from commit `{commit}`.", ""]
    return "\n".join(lines)


def write_step_summary(manifest: Mapping[str, Any], published: Mapping[str, Any] | None = None,
                       error: str | None = None, release_dir: str | os.PathLike | None = None,
                       env: Env | None = None) -> Path | None:
    """Append :func:`summary_markdown` to ``$GITHUB_STEP_SUMMARY``; None when the variable is unset."""
    path = _env(env).get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    with open(path, "a", encoding="utf-8") as f:
        f.write(summary_markdown(manifest, published, error, release_dir) + "\n")
    return Path(path)


def report_release(release: Any, published: Mapping[str, Any] | None = None, error: str | None = None,
                   env: Env | None = None) -> bool:
    """Step summary and step outputs for a release record (a build, or a build then publish).

    Does nothing outside a workflow step; returns whether a summary was written.
    """
    from .manifest import manifest_dict

    manifest = manifest_dict(release)
    outputs: dict[str, Any] = {"variant": release.variant.name, "tag": release.tag, "release_dir": release.out_dir}
    if published:
        outputs.update({k: published.get(k) for k in ("repo", "commit", "url", "status")})
    set_outputs(outputs, env)
    return write_step_summary(manifest, published, error, release.out_dir, env) is not None


def report_folder(folder: str | os.PathLike, published: Mapping[str, Any] | None = None, error: str | None = None,
                  env: Env | None = None) -> bool:
    """Step summary and outputs for an already-built release folder (``publish --release-dir``)."""
    import json

    manifest = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    outputs: dict[str, Any] = {"variant": manifest.get("variant"), "tag": manifest.get("tag"), "release_dir": folder}
    if published:
        outputs.update({k: published.get(k) for k in ("repo", "commit", "url", "status")})
    set_outputs(outputs, env)
    return write_step_summary(manifest, published, error, folder, env) is not None


def report_failure(variant: str | None, tag: str | None, error: str, env: Env | None = None) -> bool:
    """Step summary for a run that failed before any release record existed (bad tag, bad config...)."""
    return write_step_summary({"variant": variant, "tag": tag}, error=error, env=env) is not None
