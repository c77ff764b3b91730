#!/bin/bash
# Device run: install carried wheels, unpack the cache, train until the deadline, return the run.
# Layout there: the repository root, with .gpu/ = {whl/ (mne, zarr, numcodecs, donfig, google-crc32c, decorator,
# pooch, platformdirs wheels for CPython 3.12), site/tvb_data (its __init__ and connectivity_76.zip), data.tar.xz
# (pack.py), train_gpu.py, unpack.py}. Called as `bash .gpu/run.sh`; the resume was a second call (see README).
START=$(date +%s.%N)
BUDGET=${BUDGET:-500}
set -x
df -h /dev/shm; mount -o remount,size=48G /dev/shm 2>&1; df -h /dev/shm
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/.gpu/site:$PWD/src BRAINFORGE_CACHE=/tmp/bfcache PYTHONUNBUFFERED=1
python3 .gpu/unpack.py .gpu/data.tar.xz || exit 4
nproc; free -g | head -2; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
HEAD=/tmp/bfcache/$(python3 -c "import json; print(json.load(open('/tmp/bfcache/manifest.json'))['head'])")
[ -f "$HEAD" ] || { echo "no head file from manifest.json: $HEAD"; exit 5; }
python3 .gpu/train_gpu.py $START $BUDGET /tmp/run $HEAD > $OUT/train.log 2>&1
tail -25 $OUT/train.log
NOW=$(date +%s); EL=$(python3 -c "print(int($NOW-$START))")
if [ ! -f /tmp/run/model.safetensors ] && [ $EL -lt 250 ]; then
  echo "FIRST ATTEMPT FAILED at ${EL}s; retry with 4 workers"
  rm -rf /tmp/run
  WORKERS=4 python3 .gpu/train_gpu.py $START $BUDGET /tmp/run $HEAD > $OUT/train2.log 2>&1
  tail -25 $OUT/train2.log
fi
mkdir -p $OUT/run
cp /tmp/run/model.safetensors /tmp/run/config.json /tmp/run/run.json $OUT/run/
cp /tmp/run/logs/version_0/metrics.csv $OUT/run/
[ -f /tmp/run/checkpoints/last.ckpt ] && split -b 15M /tmp/run/checkpoints/last.ckpt $OUT/run/last.ckpt.part-
ls -la $OUT $OUT/run
