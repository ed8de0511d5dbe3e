#!/usr/bin/env bash
# Create .venv (if missing) and install trustfit with its test/bench extras.
# torch is pinned to 2.13.0: on these machines that is the CPU build on local disk; a bare
# `torch` would pull a multi-GB CUDA build.
# The browser tests drive Debian's chromium through Playwright (never a browser download):
# installed here with apt-get when running as root, else they are skipped with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.trustfit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: no chromium (apt-get install chromium as root); the browser tests will be skipped" >&2
  fi
fi
