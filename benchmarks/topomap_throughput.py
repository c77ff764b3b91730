"""Scalp maps per second: one precomputed matrix product against scipy's griddata per map.

Run: ``.venv/bin/python benchmarks/topomap_throughput.py [--maps 20000] [--size 64]``

Interpolates random 64-channel EEG (10-10 positions) onto a size x size grid
with each method: our way (the montage's HW x C matrix applied to a batch of
maps with one torch matrix product, float32, all cores) and the reference way
(``scipy.interpolate.griddata`` for linear and cubic, ``RBFInterpolator`` for
the thin-plate spline, called once per map). Also times building each matrix
(once per montage). The last line is one JSON object. Goal: >= 50,000 maps/s.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=20000, help="Maps in the timed batch (ours).")
    parser.add_argument("--reference-maps", type=int, default=50, help="Maps interpolated one by one (reference).")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    from scipy.interpolate import RBFInterpolator, griddata

    from brainforge.anatomy import get_electrodes
    from brainforge.topomap import INTERPOLATION_METHODS, Montage, Topomap
    from brainforge.topomap.interpolation import grid_points

    electrodes = get_electrodes("1010-64")
    montage = Montage(tuple(electrodes.names), electrodes.pos)
    grid = grid_points(args.size)
    rng = np.random.default_rng(0)
    eeg = torch.from_numpy(rng.standard_normal((args.maps, montage.n_channels)).astype(np.float32))
    rows = []
    for method in INTERPOLATION_METHODS:
        start = time.perf_counter()
        topomap = Topomap(montage, method, args.size)
        build_s = time.perf_counter() - start
        topomap(eeg[:100])  # warm-up
        repeats = []
        for _ in range(3):
            start = time.perf_counter()
            topomap(eeg)
            repeats.append(time.perf_counter() - start)
        ours = args.maps / min(repeats)
        values = eeg[: args.reference_maps].double().numpy()
        start = time.perf_counter()
        for row in values:
            if method == "rbf":
                RBFInterpolator(topomap.points, row, kernel="thin_plate_spline")(grid)
            else:
                griddata(topomap.points, row, grid, method=method)
        reference = len(values) / (time.perf_counter() - start)
        rows.append({
            "method": method, "build_ms": 1e3 * build_s, "maps_per_s": ours,
            "reference_maps_per_s": reference, "ratio": ours / reference,
        })  # fmt: skip
    print(f"Scalp maps {args.size}x{args.size} from {montage.n_channels} channels, {torch.get_num_threads()} threads")
    print(f"{'method':8s} {'build ms':>9s} {'ours maps/s':>12s} {'per-map scipy':>14s} {'ratio':>8s}")
    for r in rows:
        print(
            f"{r['method']:8s} {r['build_ms']:9.1f} {r['maps_per_s']:12,.0f} {r['reference_maps_per_s']:14,.0f} "
            f"{r['ratio']:8,.0f}x"
        )
    print(json.dumps({"benchmark": "topomap_throughput", "size": args.size, "goal_maps_per_s": 50000, "rows": rows}))


if __name__ == "__main__":
    main()
