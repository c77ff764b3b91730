"""What ``--max-cpu-time`` and ``--max-time`` cost per optimizer step: their checks against a training step, same run.

Run: ``.venv/bin/python benchmarks/cpu_budget_check.py [--calls 2000] [--children 2] [--batch 64] [--steps 3]``

``CpuTimeBudget`` and ``WallTimeBudget`` (``--max-time``) check about once per
second of wall time (the first once checked at every step; ``--max-time``
was Lightning's ``Timer``, which under DDP broadcast rank 0's decision, a
pickled bool, over the training's own process group at every step). The
wall-time check under DDP is the all-reduce below alone. On one process the check walks the process tree
(``process_cpu_seconds``: the process, its DataLoader workers, their
waited-for children). Under DDP each rank also sums the ranks' times with one
all-reduce of two float64 values, on the CPU through a gloo group of its own
(so on GPUs it does not wait for the device's queue). This script times, on
this machine:

- ``process_cpu_seconds()`` with ``--children`` live child processes (as
  many as DataLoader workers);
- the all-reduce in a two-rank gloo group (``torch.multiprocessing``), of
  the same two float64 values;
- the broadcast of Lightning's ``Timer`` in the same two ranks
  (``broadcast_object_list`` of one bool, as ``DDPStrategy.broadcast``; on
  GPUs it goes through NCCL and the device, not timed here);
- one training step of the bundled default model at ``--batch`` 1-s,
  64-channel segments (forward, mean squared output, backward, AdamW), the
  thing the check rides on.

Prints the median per call and the check's share of a step (had it run at
every step); the last line is one JSON object. GPU steps are far shorter than
CPU ones: scale the share by the step time of the GPU in question (for
example default-v4's run on one H200, docs/MODEL_CARD.md: 9,932 steps of 256
segments in 695 s, startup and validation included, so at most 70 ms per
step), and the walk grows with the number of workers (``--children``; that
run had 14).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch


def time_process_cpu_seconds(calls: int, children: int) -> float:
    """Median seconds of one ``process_cpu_seconds()`` with ``children`` live children."""
    from brainforge.training.train import process_cpu_seconds

    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(children)]
    try:
        time.sleep(1.0)  # let them start
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            process_cpu_seconds()
            times.append(time.perf_counter() - start)
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
    return float(np.median(times))


def _allreduce_rank(rank: int, port: int, calls: int, out: str) -> None:
    """One rank: time ``calls`` all-reduces of two float64 values in a new gloo group, as CpuTimeBudget does."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    group = dist.new_group(backend="gloo")
    value = torch.tensor([float(rank), 0.5], dtype=torch.float64)
    for _ in range(100):  # warm up
        dist.all_reduce(value, op=dist.ReduceOp.SUM, group=group)
    times = []
    for _ in range(calls):
        value = torch.tensor([float(rank), 0.5], dtype=torch.float64)
        start = time.perf_counter()
        dist.all_reduce(value, op=dist.ReduceOp.SUM, group=group)
        float(value[0])
        times.append(time.perf_counter() - start)
    broadcasts = []
    for index in range(100 + calls):  # Lightning's Timer under DDP, at every step: DDPStrategy.broadcast(should_stop)
        start = time.perf_counter()
        decision = [False]
        dist.broadcast_object_list(decision, src=0)
        if index >= 100:
            broadcasts.append(time.perf_counter() - start)
    if rank == 0:
        with open(out, "w") as file:
            json.dump([float(np.median(times)), float(np.median(broadcasts))], file)
    dist.destroy_process_group()


def time_allreduce(calls: int) -> tuple[float, float]:
    """Median seconds of one all-reduce of two float64 values, and of one bool broadcast, between two CPU ranks."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "median.json")
        torch.multiprocessing.spawn(_allreduce_rank, args=(port, calls, out), nprocs=2, join=True)
        with open(out) as file:
            allreduce_s, broadcast_s = json.load(file)
            return float(allreduce_s), float(broadcast_s)


def time_training_step(batch: int, steps: int) -> float:
    """Median seconds of one training step of the bundled default model (after one untimed step)."""
    from brainforge.models import default_model_dir, load_model
    from brainforge.synthesis.normalize import normalize_eeg

    torch.manual_seed(0)
    model, _ = load_model(default_model_dir())
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    eeg = normalize_eeg(torch.randn(batch, 500, model.montage.n_channels))
    times = []
    for index in range(steps + 1):
        optimizer.zero_grad()
        start = time.perf_counter()
        model(eeg).pow(2).mean().backward()
        optimizer.step()
        if index:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    """Time the checks' parts, Lightning's broadcast and a training step; print the table and a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls of each part of the check")
    parser.add_argument("--children", type=int, default=2, help="live child processes (DataLoader workers)")
    parser.add_argument(
        "--batch", type=int, default=64, help="segments per step (the CLI's default is 32; the default's fine-tunes 64)"
    )
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    args = parser.parse_args()

    from brainforge import set_log_level

    set_log_level("warning")
    load_before = os.getloadavg()[0]
    walk_s = time_process_cpu_seconds(args.calls, args.children)
    allreduce_s, broadcast_s = time_allreduce(args.calls)
    step_s = time_training_step(args.batch, args.steps)
    load_after = os.getloadavg()[0]
    check_s = walk_s + allreduce_s
    print(
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; {args.calls} calls per part, "
        f"{args.children} live children, training batch {args.batch}; load average {load_before:.2f} before, "
        f"{load_after:.2f} after"
    )
    print(f"{'part':<44} {'median, ms':>11} {'share of a step':>16}")
    rows = [
        (f"process_cpu_seconds ({args.children} children)", walk_s),
        ("all-reduce of two float64, 2 gloo ranks", allreduce_s),
        ("the CPU-time check under DDP (both)", check_s),
        ("Lightning Timer's broadcast of a bool, 2 ranks", broadcast_s),
        (f"training step, default model, batch {args.batch}", step_s),
    ]
    for name, seconds in rows:
        print(f"{name:<44} {seconds * 1e3:>11.3f} {seconds / step_s:>16.2e}")
    result = {
        "calls": args.calls,
        "children": args.children,
        "batch": args.batch,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [load_before, load_after],
        "process_cpu_seconds_s": walk_s,
        "allreduce_s": allreduce_s,
        "lightning_timer_broadcast_s": broadcast_s,
        "check_s": check_s,
        "training_step_s": step_s,
        "check_share_of_step": check_s / step_s,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
