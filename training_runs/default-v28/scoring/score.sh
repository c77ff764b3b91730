#!/usr/bin/env bash
# Scoring of default-v28 and soup_v27_v28 against default-v27, as training_runs/default-v28/decision_rule.md says.
set -euo pipefail
cd /work/main
export BRAINFORGE_CACHE=/work/cache
M=/work/scratch/v28
PY=.venv/bin/python
rm -rf $M/default-v27 && cp -r src/brainforge/data/default_model $M/default-v27
[ -d $M/soup_v27_v28 ] || $PY scripts/model_soup.py $M/soup_v27_v28 $M/default-v27 $M/default-v28
MODELS=$M/default-v27,$M/default-v28,$M/soup_v27_v28
for S in 5500 5600; do
  /usr/bin/time -f "%e s" $PY benchmarks/heldout_forward.py --model $MODELS --forwards shift15,shift25,skull0.01,sphere,lower25 \
     --n 100 --seed $S --out $M/heldout$S > $M/heldout_seed$S.log 2>&1
done
/usr/bin/time -f "%e s" $PY benchmarks/reference_head.py --model $MODELS --n 200 --seed 4600 --out $M/refhead4600 > $M/reference_head_seed4600.log 2>&1
for C in default-v28 soup_v27_v28; do
  echo "== $C - default-v27"
  for SETS in shift15,shift25,skull0.01,sphere lower25; do
    $PY scripts/pool_paired.py --sets $SETS $M/heldout5500/report/samples.csv:default-v27:$C $M/heldout5600/report/samples.csv:default-v27:$C
  done
done > $M/pooled_5500_5600.log 2>&1
echo done
