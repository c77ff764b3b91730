#!/usr/bin/env bash
# Create (or update) .venv with BrainForge and its test tools. Works offline
# except for the package registries. The CPU build of PyTorch is pinned and
# installed first: a bare `torch` requirement would pull several GB of CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test,formats]"
