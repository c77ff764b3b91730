#!/usr/bin/env bash
# Create (or update) .venv with BrainForge and its test tools. Works offline
# except for the package registries. PyTorch is pinned and installed first: a
# bare `torch` requirement would pull several GB of CUDA on Linux. Its build
# comes from TORCH_INDEX_URL (default: PyTorch's CPU-only index) when that
# index answers; otherwise from pip's own configuration (PyPI, or a local
# wheel where pip is set up with one). TORCH_INDEX_URL=pypi skips the CPU
# index (on Linux, PyPI's build includes CUDA: for GPU training).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
index_answers() {
    .venv/bin/python - "$1" <<'PY'
import sys
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=10)
except Exception:
    sys.exit(1)
PY
}
if .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    :  # already installed (whichever build): keep it
elif [ "$TORCH_INDEX_URL" != pypi ] && index_answers "$TORCH_INDEX_URL"; then
    .venv/bin/python -m pip install --quiet "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"
else
    .venv/bin/python -m pip install --quiet "torch==$TORCH_VERSION"
fi
.venv/bin/python -m pip install --quiet -e ".[test,formats]"
