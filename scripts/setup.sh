#!/usr/bin/env bash
# Set up a fresh machine for cpuwise: a virtualenv in .venv with cpuwise and every extra the demo,
# the tests and the benchmarks use. Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch==2.13.0 is the CPU build; a plain `torch` would pull a multi-GB CUDA build.
python -m pip install -q "torch==2.13.0" \
  -e ".[torch,gpu,image,tabular,optimize,models,keras,tensorboard,stacks,lightning,hf,ray,openvino,dev]"
# A headless browser for the HTML report check (Debian's chromium). Optional: its test skips without it.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: could not install chromium; the HTML screenshot test will be skipped" >&2
fi
