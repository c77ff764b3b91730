"""Wall time and disk use of the full 998-region spike campaign, from a measured slice.

Run: ``.venv/bin/python benchmarks/nmm_campaign.py [--nodes 16] [--duration 50] [--connectome PATH]``

Runs the real campaign (fast engine, local Dask cluster, one worker per
core, spikes extracted while simulating, written to Zarr) for the first
``--nodes`` nodes x DeepSIF's 3 settings x ``--duration`` s, then
extrapolates linearly to every node of the connectome. The table says which
figures are measured and which extrapolated; the last line is one JSON object.

Besides wall time it measures the CPU seconds of this process and its Dask
workers: on a machine shared with other work, CPU seconds / cores estimates
the wall time the campaign would take with the cores to itself.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import warnings
from pathlib import Path


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children (the Dask workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


DEFAULT_998 = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepsif" / "connectivity_998.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connectome", default=str(DEFAULT_998))
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--duration", type=float, default=50.0, help="simulated seconds per job")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from brainforge.anatomy import read_connectivity
    from brainforge.nmm.campaign import CampaignConfig, run_campaign

    if not Path(args.connectome).is_file() and not args.connectome.startswith("tvb"):
        raise SystemExit(f"Connectome not found: {args.connectome} (pass --connectome tvb76 to run without it).")
    n_nodes = read_connectivity(args.connectome).n_nodes
    config = CampaignConfig(connectome=args.connectome, duration_ms=args.duration * 1000.0)
    cpu_start = cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="brainforge-campaign-") as folder:
        summary = run_campaign(config, Path(folder) / "lib.zarr", nodes=range(args.nodes), progress=False)
    cpu = cpu_seconds() - cpu_start
    cores = os.cpu_count() or 1
    scale = n_nodes / args.nodes
    cpu_hours = cpu * scale / cores / 3600
    jobs = summary.jobs_run
    hours = summary.wall_seconds * scale / 3600
    # Background windows are capped library-wide (n_background), so only spike bytes scale with jobs.
    window_bytes = 500 * n_nodes * 4
    spike_bytes = max(0, summary.bytes_on_disk - min(jobs, config.n_background) * window_bytes)
    total_bytes = spike_bytes * scale + config.n_background * window_bytes
    figures = summary.as_dict()
    print(f"{'figure':52} {'value':>14}")
    print(f"{'measured: jobs (nodes x 3 settings x ' + f'{args.duration:g} s)':52} {jobs:14d}")
    print(f"{'measured: wall time, s':52} {summary.wall_seconds:14.1f}")
    print(f"{'measured: CPU seconds (this process and its workers)':52} {cpu:14.1f}")
    print(f"{'measured: bytes on disk':52} {summary.bytes_on_disk:14d}")
    print(f"{'measured: spikes':52} {figures['spikes']:14d}")
    print(f"{'measured: nodes with >= 1 spike':52} {figures['nodes_with_spikes_fraction']:14.2f}")
    print(f"{f'extrapolated: all {n_nodes} nodes, wall time, h':52} {hours:14.2f}")
    print(f"{f'extrapolated: all {n_nodes} nodes, CPU seconds / {cores} cores, h':52} {cpu_hours:14.2f}")
    print(f"{f'extrapolated: all {n_nodes} nodes, GB on disk':52} {total_bytes / 1e9:14.2f}")
    print(
        json.dumps(
            {
                "connectome": Path(args.connectome).name,
                "n_nodes": n_nodes,
                "measured_nodes": args.nodes,
                "duration_s": args.duration,
                "measured": figures,
                "measured_cpu_seconds": round(cpu, 1),
                "cores": cores,
                "extrapolated_hours": round(hours, 2),
                "extrapolated_cpu_hours_per_core": round(cpu_hours, 2),
                "extrapolated_gb": round(total_bytes / 1e9, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
