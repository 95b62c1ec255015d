"""Hub commands: ``publish`` (build + push), ``pull``, ``verify``, ``releases`` and ``hub serve``.

Thin: each verb parses options, calls its stage module (:mod:`meshrelease.publish`) and prints.
Progress goes to stderr; ``--json`` prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..document import github
from ..errors import ConfigError


def _hub_arguments(p: argparse.ArgumentParser, *, repo_positional: bool) -> None:
    if repo_positional:
        p.add_argument("repo", metavar="REPO", help="Hub repo id OWNER/NAME (local/NAME: the embedded hub)")
    p.add_argument("--endpoint", metavar="URL",
                   help="Hub endpoint (default: $HF_ENDPOINT; else the embedded hub for local/ repos, else https://huggingface.co)")
    p.add_argument("--hub-root", metavar="DIR",
                   help="data folder of the embedded hub (default: $MESHRELEASE_HUB_ROOT or ~/.cache/meshrelease/hub)")


def _quiet_client(json_mode: bool) -> None:
    """huggingface_hub's own tqdm bars would interleave with ours; stage progress is shown instead."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()


def _print_json(obj: dict[str, Any]) -> None:
    import json

    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def _console() -> tuple[Any, Any]:
    from . import output  # the shared consoles: wide enough for tables when piped

    return output.err, output.out


# ---- publish -------------------------------------------------------------------------------
def run_publish(args: argparse.Namespace) -> int:
    from ..config import load_config, validate_tag
    from ..pipeline import build_release
    from ..publish.endpoint import LOCAL_NAMESPACE, open_hub, resolve_target
    from ..publish.previous import previous_release_manifest
    from ..publish.hub import push_release
    from ..publish.plan import plan_release
    from . import output
    from .build import options_from_args

    err, out = _console()
    _quiet_client(args.json)
    cfg = load_config(args.config)
    variant = cfg.variant(args.variant)
    validate_tag(args.tag)
    github.check_tag(args.tag)
    repo = args.repo or variant.repo or f"{LOCAL_NAMESPACE}/{variant.name}"
    target = resolve_target(repo, args.endpoint, args.hub_root)  # bad repo/endpoint fail before the build
    github.check_publish_target(target.embedded)
    where = target.describe()
    reporter = output.RichReporter(quiet=args.json)
    opts = options_from_args(args)
    opts.repo = repo  # the model card names the repo it is published to
    with open_hub(target) as session:  # the card's changelog compares against the repo's previous release
        opts.previous_manifest = previous_release_manifest(session, args.tag)

    if args.dry_run:
        with tempfile.TemporaryDirectory(prefix="meshrelease-dry-run-") as tmp:
            opts.out = tmp
            folder = Path(args.release_dir) if args.release_dir else build_release(opts, reporter).out_dir
            plan = plan_release(folder, repo, args.tag, target.endpoint or f"embedded hub at {target.hub_root}",
                                private=args.private, force=args.force)
            summary = {"dry_run": True, **plan.to_dict()}
        if args.json:
            _print_json(summary)
            return 0
        out.print(f"[bold]dry run[/]: would publish {len(plan.files)} files ({plan.total_size:,} bytes) to {where} "
                  f"as one commit \"{plan.commit_message}\" and tag {args.tag}{' (private)' if args.private else ''}")
        for f in plan.files:
            out.print(f"  {f.path:<32} {f.size:>12,} B  sha256 {f.sha256}")
        for note in plan.notes:
            out.print(f"  note: {note}")
        if args.force:
            out.print(f"  --force: an existing tag {args.tag} with other content would be deleted and recreated")
        out.print("nothing was built into the release folder or sent to the Hub")
        return 0

    release = None
    if args.release_dir:
        release_dir = Path(args.release_dir)  # built earlier (e.g. by a CI build job): checked, not rebuilt
    else:
        release = build_release(opts, reporter)
        release_dir = release.out_dir
    plan = plan_release(release_dir, repo, args.tag, target.endpoint or "embedded",
                        private=args.private, force=args.force)

    def log(message: str) -> None:
        if message.startswith("--force"):
            err.print(f"[bold red]WARNING[/] {message}")  # loud even with --json
        else:
            reporter.note(message)

    start_stage = reporter.stage("publish")
    with start_stage, open_hub(target, require_token=True) as session:
        result = push_release(plan, session, log=log)
        hint = session.download_hint(args.tag)
    summary = {**result.to_dict(), "release_dir": str(release_dir), "download": hint}
    if target.embedded:
        summary.update(endpoint=None, url=None, hub_root=str(target.hub_root))
    if release is not None:
        github.report_release(release, published=summary)
    else:
        github.report_folder(release_dir, published=summary)
    if args.json:
        _print_json(summary)
        return 0
    verb = {"released": "released", "already released": "already released (identical content; nothing pushed)",
            "re-released": "re-released with --force (the tag was deleted and recreated)"}[result.status]
    out.print(f"[bold green]{variant.name} {args.tag} {verb}[/]: {where}, commit {result.commit}")
    if not target.embedded:
        out.print(f"  {result.url}")
    out.print("download it with:")
    for line in hint.splitlines():
        out.print(f"  {line}")
    return 0


# ---- pull / verify / releases -------------------------------------------------------------
def _open(args: argparse.Namespace):
    from ..publish.endpoint import open_hub, resolve_target

    return open_hub(resolve_target(args.repo, args.endpoint, args.hub_root))


def run_pull(args: argparse.Namespace) -> int:
    from ..publish.download import pull_release

    _quiet_client(args.json)
    err, out = _console()
    with _open(args) as session:
        fetched = pull_release(session, args.tag, Path(args.dest))
    if args.json:
        _print_json({"status": "ok", **fetched.to_dict()})
        return 0
    out.print(f"[bold green]pulled {args.repo}@{args.tag}[/] (commit {fetched.commit}) into {fetched.folder}: "
              f"{len(fetched.files)} files match the manifest's sha256")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from ..publish.download import fetch_release
    from ..publish.remote_verify import rerun_parity

    _quiet_client(args.json)
    err, out = _console()
    with _open(args) as session, fetch_release(session, args.tag) as fetched:
        if not args.json:
            err.print(f"  downloaded {len(fetched.files)} files of {args.repo}@{args.tag} (commit {fetched.commit[:12]}); "
                      "every sha256 matches the manifest")
        results = rerun_parity(fetched.folder, fetched.manifest, checkpoint=args.checkpoint, samples=args.samples,
                               config_path=args.config)
        commit, files = fetched.commit, fetched.files
    if args.json:
        _print_json({"status": "ok", "repo": args.repo, "tag": args.tag, "commit": commit, "files": files,
                     "parity": [r.to_dict() for r in results]})
        return 0
    for r in results:
        out.print(f"  {r.artifact:<24} {r.input:<32} max |Δ| {r.max_abs:.2e}  agreement {r.agreement:.4%}  pass")
    out.print(f"[bold green]verified {args.repo}@{args.tag}[/] (commit {commit}): {len(files)} files match the manifest, "
              f"{len(results)} parity checks pass")
    return 0


def run_releases(args: argparse.Namespace) -> int:
    from ..publish.download import list_releases

    _quiet_client(args.json)
    err, out = _console()
    with _open(args) as session:
        releases = list_releases(session)
    if args.json:
        _print_json({"repo": args.repo, "releases": releases})
        return 0
    if not releases:
        out.print(f"{args.repo}: no releases (no tags)")
        return 0
    from rich.table import Table

    t = Table(title=f"{args.repo} releases", title_justify="left")
    for col in ("tag", "commit", "variant", "created", "files", "bytes", "parity", "checks"):
        t.add_column(col)
    for r in releases:
        m = r["manifest"]
        if m is None:
            t.add_row(r["tag"], r["commit"][:12], "(no manifest)", "", "", "", "", "")
        else:
            t.add_row(r["tag"], r["commit"][:12], str(m["variant"]), str(m["created"] or ""), str(m["files"]),
                      f"{m['size']:,}", m["parity"], "pass" if m["passed"] else "FAIL")
    out.print(t)
    return 0


# ---- hub serve -----------------------------------------------------------------------------
def run_serve(args: argparse.Namespace) -> int:
    from ..publish.endpoint import LOCAL_HOSTS, default_hub_root
    from ..publish.server import HubServer

    err, _ = _console()
    root = Path(args.root).expanduser() if args.root else default_hub_root()
    token = args.token or os.environ.get("MESHRELEASE_HUB_TOKEN") or None
    try:
        server = HubServer(root, host=args.host, port=args.port, token=token, log_requests=not args.quiet)
    except OSError as e:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    if args.host not in LOCAL_HOSTS and token is None:
        err.print(f"[bold red]WARNING[/] listening on {args.host} without a token: anyone who can reach it can publish")
    err.print(f"meshrelease hub serving {server.root} at {server.url}"
              f"{' (token required)' if token else ''}; Ctrl-C to stop")
    # One line on stdout that scripts can read (the port may have been chosen by the OS).
    sys.stdout.write(server.url + "\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add publish, pull, verify, releases and hub to the ``meshrelease`` command."""
    from .build import add_build_arguments

    p = sub.add_parser(
        "publish",
        help="build a release and push it to a Hub repo as one tagged commit",
        description="Build (as 'meshrelease build') and push every file of the release folder in exactly one commit, "
        "then tag it. An existing tag is never moved: identical content is reported as already released (exit 0), "
        "different content is refused unless --force. Without --endpoint/$HF_ENDPOINT, local/ repos (the default "
        "local/VARIANT) go to the embedded hub.",
    )
    add_build_arguments(p)
    _hub_arguments(p, repo_positional=False)
    p.add_argument("--repo", metavar="OWNER/NAME", help="Hub repo (default: the variant's configured repo, else local/VARIANT)")
    p.add_argument("--private", action="store_true", help="create the repo as private if it does not exist")
    p.add_argument("--dry-run", action="store_true", help="build in a temporary folder and print the plan; push nothing")
    p.add_argument("--release-dir", metavar="DIR",
                   help="publish this already-built release folder (checked against its manifest) instead of building")
    p.add_argument("--force", action="store_true", help="if TAG exists with other content, delete it and publish anyway (loud)")
    p.set_defaults(func=run_publish)

    p = sub.add_parser("pull", help="download a release by tag and check every sha256 against its manifest")
    _hub_arguments(p, repo_positional=True)
    p.add_argument("--tag", required=True, help="release tag")
    p.add_argument("--dest", required=True, metavar="DIR", help="folder to place the release in (written only if every check passes)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=run_pull)

    p = sub.add_parser("verify", help="download a release fresh, re-hash it and re-run ONNX parity against PyTorch")
    _hub_arguments(p, repo_positional=True)
    p.add_argument("--tag", required=True, help="release tag")
    p.add_argument("--checkpoint", metavar="SRC", help="checkpoint location if the recorded one moved (its sha256 must match)")
    p.add_argument("--sample", action="append", metavar="NIFTI", dest="samples", help="real MRI volume for parity (repeatable)")
    p.add_argument("--config", metavar="TOML", help="config file (default: ./meshrelease.toml if present)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=run_verify)

    p = sub.add_parser("releases", help="list a repo's release tags with their manifest summary")
    _hub_arguments(p, repo_positional=True)
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=run_releases)

    hub = sub.add_parser("hub", help="the local Hub-compatible server")
    hub_sub = hub.add_subparsers(dest="hub_command", metavar="COMMAND", required=True)
    p = hub_sub.add_parser("serve", help="serve a local Hub that huggingface_hub can publish to and download from",
                           description="Serve the embedded hub's storage (or --root) over HTTP; point HF_ENDPOINT or "
                           "--endpoint at the printed URL.")
    p.add_argument("--root", metavar="DIR", help="data folder (default: $MESHRELEASE_HUB_ROOT or ~/.cache/meshrelease/hub)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one, printed on stdout)")
    p.add_argument("--token", metavar="T", help="require this bearer token (default: $MESHRELEASE_HUB_TOKEN; none)")
    p.add_argument("--quiet", action="store_true", help="do not log requests")
    p.set_defaults(func=run_serve)
