"""Time courses of a solver on held-out test sets: token steps, spectrum, and an output low-pass.

Usage: BRAINFORGE_CACHE=... python scripts/time_course_probe.py SOLVER TEST_DIR N [SIGMAS]

``SOLVER`` is a model folder, ``default`` or a classical solver name;
``TEST_DIR`` holds test sets (``*.zarr``, for example the folder
``benchmarks/heldout_forward.py --out`` wrote); ``N`` samples per set;
``SIGMAS`` a comma-separated list of Gaussian widths in samples (default
``0,2``). For every sample it prints nothing; at the end, per width: the
median and mean spike-window correlation (DeepSIF's metric, as the benchmark
scores it) and the median peak-centre error (mm) of the estimate after a
Gaussian of that width along time (``scipy.ndimage.gaussian_filter1d``, edges
nearest, cut at 3 widths: what ``output_smoothing_samples`` does inside the
CNN-Transformer, tested equal). Then, on the unsmoothed estimate at each
sample's first true centre region: the mean jump between consecutive samples
that straddle a 10-sample token boundary (the bundled default's
``samples_per_token``; for other solvers a control) against those inside a
token, relative to the estimate's maximum (samples with an all-zero estimate
there are skipped), and the share of power above 20 Hz in the estimate and in
the truth. The solver is fitted once, on the template head the first set
names (every held-out set names the same one).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(solver_name: str, test_dir: str, n: int, sigmas: list[float]) -> None:
    """Print the table described in the module docstring."""
    import mne
    from scipy.ndimage import gaussian_filter1d

    from brainforge.evaluation.benchmark import matched_head_model
    from brainforge.evaluation.metrics import deepsif_metrics, peak_centre_error_mm, spike_window
    from brainforge.inverse import make_solver
    from brainforge.synthesis.store import read_test_set

    mne.set_log_level("WARNING")  # after brainforge's imports, which set MNE's level from its config
    results: dict[float, tuple[list, list]] = {s: ([], []) for s in sigmas}
    boundary, inside, high_estimate, high_truth = [], [], [], []
    solver = None
    for path in sorted(Path(test_dir).glob("*.zarr")):
        test = read_test_set(path)
        head = matched_head_model(test.metadata)  # the template head, as a user would fit a solver
        solver = solver or make_solver(solver_name).fit(head)
        distance = head.region_distance_mm
        for i in range(min(n, len(test))):
            truth = np.asarray(test.sources[i], float).T
            eeg = np.asarray(test.eeg[i], float).T
            estimate = solver.apply_regions(eeg - eeg.mean(axis=0), test.sfreq).data
            window = spike_window(truth, test.sfreq)
            centres = test.centres[i][test.centres[i] >= 0]
            for sigma, (correlation, error) in results.items():
                smoothed = estimate
                if sigma:
                    smoothed = gaussian_filter1d(estimate, sigma, axis=1, mode="nearest", truncate=3.0)
                scores = deepsif_metrics(smoothed[:, window], truth[:, window], test.patches(i), centres, distance)
                correlation.append(scores["correlation"])
                error.append(peak_centre_error_mm(smoothed, truth, centres, distance))
            peak = np.abs(estimate[centres[0]]).max()
            if not peak > 0:
                continue
            course = estimate[centres[0]] / peak
            jumps = np.abs(np.diff(course))
            straddles = np.arange(len(jumps)) % 10 == 9
            boundary.append(jumps[straddles].mean())
            inside.append(jumps[~straddles].mean())
            frequencies = np.fft.rfftfreq(len(course), 1 / test.sfreq)
            for series, out in ((course, high_estimate), (truth[centres[0]], high_truth)):
                power = np.abs(np.fft.rfft(series - series.mean())) ** 2
                out.append(power[frequencies > 20].sum() / power.sum())
    print(f"{solver_name}: {len(boundary)} samples from {test_dir}")
    print("low-pass (samples) | spike-window correlation, median / mean | peak-centre error, median mm")
    for sigma, (correlation, error) in results.items():
        print(f"{sigma:g} | {np.nanmedian(correlation):.3f} / {np.nanmean(correlation):.3f} | {np.median(error):.1f}")
    print(
        f"mean jump across token boundaries {np.mean(boundary):.4f}, inside tokens {np.mean(inside):.4f}; "
        f"power above 20 Hz: estimate {np.mean(high_estimate):.3f}, truth {np.mean(high_truth):.3f}"
    )


if __name__ == "__main__":
    sigmas = [float(s) for s in sys.argv[4].split(",")] if len(sys.argv) > 4 else [0.0, 2.0]
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sigmas)
