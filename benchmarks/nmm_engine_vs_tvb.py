"""The fast Jansen-Rit engine against TVB itself, side by side, on one core.

Run: ``.venv/bin/python benchmarks/nmm_engine_vs_tvb.py [--deepsif DIR]``

For each connectome (tvb-data's 76 nodes; DeepSIF's 998 when its folder
exists) both engines simulate the same model with DeepSIF's first setting
at dt 1 ms. TVB runs one simulation; the fast engine runs a batch of 8 on
one thread (``numba.set_num_threads(1)``). The table gives wall seconds per
simulated second and per simulation, and their ratio; also the ratio of CPU
seconds (``time.process_time``), steadier than wall time on a shared machine.
The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

DEFAULT_DEEPSIF = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepsif"


def per_sim_second_tvb(conn, simulated_ms: float) -> tuple[float, float]:
    """Return wall and CPU seconds per simulated second of TVB."""
    from brainforge.nmm.tvb_backend import simulate_tvb

    list(simulate_tvb(conn, 1, 0.087, 1.0, 50.0))  # import and configure once
    start, cpu = time.perf_counter(), time.process_time()
    for _ in simulate_tvb(conn, 1, 0.087, 1.0, simulated_ms, seed=1):
        pass
    seconds = simulated_ms / 1000
    return (time.perf_counter() - start) / seconds, (time.process_time() - cpu) / seconds


def per_sim_second_fast(conn, simulated_ms: float, batch: int) -> tuple[float, float]:
    """Return wall and CPU seconds per simulated second and per simulation of the fast engine."""
    import numba

    from brainforge.nmm.engine import FastJansenRit

    numba.set_num_threads(1)
    engine = FastJansenRit(conn, 1.0, block=batch)
    nodes = np.arange(batch) % conn.n_nodes
    list(engine.simulate(nodes, [0.087] * batch, [1.0] * batch, 20.0))  # compile
    start, cpu = time.perf_counter(), time.process_time()
    for _ in engine.simulate(nodes, [0.087] * batch, [1.0] * batch, simulated_ms, seeds=nodes):
        pass
    seconds = simulated_ms / 1000 * batch
    return (time.perf_counter() - start) / seconds, (time.process_time() - cpu) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deepsif", type=Path, default=DEFAULT_DEEPSIF)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from brainforge.anatomy import read_connectivity

    cases = [("tvb76", read_connectivity("tvb76"), 10_000.0, 20_000.0)]
    zip998 = args.deepsif / "connectivity_998.zip"
    if zip998.is_file():
        cases.append(("deepsif998", read_connectivity(zip998), 1_000.0, 5_000.0))
    rows = []
    for name, conn, tvb_ms, fast_ms in cases:
        tvb, tvb_cpu = per_sim_second_tvb(conn, tvb_ms)
        fast, fast_cpu = per_sim_second_fast(conn, fast_ms, args.batch)
        rows.append((name, conn.n_nodes, tvb, fast, tvb / fast, tvb_cpu / fast_cpu))
    print(f"{'connectome':12} {'nodes':>5} {'TVB s/sim-s':>12} {'fast s/sim-s':>13} {'ratio':>7} {'CPU ratio':>10}")
    for name, n, tvb, fast, ratio, cpu_ratio in rows:
        print(f"{name:12} {n:5d} {tvb:12.3f} {fast:13.4f} {ratio:6.0f}x {cpu_ratio:9.0f}x")
    print(
        f"(wall seconds per simulated second and per simulation; both on one core; fast engine batch of {args.batch};"
        " CPU ratio: the same with CPU seconds)"
    )
    print(
        json.dumps(
            {
                name: {
                    "nodes": n,
                    "tvb_s_per_sim_s": round(tvb, 3),
                    "fast_s_per_sim_s": round(fast, 4),
                    "ratio": round(ratio, 1),
                    "cpu_ratio": round(cpu_ratio, 1),
                }
                for name, n, tvb, fast, ratio, cpu_ratio in rows
            }
        )
    )


if __name__ == "__main__":
    main()
