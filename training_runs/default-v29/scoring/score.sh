#!/usr/bin/env bash
# Scoring of default-v29 and soup3 (default-v27 + default-v28 + default-v29) against soup_v27_v28,
# as training_runs/default-v29/decision_rule.md says. Every model is rebuilt from git, so this runs on a fresh machine.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export BRAINFORGE_CACHE=${BRAINFORGE_CACHE:-/work/cache}
M=${M:-/work/scratch/v29}
PY=.venv/bin/python
mkdir -p $M
from_git() {  # from_git COMMIT FOLDER_IN_REPO OUT
  rm -rf "$3" && mkdir -p "$3"
  for f in config.json model.safetensors; do git show "$1:$2/$f" > "$3/$f"; done
}
from_git 6fd72e5 src/brainforge/data/default_model $M/soup_v27_v28   # the bundled default when the rule was written
from_git cc05ebe src/brainforge/data/default_model $M/default-v27
rm -rf $M/default-v28 && cp -r training_runs/default-v28 $M/default-v28
rm -rf $M/default-v29 && cp -r training_runs/default-v29 $M/default-v29
[ -d $M/soup3 ] || $PY scripts/model_soup.py $M/soup3 $M/default-v27 $M/default-v28 $M/default-v29
MODELS=$M/soup_v27_v28,$M/default-v29,$M/soup3
for S in 5700 5800; do
  /usr/bin/time -f "%e s" $PY benchmarks/heldout_forward.py --model $MODELS --forwards shift15,shift25,skull0.01,sphere,lower25 \
     --n 100 --seed $S --out $M/heldout$S > $M/heldout_seed$S.log 2>&1
done
/usr/bin/time -f "%e s" $PY benchmarks/reference_head.py --model $MODELS --n 200 --seed 4700 --out $M/refhead4700 > $M/reference_head_seed4700.log 2>&1
for C in default-v29 soup3; do
  echo "== $C - soup_v27_v28"
  for SETS in shift15,shift25,skull0.01,sphere lower25; do
    $PY scripts/pool_paired.py --sets $SETS $M/heldout5700/report/samples.csv:soup_v27_v28:$C $M/heldout5800/report/samples.csv:soup_v27_v28:$C
  done
done > $M/pooled_5700_5800.log 2>&1
echo done
