#!/bin/bash
# The device takes the working tree (tracked and untracked files) and .gpu/ up to 64 MiB together; the
# committed training runs alone are about 270 MB. Move every training_runs/ entry but one run's folder out
# of the checkout for the device call, and back after it:
#   bash scripts/device/set_aside.sh away training_runs/default-v30-gpu   # before the device call
#   bash scripts/device/set_aside.sh back                                 # after it (also after a crash)
# ASIDE (default: ../brainforge-training-runs-aside, beside the checkout) holds them meanwhile.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
ASIDE=${ASIDE:-../brainforge-training-runs-aside}
case "${1:-}" in
  away)
    KEEP=training_runs/$(basename "${2:?name the run folder to keep, e.g. training_runs/default-v30-gpu}")
    [ -d "$KEEP" ] || { echo "no folder $KEEP"; exit 1; }
    [ ! -e "$ASIDE" ] || { echo "$ASIDE exists: bring it back first (set_aside.sh back)"; exit 1; }
    mkdir -p "$ASIDE"
    for entry in training_runs/* training_runs/.[!.]*; do
      if [ -e "$entry" ] && [ "$entry" != "$KEEP" ]; then mv "$entry" "$ASIDE/"; fi
    done
    echo "set aside in $ASIDE: $(ls -A "$ASIDE" | wc -l) entries; kept $KEEP"
    ;;
  back)
    [ -d "$ASIDE" ] || { echo "nothing set aside ($ASIDE)"; exit 1; }
    for entry in "$ASIDE"/* "$ASIDE"/.[!.]*; do
      if [ -e "$entry" ]; then mv -n "$entry" training_runs/; fi
    done
    rmdir "$ASIDE"
    echo "brought back; git status of training_runs:"
    git status --short training_runs | sed -n 1,10p
    ;;
  *) echo "usage: set_aside.sh away RUN_FOLDER | back"; exit 2 ;;
esac
