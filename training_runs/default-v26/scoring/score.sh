#!/usr/bin/env bash
# Scoring of router26 against default-v22, as training_runs/default-v26/decision_rule.md says.
set -euo pipefail
cd /work/main
export BRAINFORGE_CACHE=/work/cache
M=/work/scratch
PY=.venv/bin/python
rm -rf $M/default-v22 && cp -r src/brainforge/data/default_model $M/default-v22
[ -d $M/v26-last ] || $PY scripts/export_last_epoch.py $M/default-v26 $M/v26-last
[ -d $M/soup_v22_v26 ] || $PY scripts/model_soup.py $M/soup_v22_v26 $M/default-v22 $M/v26-last
[ -d $M/router26 ] || $PY scripts/combine_by_channel_count.py $M/router26 $M/default-v22 $M/soup_v22_v26 32
MODELS=$M/default-v22,$M/router26
for S in 5000 5100; do
  /usr/bin/time -f "%e s" $PY benchmarks/heldout_forward.py --model $MODELS --forwards shift15,shift25,skull0.01,sphere,lower25 \
     --channel-counts 16,21,32 --n 100 --seed $S --out $M/heldout$S > $M/heldout_seed$S.log 2>&1
done
/usr/bin/time -f "%e s" $PY benchmarks/reference_head.py --model $MODELS --n 200 --seed 4400 --out $M/refhead4400 > $M/reference_head_seed4400.log 2>&1
for SETS in shift15,shift25,skull0.01,sphere lower25; do
  $PY scripts/pool_paired.py --sets $SETS $M/heldout5000/report/samples.csv:default-v22:router26 $M/heldout5100/report/samples.csv:default-v22:router26
done > $M/pooled_5000_5100.log 2>&1
echo done
