#!/usr/bin/env python3
"""The release workflow's plan: which tag to release and which variants, as GitHub step outputs.

Runs in the first job of .github/workflows/release.yml, before anything is installed, so it uses
the standard library only (Python >= 3.11 for tomllib). It reads:

- ``meshrelease.toml`` (or ``$MESHRELEASE_CONFIG``): the releasable variants are those with a
  ``checkpoint``; a variant without one cannot be built;
- ``GITHUB_EVENT_NAME``, ``GITHUB_REF_NAME``, ``GITHUB_REF_TYPE``: a tag push releases that tag;
- ``INPUT_TAG``, ``INPUT_VARIANTS``: a manual run (workflow_dispatch) names the tag, and optionally
  the variants (comma- or space-separated; empty = every releasable variant).

and appends ``tag=``, ``ref=`` (what to check out) and ``variants=`` (a JSON list for the job matrix)
to ``$GITHUB_OUTPUT`` (printed to stdout when that is unset). Exit status 1 with a one-line
``::error::`` annotation on bad input.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from pathlib import Path

# The same rule as meshrelease.config.validate_tag (a test keeps the two in step).
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class PlanError(Exception):
    pass


def releasable_variants(config: Path) -> list[str]:
    """Variants of the config that name a checkpoint, in file order."""
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PlanError(f"cannot read {config}: {exc}") from None
    return [name for name, v in data.get("variants", {}).items() if isinstance(v, dict) and v.get("checkpoint")]


def release_tag(env: dict[str, str]) -> str:
    if env.get("GITHUB_EVENT_NAME") == "workflow_dispatch":
        tag = env.get("INPUT_TAG", "").strip()
        if not tag:
            raise PlanError("the 'tag' input is required for a manual release")
    elif env.get("GITHUB_REF_TYPE") == "tag":
        tag = env.get("GITHUB_REF_NAME", "")
    else:
        raise PlanError(f"a release runs on a pushed tag or by hand, not on {env.get('GITHUB_REF_TYPE') or 'this'} "
                        f"ref {env.get('GITHUB_REF_NAME', '?')!r}")
    if not TAG.match(tag) or ".." in tag or tag.endswith((".lock", ".")):
        raise PlanError(f"invalid release tag {tag!r}: use letters, digits, '.', '_' and '-'")
    return tag


def chosen_variants(requested: str, available: list[str]) -> list[str]:
    names = [n for n in re.split(r"[\s,]+", requested.strip()) if n]
    if not names:
        if not available:
            raise PlanError("meshrelease.toml has no variant with a checkpoint; nothing to release")
        return available
    unknown = [n for n in names if n not in available]
    if unknown:
        raise PlanError(f"cannot release {', '.join(unknown)}: the variants with a checkpoint in meshrelease.toml "
                        f"are {', '.join(available) or 'none'}")
    return list(dict.fromkeys(names))


def plan(env: dict[str, str], config: Path) -> dict[str, str]:
    tag = release_tag(env)
    variants = chosen_variants(env.get("INPUT_VARIANTS", ""), releasable_variants(config))
    return {"tag": tag, "ref": f"refs/tags/{tag}", "variants": json.dumps(variants)}


def main() -> int:
    env = dict(os.environ)
    config = Path(env.get("MESHRELEASE_CONFIG") or "meshrelease.toml")
    try:
        outputs = plan(env, config)
    except PlanError as exc:
        print(f"::error::{exc}")
        return 1
    lines = "".join(f"{k}={v}\n" for k, v in outputs.items())
    sys.stdout.write(lines)
    if env.get("GITHUB_OUTPUT"):
        with open(env["GITHUB_OUTPUT"], "a", encoding="utf-8") as f:
            f.write(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
