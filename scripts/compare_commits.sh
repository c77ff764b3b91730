#!/usr/bin/env bash
# Same commands at OLD_COMMIT and at this checkout: are the stored test sets and the benchmark scores bit for bit the same?
# Prints, per test set, how many arrays are bit-identical, and per solver whether every metric of samples.csv is.
set -euo pipefail
OLD=${1:?usage: scripts/compare_commits.sh OLD_COMMIT}; REPO=$(cd "$(dirname "$0")/.." && pwd); OUT=${OUT:-${TMPDIR:-/tmp}/brainforge-compare-$OLD}; WT=$(mktemp -d)/old
rm -rf "$OUT" && mkdir -p "$OUT"
git -C "$REPO" worktree add -f "$WT" "$OLD" >/dev/null 2>&1
for side in old new; do
  src=$REPO/src; [ $side = old ] && src=$WT/src
  cd /tmp
  PYTHONPATH=$src $REPO/.venv/bin/python -m brainforge.cli synth --n 40 --sources 1,3 --deep-share 0.2 --seed 5 --out $OUT/$side.zarr >/dev/null
  PYTHONPATH=$src $REPO/.venv/bin/python -m brainforge.cli synth --n 40 --forward-mismatch shift:25 --seed 6 --out $OUT/$side-shift.zarr >/dev/null
done
for side in old new; do
  src=$REPO/src; [ $side = old ] && src=$WT/src
  cd /tmp
  PYTHONPATH=$src $REPO/.venv/bin/python -m brainforge.cli benchmark --solvers sloreta,eloreta,lcmv,$REPO/src/brainforge/data/default_model \
     --test $OUT/new.zarr --test $OUT/new-shift.zarr --channels 16 --bootstrap 50 --no-progress --out $OUT/bench-$side >/dev/null
done
$REPO/.venv/bin/python - "$OUT" <<'PY'
import sys, zarr, numpy as np, pandas as pd
from pathlib import Path
out = Path(sys.argv[1])
for name in ("", "-shift"):
    a, b = zarr.open_group(str(out / f"old{name}.zarr"), mode="r"), zarr.open_group(str(out / f"new{name}.zarr"), mode="r")
    keys = sorted(k for k, _ in a.arrays())
    same = [k for k in keys if np.array_equal(a[k][:], b[k][:], equal_nan=a[k].dtype.kind == "f")]
    print(f"test set{name or ' (template)'}: {len(same)}/{len(keys)} arrays bit-identical", [k for k in keys if k not in same])
old = pd.read_csv(out / "bench-old" / "samples.csv"); new = pd.read_csv(out / "bench-new" / "samples.csv")
num = [c for c in old.columns if c in new.columns and pd.api.types.is_numeric_dtype(old[c]) and "ms" not in c and "seconds" not in c]
print("benchmark samples:", len(old), "rows;", "columns compared:", len(num))
for solver, group in old.groupby("solver"):
    o = group[num].to_numpy(float); n = new[new.solver == solver][num].to_numpy(float)
    equal = np.array_equal(o, n, equal_nan=True)
    print(f"  {solver}: bit-identical={equal}" + ("" if equal else f", max |diff| {np.nanmax(np.abs(o - n)):.3g}"))
PY
git -C "$REPO" worktree remove --force "$WT"
