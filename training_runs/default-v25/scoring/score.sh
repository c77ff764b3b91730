#!/usr/bin/env bash
# Scoring of default-v25 and soup_v22_v25 against default-v22, as training_runs/default-v25/decision_rule.md says.
set -euo pipefail
cd /work/main
export BRAINFORGE_CACHE=/work/cache
M=/work/scratch/v25
PY=.venv/bin/python
rm -rf $M/default-v22 && cp -r src/brainforge/data/default_model $M/default-v22
[ -d $M/soup_v22_v25 ] || $PY scripts/model_soup.py $M/soup_v22_v25 $M/default-v22 $M/default-v25
MODELS=$M/default-v22,$M/default-v25,$M/soup_v22_v25
for S in 3800 3900; do
  /usr/bin/time -f "%e s" $PY benchmarks/heldout_forward.py --model $MODELS --forwards shift15,shift25,skull0.01,sphere,lower25 \
     --n 100 --seed $S --out $M/heldout$S > $M/heldout_seed$S.log 2>&1
done
/usr/bin/time -f "%e s" $PY benchmarks/reference_head.py --model $MODELS --n 200 --seed 4300 --out $M/refhead4300 > $M/reference_head_seed4300.log 2>&1
for C in default-v25 soup_v22_v25; do
  echo "== $C - default-v22"
  for SETS in shift15,shift25,skull0.01,sphere lower25; do
    $PY scripts/pool_paired.py --sets $SETS $M/heldout3800/report/samples.csv:default-v22:$C $M/heldout3900/report/samples.csv:default-v22:$C
  done
done > $M/pooled_3800_3900.log 2>&1
echo done
