"""Probe where the held-out peak-centre error comes from: forward mismatch, noise or the estimate.

Usage: BRAINFORGE_CACHE=... python scripts/error_floor_probe.py [SAMPLES_CSV]

1. For each held-out forward model (``brainforge.evaluation.heldout``), every
   region's noise-free topography (average reference) is matched against the
   template head's (absolute correlation), as a perfect single-region scan
   fitted on the template would do; prints the distance from the true region
   to the best-matching one (median, mean, share on the region, share within
   8 mm). This is what the forward mismatch alone costs such a scan.
2. With ``SAMPLES_CSV`` (a ``samples.csv`` or ``.csv.gz`` that
   ``benchmarks/heldout_forward.py`` writes), prints each solver's median
   64-channel peak-centre error by sensor-SNR band, number of patches and
   depth.

Measured 2026-12-06 (``training_runs/default-v16/scoring/samples_seed2300.csv.gz``):
the scan's median is 0.0 mm on the cap shifted 15 mm, the skull at 0.01 S/m
and the sphere, 12.6 mm on the cap shifted 25 mm; default-v12's median is
11.2, 10.4 and 11.9 mm at 5-10, 10-15 and 15-20 dB sensor SNR (sLORETA 18.8,
19.7, 20.0).
"""

from __future__ import annotations

import csv
import gzip
import statistics
import sys
from collections import defaultdict

import numpy as np


def unit_topographies(head) -> np.ndarray:
    """Return the head model's average-referenced region topographies (channels, regions) at unit norm."""
    leadfield = head.average_reference().region_leadfield
    return leadfield / np.linalg.norm(leadfield, axis=0)


def scan_errors() -> None:
    """Print the template scan's error on each held-out forward model."""
    from brainforge import set_log_level
    from brainforge.anatomy import make_head_model
    from brainforge.evaluation.heldout import DEFAULT_HELDOUT_FORWARDS, HELDOUT_FORWARDS

    set_log_level("warning")
    template = make_head_model("1010-64")
    distance_mm = template.region_distance_mm
    template_topographies = unit_topographies(template)
    print("| forward | median, mm | mean, mm | on the region | within 8 mm |")
    print("| --- | --- | --- | --- | --- |")
    for name in DEFAULT_HELDOUT_FORWARDS:
        options = HELDOUT_FORWARDS[name]
        topographies = unit_topographies(make_head_model("1010-64", **options))
        match = np.abs(template_topographies.T @ topographies).argmax(axis=0)
        error = distance_mm[np.arange(len(match)), match]
        print(
            f"| {name} | {np.median(error):.1f} | {error.mean():.1f} | {np.mean(error == 0):.2f} "
            f"| {np.mean(error <= 8):.2f} |"
        )


def breakdown(samples_csv: str) -> None:
    """Print each solver's median 64-channel peak-centre error by SNR band, patches and depth."""
    opener = gzip.open if samples_csv.endswith(".gz") else open
    with opener(samples_csv, "rt") as file:
        rows = [row for row in csv.DictReader(file) if row["n_channels"] == "64"]
    groups = defaultdict(list)
    for row in rows:
        if row["peak_centre_error_mm"] in ("", "nan"):  # a failed estimate
            continue
        snr = float(row["sensor_snr_db"])  # drawn uniformly; "snr_db" is its nearest 5-dB bin
        band = "5-10 dB" if snr < 10 else "10-15 dB" if snr < 15 else "15-20 dB"
        for key in (band, f"{row['n_sources']} patch(es)", row["depth"]):
            groups[key, row["solver"]].append(float(row["peak_centre_error_mm"]))
    solvers = list(dict.fromkeys(row["solver"] for row in rows))
    print("| group | " + " | ".join(solvers) + " |")
    print("| --- |" + " --- |" * len(solvers))
    for key in dict.fromkeys(group for group, _ in sorted(groups)):
        cells = [f"{statistics.median(groups[key, s]):.1f} (n={len(groups[key, s])})" for s in solvers]
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    scan_errors()
    if len(sys.argv) > 1:
        breakdown(sys.argv[1])
