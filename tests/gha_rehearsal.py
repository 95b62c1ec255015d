"""A local rehearsal of a GitHub Actions workflow: its jobs and steps, run the way a runner runs them.

Not a full runner, and deliberately strict: it

- evaluates every ``${{ }}`` expression it meets with the subset of the expression language the
  project's workflows use (literals, contexts, ``!``, ``==``, ``!=``, ``<``…, ``&&``, ``||``, and the
  functions ``fromJSON``, ``toJSON``, ``contains``, ``startsWith``, ``endsWith``, ``format``, ``join``,
  ``success``, ``failure``, ``always``, ``cancelled``); anything else raises :class:`RehearsalError`;
- runs jobs in ``needs`` order, expands ``strategy.matrix``, evaluates ``if:`` conditions;
- executes each ``run:`` step with ``bash --noprofile --norc -eo pipefail`` exactly as written (after
  expression substitution), with the ``GITHUB_*`` / ``RUNNER_*`` variables a runner sets and the
  per-step ``GITHUB_OUTPUT``, ``GITHUB_ENV``, ``GITHUB_PATH`` and ``GITHUB_STEP_SUMMARY`` files
  handled as a runner handles them;
- emulates the ``uses:`` actions the workflows use by checking what each would provide
  (``actions/checkout``, ``actions/setup-python``, ``actions/setup-node``, ``actions/upload-artifact``);
  any other action, or an input an emulation does not know, raises.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Callable

import yaml


class RehearsalError(Exception):
    """The workflow uses something this rehearsal cannot evaluate or emulate."""


# ---- the expression language ------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>0x[0-9a-fA-F]+|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\].,*])|(?P<ident>[A-Za-z_][A-Za-z0-9_-]*))"
)
_STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            if expr[pos:].strip() == "":
                break
            raise RehearsalError(f"cannot parse expression {expr!r} at {expr[pos:]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _number(v: Any) -> float:
    """GitHub's coercion to number for comparisons."""
    if v is None:
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        s = v.strip()
        if s == "":
            return 0.0
        try:
            return float(int(s, 16)) if s.lower().startswith("0x") else float(s)
        except ValueError:
            return math.nan
    return math.nan


def truthy(v: Any) -> bool:
    if v is None or v is False or v == "":
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return not (v == 0 or math.isnan(v))
    return True


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    if type(a) is type(b):
        return a == b
    return _number(a) == _number(b)


def to_text(v: Any) -> str:
    """How a value is written into a string (``run:``, ``env:``, names)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v, indent=2)
    return str(v)


class Unset(dict):
    """An object whose missing properties are null, as GitHub gives for outputs a step never wrote.
    Used only for steps that did not succeed; a successful step's missing output is an error here."""


class Evaluator:
    """Evaluates expressions against contexts. ``lenient`` contexts give null for a missing key (as
    ``inputs`` does outside workflow_dispatch); in every other context a missing key is an error, so
    a typo such as ``matrix.varient`` fails the rehearsal instead of becoming an empty string."""

    def __init__(self, contexts: dict[str, Any], lenient: frozenset[str] = frozenset(), status: str = "success"):
        self.contexts = contexts
        self.lenient = lenient
        self.status = status  # the job's status so far: success | failure

    # recursive descent, lowest precedence first
    def evaluate(self, expr: str) -> Any:
        self._toks = _tokens(expr)
        self._i = 0
        self._expr = expr
        value = self._or()
        if self._i != len(self._toks):
            raise RehearsalError(f"unexpected {self._toks[self._i][1]!r} in expression {expr!r}")
        return value

    def _peek(self) -> str | None:
        return self._toks[self._i][1] if self._i < len(self._toks) else None

    def _take(self, want: str | None = None) -> tuple[str, str]:
        if self._i >= len(self._toks):
            raise RehearsalError(f"expression {self._expr!r} ends early")
        tok = self._toks[self._i]
        if want is not None and tok[1] != want:
            raise RehearsalError(f"expected {want!r}, found {tok[1]!r} in expression {self._expr!r}")
        self._i += 1
        return tok

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            left = left if truthy(left) else right
        return left

    def _and(self) -> Any:
        left = self._equality()
        while self._peek() == "&&":
            self._take()
            right = self._equality()
            left = right if truthy(left) else left
        return left

    def _equality(self) -> Any:
        left = self._comparison()
        while self._peek() in ("==", "!="):
            op = self._take()[1]
            right = self._comparison()
            left = _equal(left, right) if op == "==" else not _equal(left, right)
        return left

    def _comparison(self) -> Any:
        left = self._unary()
        while self._peek() in ("<", "<=", ">", ">="):
            op = self._take()[1]
            right = self._unary()
            if isinstance(left, str) and isinstance(right, str):
                a, b = left.casefold(), right.casefold()
            else:
                a, b = _number(left), _number(right)
            left = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        return self._postfix()

    def _postfix(self) -> Any:
        value, path = self._primary()
        while self._peek() in (".", "["):
            if self._take()[1] == ".":
                kind, name = self._take()
                if name == "*":
                    raise RehearsalError(f"object filters (.*) are not supported: {self._expr!r}")
                if kind != "ident":
                    raise RehearsalError(f"bad property {name!r} in expression {self._expr!r}")
            else:
                name = self._or()
                self._take("]")
            value, path = self._member(value, name, path)
        return value

    def _member(self, value: Any, name: Any, path: str) -> tuple[Any, str]:
        where = f"{path}.{name}"
        if isinstance(value, list):
            idx = int(_number(name))
            return (value[idx] if 0 <= idx < len(value) else None), where
        if not isinstance(value, dict):
            raise RehearsalError(f"{where}: {path} is {to_text(value)!r}, not an object (in {self._expr!r})")
        for key in value:  # property names are case-insensitive
            if str(key).casefold() == str(name).casefold():
                return value[key], where
        if path.split(".")[0] in self.lenient or isinstance(value, Unset):
            return None, where
        raise RehearsalError(f"{where} is not defined (in {self._expr!r}); known: {', '.join(map(str, value)) or 'none'}")

    def _primary(self) -> tuple[Any, str]:
        kind, text = self._take()
        if kind == "str":
            return text[1:-1].replace("''", "'"), "literal"
        if kind == "num":
            return (float(int(text, 16)) if text.lower().startswith("0x") else float(text)), "literal"
        if text == "(":
            value = self._or()
            self._take(")")
            return value, "(…)"
        if kind != "ident":
            raise RehearsalError(f"unexpected {text!r} in expression {self._expr!r}")
        if text in ("true", "false"):
            return text == "true", "literal"
        if text == "null":
            return None, "literal"
        if self._peek() == "(":
            self._take("(")
            args = []
            while self._peek() != ")":
                args.append(self._or())
                if self._peek() == ",":
                    self._take(",")
            self._take(")")
            return self._call(text, args), f"{text}()"
        if text not in self.contexts:
            raise RehearsalError(f"unknown context {text!r} in expression {self._expr!r}")
        return self.contexts[text], text

    def _call(self, name: str, args: list[Any]) -> Any:
        fn = name.casefold()
        if fn == "success":
            return self.status == "success"
        if fn == "failure":
            return self.status == "failure"
        if fn == "always":
            return True
        if fn == "cancelled":
            return False
        if fn == "fromjson":
            try:
                return json.loads(to_text(args[0]))
            except ValueError as exc:
                raise RehearsalError(f"fromJSON({to_text(args[0])!r}): {exc}") from None
        if fn == "tojson":
            return json.dumps(args[0], indent=2)
        if fn == "contains":
            hay, needle = args
            if isinstance(hay, list):
                return any(_equal(x, needle) for x in hay)
            return to_text(needle).casefold() in to_text(hay).casefold()
        if fn == "startswith":
            return to_text(args[0]).casefold().startswith(to_text(args[1]).casefold())
        if fn == "endswith":
            return to_text(args[0]).casefold().endswith(to_text(args[1]).casefold())
        if fn == "format":
            out = to_text(args[0])
            for i, a in enumerate(args[1:]):
                out = out.replace("{" + str(i) + "}", to_text(a))
            return out
        if fn == "join":
            sep = to_text(args[1]) if len(args) > 1 else ","
            return sep.join(to_text(x) for x in args[0]) if isinstance(args[0], list) else to_text(args[0])
        raise RehearsalError(f"function {name}() is not supported by the rehearsal")


def _expressions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, expression) of every ``${{ … }}`` in ``text``; quotes may contain ``}}``."""
    out, pos = [], 0
    while (start := text.find("${{", pos)) != -1:
        i, quoted = start + 3, False
        while i < len(text):
            if text[i] == "'":
                quoted = not quoted
            elif not quoted and text.startswith("}}", i):
                break
            i += 1
        else:
            raise RehearsalError(f"unterminated expression in {text!r}")
        out.append((start, i + 2, text[start + 3:i]))
        pos = i + 2
    return out


def substitute(value: Any, ev: Evaluator) -> Any:
    """Evaluate the expressions in a workflow value: a lone ``${{ x }}`` keeps x's type; in a longer
    string each is written as text; lists and mappings are walked."""
    if isinstance(value, dict):
        return {k: substitute(v, ev) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, ev) for v in value]
    if not isinstance(value, str):
        return value
    found = _expressions(value)
    if len(found) == 1 and value.strip() == value[found[0][0]:found[0][1]]:
        return ev.evaluate(found[0][2])
    out, last = [], 0
    for start, end, expr in found:
        out.append(value[last:start])
        out.append(to_text(ev.evaluate(expr)))
        last = end
    out.append(value[last:])
    return "".join(out)


def condition(raw: Any, ev: Evaluator) -> bool:
    """An ``if:``: ``${{ }}`` optional; without a status function it means ``success() && (…)``."""
    if raw is None:
        return ev.status == "success"
    if isinstance(raw, bool):
        return raw and ev.status == "success"
    text = str(raw).strip()
    if text.startswith("${{") and text.endswith("}}") and len(_expressions(text)) == 1:
        text = text[3:-2]
    if not any(re.search(rf"\b{f}\s*\(", text) for f in _STATUS_FUNCTIONS):
        text = f"success() && ({text})"
    return truthy(ev.evaluate(text))


def filter_matches(pattern: str, name: str) -> bool:
    """A branch/tag filter pattern (``*`` within a path segment, ``**`` across); others are refused."""
    if any(c in pattern for c in "?+[]!"):
        raise RehearsalError(f"filter pattern {pattern!r} uses syntax the rehearsal does not implement")
    rx = "".join(".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part)
                 for part in re.split(r"(\*\*|\*)", pattern))
    return re.fullmatch(rx, name) is not None


# ---- running ----------------------------------------------------------------------------------
@dataclass
class Event:
    """What started the run: a push of ``ref`` or a manual run with ``inputs``."""

    name: str
    ref: str
    sha: str
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def ref_name(self) -> str:
        return self.ref.split("/", 2)[2] if self.ref.startswith(("refs/tags/", "refs/heads/")) else self.ref

    @property
    def ref_type(self) -> str:
        return "tag" if self.ref.startswith("refs/tags/") else "branch"


@dataclass
class StepResult:
    name: str
    id: str | None
    kind: str  # run | uses
    outcome: str  # success | failure | skipped
    returncode: int | None = None
    log: str = ""
    command: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobResult:
    job: str
    name: str
    matrix: dict[str, Any]
    status: str = "success"
    steps: list[StepResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    env: dict[str, str] = field(default_factory=dict)  # the GITHUB_*/RUNNER_* variables the steps saw

    def step(self, key: str) -> StepResult:
        for s in self.steps:
            if key in (s.id, s.name):
                return s
        raise KeyError(key)

    def failure_report(self) -> str:
        return "\n".join(f"--- {s.name} ({s.outcome}, rc={s.returncode})\n{s.command}\n{s.log[-4000:]}"
                         for s in self.steps if s.outcome == "failure")


@dataclass
class RunResult:
    concurrency_group: str | None
    jobs: dict[str, list[JobResult]]
    artifacts: Path


def _read_kv_file(path: Path) -> dict[str, str]:
    """``name=value`` lines and ``name<<DELIM`` … ``DELIM`` blocks, as the runner reads them."""
    out: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            block = []
            i += 1
            while i < len(lines) and lines[i] != delim:
                block.append(lines[i])
                i += 1
            if i >= len(lines):
                raise RehearsalError(f"{path.name}: no closing {delim!r} for {name!r}")
            out[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
        elif line.strip():
            raise RehearsalError(f"{path.name}: malformed line {line!r}")
        i += 1
    return out


ActionFn = Callable[["_JobRun", dict[str, Any], StepResult], None]


class Rehearsal:
    """Run ``workflow`` (YAML text) for ``event`` in ``workspace``; scratch files go under ``tmp``."""

    def __init__(self, workflow: str, *, workspace: Path, tmp: Path, event: Event, secrets: dict[str, str],
                 repository: str = "example/meshrelease", run_id: str = "4242", run_attempt: str = "1", base_env: dict[str, str] | None = None,
                 server_url: str = "https://github.com"):
        self.data = yaml.safe_load(workflow)
        if not isinstance(self.data, dict) or "jobs" not in self.data:
            raise RehearsalError("not a workflow: no jobs")
        # YAML 1.1 reads the key `on` as True.
        self.triggers = self.data.get("on", self.data.get(True))
        self.workspace = Path(workspace)
        self.tmp = Path(tmp)
        self.event = event
        self.secrets = {"GITHUB_TOKEN": "ghs_rehearsal", **secrets}
        self.repository = repository
        self.run_id = run_id
        self.run_attempt = run_attempt
        self.server_url = server_url
        self.base_env = dict(base_env if base_env is not None else os.environ)
        self.artifacts = self.tmp / "artifacts"
        unknown = set(self.data) - {"name", "on", True, "permissions", "concurrency", "env", "jobs", "run-name"}
        if unknown:
            raise RehearsalError(f"workflow keys the rehearsal does not implement: {sorted(map(str, unknown))}")

    # -- the event ----------------------------------------------------------------------------
    def check_trigger(self) -> None:
        """The event must be one the workflow listens to (a pushed tag must match a tag filter)."""
        on = self.triggers
        if isinstance(on, str):
            on = {on: None}
        elif isinstance(on, list):
            on = {k: None for k in on}
        if self.event.name not in on:
            raise RehearsalError(f"the workflow does not run on {self.event.name}")
        spec = on[self.event.name] or {}
        if self.event.name == "push":
            key = "tags" if self.event.ref_type == "tag" else "branches"
            patterns = spec.get(key)
            if patterns is None and (spec.get("tags") is not None or spec.get("branches") is not None):
                raise RehearsalError(f"a push of {self.event.ref} does not start this workflow (no {key} filter)")
            if patterns is not None and not any(filter_matches(p, self.event.ref_name) for p in patterns):
                raise RehearsalError(f"a push of {self.event.ref} does not match the {key} filters {patterns}")
        if self.event.name == "workflow_dispatch":
            declared = (spec.get("inputs") or {})
            for name in self.event.inputs:
                if name not in declared:
                    raise RehearsalError(f"workflow_dispatch has no input {name!r}")
            for name, d in declared.items():
                if d.get("required") and not self.event.inputs.get(name, d.get("default")):
                    raise RehearsalError(f"workflow_dispatch input {name!r} is required")

    def inputs(self) -> dict[str, Any]:
        if self.event.name != "workflow_dispatch":
            return {}
        declared = ((self.triggers or {}).get("workflow_dispatch") or {}).get("inputs") or {}
        return {name: self.event.inputs.get(name, d.get("default", "")) for name, d in declared.items()}

    def github_context(self, job: str) -> dict[str, Any]:
        owner = self.repository.split("/")[0]
        return {
            "event_name": self.event.name, "ref": self.event.ref, "ref_name": self.event.ref_name,
            "ref_type": self.event.ref_type, "sha": self.event.sha, "repository": self.repository,
            "repository_owner": owner, "run_id": self.run_id, "run_number": "7", "run_attempt": self.run_attempt,
            "server_url": self.server_url, "api_url": "https://api.github.com", "actor": "rehearsal",
            "workflow": self.data.get("name", "workflow"), "workspace": str(self.workspace), "job": job,
            "event": {"inputs": self.inputs()} if self.event.name == "workflow_dispatch" else {"ref": self.event.ref},
        }

    def runner_env(self, job: str, runner_temp: Path) -> dict[str, str]:
        g = self.github_context(job)
        return {
            "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": g["event_name"], "GITHUB_REF": g["ref"],
            "GITHUB_REF_NAME": g["ref_name"], "GITHUB_REF_TYPE": g["ref_type"], "GITHUB_SHA": g["sha"],
            "GITHUB_REPOSITORY": g["repository"], "GITHUB_REPOSITORY_OWNER": g["repository_owner"],
            "GITHUB_RUN_ID": g["run_id"], "GITHUB_RUN_NUMBER": g["run_number"], "GITHUB_RUN_ATTEMPT": g["run_attempt"],
            "GITHUB_SERVER_URL": g["server_url"], "GITHUB_API_URL": g["api_url"], "GITHUB_ACTOR": g["actor"],
            "GITHUB_WORKFLOW": g["workflow"], "GITHUB_WORKSPACE": g["workspace"], "GITHUB_JOB": job,
            "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64", "RUNNER_TEMP": str(runner_temp),
            "RUNNER_TOOL_CACHE": str(self.tmp / "toolcache"),
        }

    def run(self) -> RunResult:
        self.check_trigger()
        base = {"github": self.github_context(""), "inputs": self.inputs(), "vars": {}}
        ev = Evaluator(base, lenient=frozenset({"inputs"}))
        group = None
        conc = self.data.get("concurrency")
        if conc is not None:
            group = to_text(substitute(conc["group"] if isinstance(conc, dict) else conc, ev))
        results: dict[str, list[JobResult]] = {}
        needs_ctx: dict[str, Any] = {}
        for name in self._job_order():
            spec = self.data["jobs"][name]
            needs = [spec["needs"]] if isinstance(spec.get("needs"), str) else list(spec.get("needs") or [])
            failed = [n for n in needs if needs_ctx[n]["result"] != "success"]
            results[name] = []
            if failed:
                results[name].append(JobResult(name, name, {}, status="skipped"))
                needs_ctx[name] = {"result": "skipped", "outputs": {}}
                continue
            ctx = {**base, "needs": {n: needs_ctx[n] for n in needs}}
            for matrix in self._matrix(spec, ctx):
                results[name].append(_JobRun(self, name, spec, {**ctx, "matrix": matrix}).run())
            statuses = [r.status for r in results[name]]
            result = "success" if all(s == "success" for s in statuses) else "failure"
            needs_ctx[name] = {"result": result, "outputs": results[name][-1].outputs}
        return RunResult(group, results, self.artifacts)

    def _job_order(self) -> list[str]:
        jobs, done, order = self.data["jobs"], set(), []
        while len(order) < len(jobs):
            ready = [j for j in jobs if j not in done and all(
                n in done for n in ([jobs[j]["needs"]] if isinstance(jobs[j].get("needs"), str) else jobs[j].get("needs") or []))]
            if not ready:
                raise RehearsalError("jobs have a needs cycle or need an unknown job")
            for j in ready:
                done.add(j)
                order.append(j)
        return order

    def _matrix(self, spec: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
        strategy = spec.get("strategy") or {}
        unknown = set(strategy) - {"matrix", "fail-fast", "max-parallel"}
        if unknown:
            raise RehearsalError(f"strategy keys the rehearsal does not implement: {sorted(unknown)}")
        raw = strategy.get("matrix")
        if raw is None:
            return [{}]
        matrix = substitute(raw, Evaluator(ctx, lenient=frozenset({"inputs"})))
        if not isinstance(matrix, dict) or any(k in matrix for k in ("include", "exclude")):
            raise RehearsalError(f"matrix {matrix!r}: only key -> list matrices are implemented")
        for key, values in matrix.items():
            if not isinstance(values, list) or not values:
                raise RehearsalError(f"matrix.{key} is {values!r}, not a non-empty list")
        keys = list(matrix)
        return [dict(zip(keys, combo)) for combo in product(*(matrix[k] for k in keys))]


class _JobRun:
    """One job (one matrix combination) on the rehearsal's 'runner'."""

    STEP_KEYS = {"id", "name", "uses", "with", "run", "env", "if", "shell", "working-directory", "timeout-minutes",
                 "continue-on-error"}
    JOB_KEYS = {"name", "runs-on", "needs", "if", "strategy", "env", "steps", "outputs", "timeout-minutes", "permissions",
                "concurrency"}

    def __init__(self, rehearsal: Rehearsal, job: str, spec: dict[str, Any], ctx: dict[str, Any]):
        unknown = set(spec) - self.JOB_KEYS
        if unknown:
            raise RehearsalError(f"job {job}: keys the rehearsal does not implement: {sorted(unknown)}")
        self.r = rehearsal
        self.job = job
        self.spec = spec
        self.ctx = {**ctx, "github": rehearsal.github_context(job), "secrets": rehearsal.secrets, "steps": {},
                    "job": {"status": "success"}, "strategy": {"fail-fast": True}}
        self.root = rehearsal.tmp / "jobs" / f"{job}-{'-'.join(map(str, ctx.get('matrix', {}).values())) or 'job'}"
        self.runner_temp = self.root / "runner-temp"
        self.runner_temp.mkdir(parents=True, exist_ok=True)
        self.env_files: dict[str, str] = {}  # from GITHUB_ENV
        self.paths: list[str] = []  # from GITHUB_PATH, newest first
        self.ev_status = "success"

    def evaluator(self, extra: dict[str, Any] | None = None) -> Evaluator:
        return Evaluator({**self.ctx, **(extra or {})}, lenient=frozenset({"inputs"}), status=self.ev_status)

    def run(self) -> JobResult:
        ev = self.evaluator()
        label = str(self.spec.get("runs-on", ""))
        if not label.startswith("ubuntu-"):
            raise RehearsalError(f"job {self.job} runs on {label!r}; the rehearsal only runs Linux (ubuntu-*) jobs")
        name = to_text(substitute(self.spec.get("name", self.job), ev))
        result = JobResult(self.job, name, dict(self.ctx.get("matrix", {})),
                           env=self.r.runner_env(self.job, self.runner_temp))
        if not condition(self.spec.get("if"), ev):
            result.status = "skipped"
            return result
        self.wf_env = {k: to_text(v) for k, v in substitute(self.r.data.get("env") or {}, ev).items()}
        self.ctx["env"] = dict(self.wf_env)
        self.job_env = {k: to_text(v) for k, v in substitute(self.spec.get("env") or {}, self.evaluator()).items()}
        self.ctx["env"] = {**self.wf_env, **self.job_env}
        self.timeout = float(self.spec.get("timeout-minutes", 360)) * 60
        for i, step in enumerate(self.spec.get("steps") or []):
            unknown = set(step) - self.STEP_KEYS
            if unknown:
                raise RehearsalError(f"job {self.job} step {i + 1}: keys the rehearsal does not implement: {sorted(unknown)}")
            res = self._step(i, step, result)
            result.steps.append(res)
            if res.id:
                outputs = res.outputs if res.outcome == "success" else Unset(res.outputs)
                self.ctx["steps"][res.id] = {"outputs": outputs, "outcome": res.outcome, "conclusion": res.outcome}
            if res.outcome == "failure" and not step.get("continue-on-error"):
                self.ev_status = "failure"
                self.ctx["job"]["status"] = "failure"
        result.status = self.ev_status
        result.outputs = {k: to_text(v) for k, v in substitute(self.spec.get("outputs") or {}, self.evaluator()).items()}
        return result

    def _step(self, i: int, step: dict[str, Any], job: JobResult) -> StepResult:
        ev = self.evaluator()
        kind = "uses" if "uses" in step else "run"
        if ("uses" in step) == ("run" in step):
            raise RehearsalError(f"job {self.job} step {i + 1}: needs exactly one of uses/run")
        name = to_text(substitute(step.get("name") or (step.get("uses") or step["run"].splitlines()[0]), ev))
        res = StepResult(name=name, id=step.get("id"), kind=kind, outcome="skipped")
        if not condition(step.get("if"), ev):
            return res
        step_env = {k: to_text(v) for k, v in substitute(step.get("env") or {}, ev).items()}
        if kind == "uses":
            ref = str(step["uses"])
            action, _, version = ref.partition("@")
            if not version:
                raise RehearsalError(f"{ref}: no version")
            inputs = substitute(step.get("with") or {}, self.evaluator({"env": {**self.ctx["env"], **step_env}}))
            emulate = ACTIONS.get(action)
            if emulate is None:
                raise RehearsalError(f"action {action} is not emulated by the rehearsal")
            res.detail = {"action": action, "version": version, "with": inputs}
            try:
                emulate(self, inputs, res)
                res.outcome = "success"
            except ActionFailed as exc:
                res.outcome, res.log = "failure", str(exc)
            return res
        if step.get("shell", "bash") != "bash":
            raise RehearsalError(f"shell {step['shell']!r} is not implemented")
        script = to_text(substitute(str(step["run"]), self.evaluator({"env": {**self.ctx["env"], **step_env}})))
        res.command = script
        files = self.root / f"step-{i + 1}"
        files.mkdir(parents=True, exist_ok=True)
        gh_files = {n: files / n.lower() for n in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY")}
        for p in gh_files.values():
            p.touch()
        script_path = files / "script.sh"
        script_path.write_text(script, encoding="utf-8")
        env = dict(self.r.base_env)
        env.update(self.wf_env)
        env.update(self.job_env)
        env.update(self.env_files)
        env.update(step_env)
        env.update(job.env)  # the runner's own variables cannot be overridden
        env.update({k: str(v) for k, v in gh_files.items()})
        env["PATH"] = os.pathsep.join(self.paths + [self.r.base_env.get("PATH", "")])
        cwd = self.r.workspace / str(substitute(step.get("working-directory", "."), ev))
        timeout = float(step.get("timeout-minutes", self.timeout / 60)) * 60
        try:
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_path)], cwd=cwd,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
            res.returncode, res.log = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as exc:
            res.returncode, res.log = -9, f"{exc.output or ''}\nstep timed out after {timeout:.0f} s"
        res.outcome = "success" if res.returncode == 0 else "failure"
        res.outputs = _read_kv_file(gh_files["GITHUB_OUTPUT"])
        self.env_files.update(_read_kv_file(gh_files["GITHUB_ENV"]))
        self.ctx["env"] = {**self.ctx["env"], **_read_kv_file(gh_files["GITHUB_ENV"])}
        added = [line.strip() for line in gh_files["GITHUB_PATH"].read_text().splitlines() if line.strip()]
        self.paths = list(reversed(added)) + self.paths
        job.summary += gh_files["GITHUB_STEP_SUMMARY"].read_text(encoding="utf-8")
        return res


class ActionFailed(Exception):
    """An emulated action failed the way the real one would (the step fails, the rehearsal goes on)."""


def _check_inputs(action: str, inputs: dict[str, Any], allowed: set[str], required: set[str] = frozenset()) -> None:
    unknown = set(inputs) - allowed
    if unknown:
        raise RehearsalError(f"{action}: inputs the emulation does not know: {sorted(unknown)}")
    missing = required - set(inputs)
    if missing:
        raise RehearsalError(f"{action}: required inputs missing: {sorted(missing)}")


def _dependency_files(run: _JobRun, action: str, spec: Any) -> list[Path]:
    files = [run.r.workspace / line.strip() for line in str(spec or "").splitlines() if line.strip()]
    missing = [str(f.relative_to(run.r.workspace)) for f in files if not f.is_file()]
    if missing:
        raise ActionFailed(f"{action}: cache-dependency-path matches no file: {', '.join(missing)}")
    return files


def _checkout(run: _JobRun, inputs: dict[str, Any], res: StepResult) -> None:
    # The workspace already is the checkout; what is checked is that it is one, and the inputs evaluate.
    _check_inputs("actions/checkout", inputs, {"ref", "persist-credentials", "fetch-depth", "fetch-tags"})
    proc = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=run.r.workspace, capture_output=True, text=True)
    if proc.stdout.strip() != "true":
        raise ActionFailed(f"{run.r.workspace} is not a git work tree")
    res.detail["ref"] = inputs.get("ref") or run.r.event.ref


def _setup_python(run: _JobRun, inputs: dict[str, Any], res: StepResult) -> None:
    _check_inputs("actions/setup-python", inputs, {"python-version", "cache", "cache-dependency-path"}, {"python-version"})
    have = f"{sys.version_info.major}.{sys.version_info.minor}"
    if str(inputs["python-version"]) != have:
        raise ActionFailed(f"setup-python asks for {inputs['python-version']}; this machine runs Python {have}")
    if inputs.get("cache") not in (None, "pip", "pipenv", "poetry"):
        raise ActionFailed(f"setup-python: unsupported cache {inputs['cache']!r}")
    if inputs.get("cache"):
        _dependency_files(run, "setup-python", inputs.get("cache-dependency-path") or "requirements.txt")
    # A bare interpreter of that version first on PATH, as on a fresh runner (no project packages).
    bin_dir = run.root / "python-bin"
    bin_dir.mkdir(exist_ok=True)
    base = Path(getattr(sys, "_base_executable", sys.executable))
    for name in ("python", "python3", f"python{have}"):
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(base)
    run.paths.insert(0, str(bin_dir))


def _setup_node(run: _JobRun, inputs: dict[str, Any], res: StepResult) -> None:
    _check_inputs("actions/setup-node", inputs, {"node-version", "cache", "cache-dependency-path"}, {"node-version"})
    node = shutil.which("node", path=run.r.base_env.get("PATH"))
    if node is None:
        raise ActionFailed("setup-node: no node on this machine")
    have = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip().lstrip("v")
    if have.split(".")[0] != str(inputs["node-version"]).split(".")[0]:
        raise ActionFailed(f"setup-node asks for {inputs['node-version']}; this machine runs Node {have}")
    if inputs.get("cache") not in (None, "npm"):
        raise ActionFailed(f"setup-node: unsupported cache {inputs['cache']!r}")
    if inputs.get("cache"):
        _dependency_files(run, "setup-node", inputs.get("cache-dependency-path") or "package-lock.json")


def _upload_artifact(run: _JobRun, inputs: dict[str, Any], res: StepResult) -> None:
    _check_inputs("actions/upload-artifact", inputs, {"name", "path", "if-no-files-found", "retention-days"}, {"name", "path"})
    name, path = to_text(inputs["name"]), to_text(inputs["path"]).strip()
    if not name or "/" in name:
        raise ActionFailed(f"upload-artifact: invalid artifact name {name!r}")
    source = (run.r.workspace / path) if path else None
    if source is None or not source.exists():
        if inputs.get("if-no-files-found", "warn") == "error":
            raise ActionFailed(f"upload-artifact: no files found at {path!r}")
        return
    target = run.r.artifacts / name
    if target.exists():
        raise ActionFailed(f"upload-artifact: an artifact named {name!r} already exists in this run")
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        target.mkdir(parents=True)
        shutil.copy2(source, target / source.name)
    res.detail["artifact"] = str(target)


ACTIONS: dict[str, ActionFn] = {
    "actions/checkout": _checkout,
    "actions/setup-python": _setup_python,
    "actions/setup-node": _setup_node,
    "actions/upload-artifact": _upload_artifact,
}
