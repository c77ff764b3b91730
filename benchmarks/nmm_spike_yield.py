"""Spike yield of the published extraction rules per connectome.

Run: ``.venv/bin/python benchmarks/nmm_spike_yield.py [--nodes 12] [--duration 20] [--only tvb192]``

For each connectome (tvb-data's 76 and 192 nodes, as published and with the
coupling normalized to the 998 connectome's mean in-degree, and with
their largest in-degree matched to the 998's; DeepSIF's 998 when its
folder exists) a campaign on ``--nodes`` evenly spaced nodes x 3 settings
measures the fraction of nodes with at least one isolated spike and the
spikes per node. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np

DEFAULT_998 = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepsif" / "connectivity_998.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=12)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--only", default="", help="Comma-separated connectomes to run (tvb76,tvb192,998; all).")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from brainforge.anatomy import read_connectivity
    from brainforge.nmm.campaign import CampaignConfig, run_campaign

    cases: list[tuple[str, bool | str]] = [
        ("tvb76", False), ("tvb76", "mean"), ("tvb76", "max"), ("tvb192", False), ("tvb192", "mean"), ("tvb192", "max"),
    ]  # fmt: skip
    if DEFAULT_998.is_file():
        cases.append((str(DEFAULT_998), False))
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in cases if c[0] in wanted or ("998" in wanted and c[0] == str(DEFAULT_998))]
    rows = []
    for connectome, normalize in cases:
        n_nodes = read_connectivity(connectome).n_nodes
        nodes = np.linspace(0, n_nodes - 1, args.nodes).round().astype(int).tolist()
        config = CampaignConfig(
            connectome=connectome, duration_ms=args.duration * 1000, normalize_coupling=normalize, n_background=0
        )
        with tempfile.TemporaryDirectory() as folder:
            summary = run_campaign(config, Path(folder) / "lib.zarr", nodes=nodes, scheduler="sync", progress=False)
        counts = summary.spikes_per_node[nodes]
        name = Path(connectome).stem if connectome.endswith(".zip") else connectome
        rows.append((name, normalize, summary.spike_yield, counts.mean() / (3 * args.duration) * 50))
    print(f"{'connectome':22} {'coupling':>10} {'nodes with spikes':>18} {'spikes per node, setting, 50 s':>31}")
    for name, normalize, fraction, per_node in rows:
        print(f"{name:22} {normalize or 'published':>10} {fraction:18.2f} {per_node:31.1f}")
    print(json.dumps({"benchmark": "nmm_spike_yield", "nodes": args.nodes, "duration_s": args.duration,
                      "rows": [{"connectome": n, "normalized": z, "nodes_with_spikes": round(f, 3),
                                "spikes_per_node_per_50s_setting": round(p, 2)} for n, z, f, p in rows]}))  # fmt: skip


if __name__ == "__main__":
    main()
