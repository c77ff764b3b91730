#!/usr/bin/env bash
# Scoring of default-v27 and soup_v22_v27 against default-v22, as training_runs/default-v27/decision_rule.md says.
set -euo pipefail
cd /work/main
export BRAINFORGE_CACHE=/work/cache
M=/work/scratch/v27
PY=.venv/bin/python
rm -rf $M/default-v22 && cp -r src/brainforge/data/default_model $M/default-v22
[ -d $M/soup_v22_v27 ] || $PY scripts/model_soup.py $M/soup_v22_v27 $M/default-v22 $M/default-v27
MODELS=$M/default-v22,$M/default-v27,$M/soup_v22_v27
for S in 5300 5400; do
  /usr/bin/time -f "%e s" $PY benchmarks/heldout_forward.py --model $MODELS --forwards shift15,shift25,skull0.01,sphere,lower25 \
     --n 100 --seed $S --out $M/heldout$S > $M/heldout_seed$S.log 2>&1
done
/usr/bin/time -f "%e s" $PY benchmarks/reference_head.py --model $MODELS --n 200 --seed 4500 --out $M/refhead4500 > $M/reference_head_seed4500.log 2>&1
for C in default-v27 soup_v22_v27; do
  echo "== $C - default-v22"
  for SETS in shift15,shift25,skull0.01,sphere lower25; do
    $PY scripts/pool_paired.py --sets $SETS $M/heldout5300/report/samples.csv:default-v22:$C $M/heldout5400/report/samples.csv:default-v22:$C
  done
done > $M/pooled_5300_5400.log 2>&1
echo done
