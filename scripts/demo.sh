#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the demo: diagnose an input-bound training job, then fix it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec cpuwise demo "$@"
