#!/bin/bash
# Here, on a full install with a warm cache: build .gpu/ (ignored; carried to the GPU machine) for
# scripts/device/run.sh, then check it with a short dry run on this machine's CPU.
#   BRAINFORGE_CACHE=... bash scripts/device/prepare.sh ARGS_FILE [DRY_RUN_S]
# .gpu/ holds: whl/ (the packages the device image lacks, for its CPython 3.12, at this install's
# versions: the forward bank's cache key holds MNE's version), site/tvb_data (its __init__ and the
# 76-region connectome) and data.tar.xz (scripts/device/pack.py: the cache entries that ARGS_FILE's
# training reads). The dry run unpacks the archive into an empty cache and trains on the CPU from it
# for DRY_RUN_S seconds (default 150; 0 skips it); it fails if any cache entry was rebuilt.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
ARGS_FILE=${1:-}
DRY_RUN_S=${2:-150}
[ -f "$ARGS_FILE" ] || { echo "usage: prepare.sh ARGS_FILE [DRY_RUN_S]; no arguments file '$ARGS_FILE'"; exit 2; }
PY=${PY:-.venv/bin/python}
WHEELS="mne zarr numcodecs donfig google-crc32c decorator pooch platformdirs"
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")" && { grep -qsx '/.gpu/' "$EXCLUDE" || echo '/.gpu/' >> "$EXCLUDE"; }
rm -rf .gpu && mkdir -p .gpu/whl .gpu/site/tvb_data/connectivity
for name in $WHEELS; do
  version=$($PY -c "import importlib.metadata as m; print(m.version('$name'))")
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/whl "$name==$version"
done
TVB=$($PY -c "import tvb_data, os; print(os.path.dirname(tvb_data.__file__))")
cp "$TVB/__init__.py" .gpu/site/tvb_data/ && cp "$TVB/connectivity/connectivity_76.zip" .gpu/site/tvb_data/connectivity/
$PY scripts/device/pack.py .gpu/data.tar.xz "$ARGS_FILE"
du -sh .gpu/*; du -sh .gpu
# What travels: .gpu/ and the working tree without the training runs set aside (set_aside.sh), but
# with the folder of ARGS_FILE's run; at most 64 MiB (67,108,864 bytes) together.
RUN_FOLDER=$(dirname "$ARGS_FILE")
TREE=$( { git ls-files -z --cached --others --exclude-standard -- . ':!training_runs'; \
          git ls-files -z --cached --others --exclude-standard -- "$RUN_FOLDER"; } \
        | { du -cb --files0-from=- 2>/dev/null || true; } | tail -1 | cut -f1)
SIZE=$(( $(du -sb .gpu | cut -f1) + TREE ))
echo "travels: $SIZE bytes (.gpu/ and the tree without the other training runs)"
[ "$SIZE" -lt 66000000 ] || { echo "over the 64 MiB the device takes"; exit 1; }
[ "$DRY_RUN_S" -gt 0 ] || exit 0
DRY=$(mktemp -d)
BRAINFORGE_CACHE=$DRY/cache $PY scripts/device/unpack.py .gpu/data.tar.xz
HEAD=$DRY/cache/$($PY -c "import json; print(json.load(open('$DRY/cache/manifest.json'))['head'])")
# Names, sizes and times: an entry rebuilt under its own name (an unreadable one is) changes too.
listing() { (cd "$DRY/cache" && find . -type f -printf '%P %s %T@\n' | sort); }
BEFORE=$(listing)
BRAINFORGE_CACHE=$DRY/cache ACCEL=cpu WORKERS=1 $PY scripts/device/train.py "$(date +%s)" "$DRY_RUN_S" "$DRY/run" \
  "$HEAD" "$ARGS_FILE" 2>&1 | tee "$DRY/train.log"
AFTER=$(listing)
[ -f "$DRY/run/model.safetensors" ] || { echo "dry run: no model exported ($DRY)"; exit 1; }
! grep -q "is unreadable" "$DRY/train.log" || { echo "dry run: a cache entry was unreadable ($DRY/train.log)"; exit 1; }
[ "$BEFORE" == "$AFTER" ] || { echo "dry run: the cache changed (an entry was rebuilt):"; diff <(echo "$BEFORE") <(echo "$AFTER"); exit 1; }
rm -rf "$DRY"
echo "dry run: model exported, nothing rebuilt"
