# The bundled default and sLORETA on the data of the SNR fix (sensor SNR measured on the
# average-referenced EEG), on the seeds default-v29 was scored on: bash training_runs/snr-fix-check/score.sh
# The same scoring as background-fix-check's, into its own folder.
M=${M:-/work/scratch/snrfix} exec bash "$(git rev-parse --show-toplevel)/training_runs/background-fix-check/score.sh"
