#!/usr/bin/env bash
# Scoring of default-v30-gpu and soup_gpu (soup_v27_v28 + default-v30-gpu) against soup_v27_v28, as
# training_runs/default-v30-gpu/decision_rule.md says, once the device run's weights are committed in
# training_runs/default-v30-gpu. The baseline comes from git and the soup is rebuilt, so this runs on a fresh machine.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export BRAINFORGE_CACHE=${BRAINFORGE_CACHE:-/work/cache}
M=${M:-/work/scratch/v30gpu}
PY=.venv/bin/python
[ -f training_runs/default-v30-gpu/model.safetensors ] || { echo "no default-v30-gpu weights committed yet"; exit 1; }
# The rule: a run that exported its start (no epoch beat it: metrics epoch -1) is recorded as tried, not scored.
$PY -c "import json, sys; sys.exit(json.load(open('training_runs/default-v30-gpu/config.json'))['metrics']['epoch'] < 0)" \
  || { echo "default-v30-gpu exported its start (no epoch beat it): tried, not scored"; exit 1; }
mkdir -p $M
rm -rf $M/soup_v27_v28 && mkdir -p $M/soup_v27_v28
# The bundled default when the rule was written: 134a81f's, byte for byte the rule's commit's (5cbd704).
for f in config.json model.safetensors; do
  git show 134a81f:src/brainforge/data/default_model/$f > $M/soup_v27_v28/$f
done
rm -rf $M/default-v30-gpu && cp -r training_runs/default-v30-gpu $M/default-v30-gpu
rm -rf $M/soup_gpu && $PY scripts/model_soup.py $M/soup_gpu $M/soup_v27_v28 $M/default-v30-gpu
MODELS=$M/soup_v27_v28,$M/default-v30-gpu,$M/soup_gpu
for S in 5900 6000; do
  /usr/bin/time -f "%e s" $PY benchmarks/heldout_forward.py --model $MODELS --forwards shift15,shift25,skull0.01,sphere,lower25 \
     --n 100 --seed $S --out $M/heldout$S > $M/heldout_seed$S.log 2>&1
done
/usr/bin/time -f "%e s" $PY benchmarks/reference_head.py --model $MODELS --n 200 --seed 4800 --out $M/refhead4800 > $M/reference_head_seed4800.log 2>&1
for C in default-v30-gpu soup_gpu; do
  echo "== $C - soup_v27_v28"
  for SETS in shift15,shift25,skull0.01,sphere lower25; do
    $PY scripts/pool_paired.py --sets $SETS $M/heldout5900/report/samples.csv:soup_v27_v28:$C $M/heldout6000/report/samples.csv:soup_v27_v28:$C
  done
done > $M/pooled_5900_6000.log 2>&1
echo done
