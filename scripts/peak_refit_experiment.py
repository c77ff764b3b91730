"""Experiment: refit a network's peak with template patch topographies among its strongest regions.

Usage: BRAINFORGE_CACHE=... python scripts/peak_refit_experiment.py MODEL_DIR SETS_DIR [N]

``SETS_DIR`` holds the held-out test sets that ``benchmarks/heldout_forward.py
--out SETS_DIR`` writes. For each sample with a source (64 channels, at the
true peak time) the network's estimate gives candidate regions: those within
30 mm of its peak whose |estimate| reaches a fraction f of the peak's. Each
candidate c stands for a patch (the regions within R mm of c; R = 0: c alone);
the candidate whose summed template-head leadfield topography correlates best
with the measured EEG becomes the peak. Prints the peak-centre error (median,
share <= 8 mm, median per forward model) of the plain argmax and of each
(f, R). A negative result (2026-12-05, default-v4, 400 samples): 12.3 mm for
the argmax, 12.0-15.7 mm refitted; the template fit helps only where the cap
sits where the template puts it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def refit_peak(estimate, eeg_at_peak, topographies, distance_mm, fraction: float, radius_mm: float) -> int:
    """Return the candidate region whose patch topography best matches the EEG (absolute correlation)."""
    peak = int(estimate.argmax())
    candidates = np.flatnonzero((estimate >= fraction * estimate[peak]) & (distance_mm[peak] <= 30.0))
    scores = []
    for region in candidates:
        patch = np.flatnonzero(distance_mm[region] <= radius_mm) if radius_mm > 0 else [region]
        topography = topographies[:, patch].sum(axis=1)
        scores.append(abs(topography @ eeg_at_peak) / (np.linalg.norm(topography) * np.linalg.norm(eeg_at_peak)))
    return int(candidates[int(np.argmax(scores))])


def main(model_dir: str, sets_dir: str, n_max: int) -> None:
    """Print the peak-centre error of the argmax and of each refit setting."""
    from brainforge import set_log_level
    from brainforge.anatomy import make_head_model
    from brainforge.evaluation.metrics import peak_centre_error_mm
    from brainforge.inverse import make_solver
    from brainforge.synthesis.store import read_test_set

    set_log_level("warning")
    head = make_head_model("1010-64")
    distance_mm = head.region_distance_mm
    topographies = head.average_reference().region_leadfield
    solver = make_solver(model_dir).fit(head)
    settings = [(f, r) for f in (0.5, 0.7, 0.85) for r in (0.0, 12.0, 20.0)]
    errors: dict[str, list[float]] = {"argmax": [], **{f"refit f={f} R={r:g} mm": [] for f, r in settings}}
    set_names = []
    for path in sorted(Path(sets_dir).glob("*.zarr")):
        test = read_test_set(path)
        for i in range(min(n_max, len(test))):
            centres = test.centres[i][test.centres[i] >= 0]
            if len(centres) == 0:
                continue
            eeg = np.asarray(test.eeg[i], float).T
            eeg = eeg - eeg.mean(axis=0)
            truth = np.asarray(test.sources[i], float).T
            peak_time = int(np.abs(truth).max(axis=0).argmax())
            activity = solver.apply_regions(eeg, test.sfreq).data
            errors["argmax"].append(peak_centre_error_mm(activity, truth, centres, distance_mm))
            estimate = np.abs(activity[:, peak_time])
            for f, r in settings:
                region = refit_peak(estimate, eeg[:, peak_time], topographies, distance_mm, f, r)
                errors[f"refit f={f} R={r:g} mm"].append(distance_mm[region, centres].min())
            set_names.append(path.stem)
    set_names = np.array(set_names)
    for label, values in errors.items():
        values = np.array(values)
        per_set = " ".join(f"{s}: {np.median(values[set_names == s]):.1f}" for s in np.unique(set_names))
        print(f"{label:24} median {np.median(values):5.1f} mm, <= 8 mm {np.mean(values <= 8):.2f} | {per_set}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 100)
