#!/usr/bin/env bash
# Create or reuse the project environment: .venv (torch CPU build first), npm packages, Chromium.
# Idempotent: a second run only checks. Used by `make setup`, `make test`, `make publish`, and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
stamp=$VENV/.meshrelease-installed
want=$(cat pyproject.toml package-lock.json meshrelease/verify/tfjs_node/package-lock.json 2>/dev/null | sha256sum | cut -c1-16)

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch==2.13.0 exactly: that pin resolves to the CPU build; any other spec may pull a multi-GB CUDA build.
  "$VENV/bin/python" -m pip install -q torch==2.13.0
  "$VENV/bin/python" -m pip install -q -e '.[test]'
  if command -v npm >/dev/null; then
    echo "setup: installing npm packages (TF.js runner, test tools)"
    (cd meshrelease/verify/tfjs_node && npm ci --no-audit --no-fund --loglevel=error)
    [ -f package-lock.json ] && npm ci --no-audit --no-fund --loglevel=error
  else
    echo "setup: npm not found; TF.js parity will use meshrelease's Python reader and the Node/browser tests will fail" >&2
  fi
  echo "$want" > "$stamp"
fi

# Headless Chromium (Debian package) for the browser test; never a downloaded browser build.
if [ "${MESHRELEASE_SKIP_CHROMIUM:-0}" != 1 ] && ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium is missing; install it with: sudo apt-get install chromium" >&2
  fi
fi
