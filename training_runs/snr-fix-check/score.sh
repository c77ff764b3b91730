# The bundled default and sLORETA on the data of the SNR fix (sensor SNR measured on the
# average-referenced EEG), on the seeds default-v29 was scored on: bash training_runs/snr-fix-check/score.sh
set -u
cd "$(git rev-parse --show-toplevel)"
export BRAINFORGE_CACHE=${BRAINFORGE_CACHE:-/work/cache}
PY=.venv/bin/python
M=${M:-/work/scratch/snrfix}
mkdir -p $M
for S in 5800 5700; do
  /usr/bin/time -f "%e s" $PY benchmarks/heldout_forward.py --model default --forwards shift15,shift25,skull0.01,sphere,lower25 \
     --n 100 --seed $S --out $M/heldout$S > $M/heldout_seed$S.log 2>&1
done
/usr/bin/time -f "%e s" $PY benchmarks/reference_head.py --model default --n 200 --seed 4700 --out $M/refhead4700 > $M/reference_head_seed4700.log 2>&1
rm -rf $M/demo; /usr/bin/time -f "%e s" .venv/bin/brainforge demo --out $M/demo > $M/demo.log 2>&1
echo finished > $M/done
