#!/bin/bash
# On the lent GPU machine, from the repository root: install the carried wheels, unpack the cache,
# train until the deadline, and put the run under $OUT (at most 8 files come back; this puts 5).
#   bash scripts/device/run.sh ARGS_FILE [BUDGET_S]      (.gpu/ carried: see scripts/device/prepare.sh)
# Exit codes: 2 usage, 3 wheels, 4 unpack, 5 head, 6 an import training needs fails, 7 no model
# exported, 8 the run's records or files could not be written.
START=$(date +%s.%N)
ARGS_FILE=${1:-}
BUDGET=${2:-480}
OUT=${OUT:-/tmp/out}
[ -f "$ARGS_FILE" ] || { echo "usage: run.sh ARGS_FILE [BUDGET_S]; no arguments file '$ARGS_FILE' (set aside?)"; exit 2; }
[ -f .gpu/data.tar.xz ] || { echo "no .gpu/data.tar.xz: carry .gpu (scripts/device/prepare.sh builds it)"; exit 2; }
mkdir -p "$OUT"
set -x
# 14 data workers pass batches through shared memory: make room where the machine allows it (on the
# GPU machine only: a dry run elsewhere must not resize its host's /dev/shm).
if command -v nvidia-smi > /dev/null; then mount -o remount,size=48G /dev/shm 2>&1 || true; fi
df -h /dev/shm
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/.gpu/site:$PWD/src BRAINFORGE_CACHE=${BRAINFORGE_CACHE:-/tmp/bfcache} PYTHONUNBUFFERED=1
python3 scripts/device/unpack.py .gpu/data.tar.xz || exit 4
HEAD=$BRAINFORGE_CACHE/$(python3 -c "import json; print(json.load(open('$BRAINFORGE_CACHE/manifest.json'))['head'])")
[ -f "$HEAD" ] || { echo "no head file from manifest.json: $HEAD"; exit 5; }
# What training imports must import here (a failure ends the call in seconds, not minutes in).
python3 -c "import brainforge.cli, brainforge.training, brainforge.synthesis, mne, zarr, numcodecs, tvb_data" || exit 6
# The top-level modules the packing run imported that this machine lacks: a note, since packages
# here may not import what the same package's other version did there (typer 0.29 imports pydantic).
python3 - "$BRAINFORGE_CACHE/manifest.json" <<'PY'
import importlib.util, json, sys
names = json.load(open(sys.argv[1]))["modules"]
print("modules the packing run imported that are not here:",
      [n for n in names if not n.startswith("_") and importlib.util.find_spec(n) is None] or "none")
PY
nproc; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 scripts/device/train.py "$START" "$BUDGET" /tmp/run "$HEAD" "$ARGS_FILE" > "$OUT/train.log" 2>&1
tail -25 "$OUT/train.log"
ELAPSED=$(python3 -c "import time; print(int(time.time() - $START))")
if [ ! -f /tmp/run/model.safetensors ] && [ "$ELAPSED" -lt 250 ]; then
  echo "the first attempt failed after ${ELAPSED} s; again with 4 data workers"   # as default-v4's run did
  rm -rf /tmp/run
  WORKERS=4 python3 scripts/device/train.py "$START" "$BUDGET" /tmp/run "$HEAD" "$ARGS_FILE" > "$OUT/train2.log" 2>&1
  tail -25 "$OUT/train2.log"
fi
[ -f /tmp/run/model.safetensors ] || exit 7
# The run's records name the head as the packing run did (not this machine's cache file), for --resume.
python3 - "$BRAINFORGE_CACHE/manifest.json" /tmp/run/run.json /tmp/run/config.json <<'PY' || exit 8
import json, sys
name = json.load(open(sys.argv[1]))["head_name"]
for path in sys.argv[2:]:
    record = json.load(open(path))
    record["cli"]["head"] = name
    json.dump(record, open(path, "w"), indent=1)
PY
mkdir -p "$OUT/run" || exit 8
cp /tmp/run/model.safetensors /tmp/run/config.json /tmp/run/run.json /tmp/run/logs/version_0/metrics.csv "$OUT/run/" || exit 8
ls -la "$OUT" "$OUT/run"
