#!/usr/bin/env bash
# What a `kill -9` of a two-rank DDP run leaves behind: start tests/_ddp_training.py (two CPU
# ranks, one DataLoader worker each, started by a forkserver) in a session of its own, wait
# until the workers run, kill both ranks with SIGKILL, then count the processes of that session
# (forkservers and their workers) still alive 1, 4, 10 and 20 s later. Survivors are listed,
# then killed. Only the run's own session is counted and killed.
#
# Run from the repository root: bash scripts/ddp_kill9_orphans.sh
set -u
out=$(mktemp -d)
setsid .venv/bin/python tests/_ddp_training.py "$out/run" 60 > "$out/log.txt" 2>&1 &
leader=$!
sleep 1
session=$(ps -o sid= -p "$leader" | tr -d ' ')
in_session() { pgrep -s "$session" "$@"; }
for _ in $(seq 1 180); do
    sleep 1
    if in_session -f "forkserver import main" > /dev/null && [ "$(in_session -f "$out/run" | wc -l)" -ge 2 ]; then
        break
    fi
done
sleep 5
ranks=$(in_session -f "$out/run" | tr '\n' ' ')
echo "session $session: ranks $ranks; forkserver processes: $(in_session -f 'forkserver import main' | wc -l)"
kill -9 $ranks
elapsed=0
for wait_s in 1 3 6 10; do
    sleep $wait_s
    elapsed=$((elapsed + wait_s))
    echo "${elapsed} s after kill -9: $(in_session | wc -l) processes of the run alive"
done
survivors=$(in_session | tr '\n' ' ')
if [ -n "$survivors" ]; then
    ps -o pid,ppid,rss,cmd -p $survivors | cut -c1-90
    kill -9 $survivors
fi
rm -rf "$out"
