#!/usr/bin/env bash
# What a `kill -9` of a two-rank DDP run leaves behind: start tests/_ddp_training.py (two CPU
# ranks, one DataLoader worker each, started by a forkserver), wait until the workers run, kill
# both ranks with SIGKILL, then count the forkserver processes (servers and their workers) that
# are still alive 1, 4, 10 and 20 s later. Survivors are listed, then killed.
#
# Run from the repository root: bash scripts/ddp_kill9_orphans.sh
set -u
out=$(mktemp -d)
setsid .venv/bin/python tests/_ddp_training.py "$out/run" 60 > "$out/log.txt" 2>&1 &
for _ in $(seq 1 180); do
    sleep 1
    if pgrep -f "forkserver import main" > /dev/null && [ "$(pgrep -f "$out/run" | wc -l)" -ge 2 ]; then
        break
    fi
done
sleep 5
ranks=$(pgrep -f "$out/run" | tr '\n' ' ')
servers=$(pgrep -f "forkserver import main" | tr '\n' ' ')
echo "ranks: $ranks; forkserver processes: $(echo $servers | wc -w)"
kill -9 $ranks
elapsed=0
for wait_s in 1 3 6 10; do
    sleep $wait_s
    elapsed=$((elapsed + wait_s))
    alive=$(for pid in $servers $(pgrep -f "forkserver import main"); do echo $pid; done | sort -u | xargs -r ps -o pid= -p | wc -l)
    echo "${elapsed} s after kill -9: $alive forkserver processes alive"
done
survivors=$(pgrep -f "forkserver import main" | tr '\n' ' ')
if [ -n "$survivors" ]; then
    ps -o pid,ppid,rss,cmd -p $survivors | cut -c1-90
    kill -9 $survivors
fi
rm -rf "$out"
