#!/usr/bin/env bash
# Creates .venv and installs ctxopt with its test tools. Safe to run again: it only adds what is missing.
# torch goes first, pinned to the CPU wheel, so that sentence-transformers does not pull a CUDA build.
# pip takes it from its configured index (here, a local wheel folder holds the CPU wheel); elsewhere on
# Linux set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu, since PyPI's Linux torch is a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
.venv/bin/python -m pip install -q -e ".[dev]"
# The Redis cache backend is tested against a real server; install one if this machine lacks it.
if [ "${1:-}" = "--with-redis" ] && ! command -v redis-server >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
  else
    echo "setup: redis-server is not installed; the Redis tests will be skipped (install it to run them)" >&2
  fi
fi
