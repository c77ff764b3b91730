"""Probe: can a CNN-Transformer's linear output head represent an estimate that peaks on the patch centre.

Usage: BRAINFORGE_CACHE=... python scripts/head_span_probe.py MODEL_DIR[,MODEL_DIR...] TEST_SET.zarr

The head maps each token's ``d_model`` features to ``samples_per_token x
n_regions`` outputs, so at one time sample every estimate the network can give
lies in the span of ``d_model`` columns (plus the bias). For each sample of the
test set this fits, by least squares within that span, the true source map at
its peak time, as is and weighted towards the patch centres as
``brainforge train --target-centre-half-mm H`` weights it (H = 12 and 6 mm),
and prints the peak-centre error of the best fit: median, share on the centre
region itself, share within 8 mm. If even the best fit misses the centre, the
head's rank limits the network; if it hits, the features do. The time sample
within its token is the peak time modulo ``samples_per_token``: the network's
windows start at the segment's first sample (1-s segments, 1-s windows).
"""

from __future__ import annotations

import sys

import numpy as np


def best_fit_errors(weight, bias, test, distance_mm, half_mm: float | None) -> np.ndarray:
    """Peak-centre error (mm) of the least-squares fit of each sample's (weighted) peak map within the head's span."""
    n_regions = distance_mm.shape[0]
    per_token = weight.shape[0] // n_regions
    errors = []
    for i in range(len(test)):
        centres = test.centres[i][test.centres[i] >= 0]
        if len(centres) == 0:
            continue
        sources = np.asarray(test.sources[i], float)  # (times, regions)
        peak_time = int(np.abs(sources).max(axis=1).argmax())
        rows = slice((peak_time % per_token) * n_regions, (peak_time % per_token + 1) * n_regions)
        target = sources[peak_time]
        if half_mm is not None:
            target = target * 2.0 ** -((distance_mm[:, centres].min(axis=1) / half_mm) ** 2)
        span = np.column_stack([weight[rows], bias[rows]])
        fit = np.abs(span @ np.linalg.lstsq(span, target, rcond=None)[0])
        errors.append(distance_mm[fit.argmax(), centres].min())
    return np.asarray(errors)


def main(model_dirs: str, test_path: str) -> None:
    """Print the best-fit peak-centre error of each model's head, for each target."""
    from pathlib import Path

    from safetensors.numpy import load_file

    from brainforge.evaluation.benchmark import matched_head_model
    from brainforge.synthesis.store import read_test_set

    test = read_test_set(test_path)
    distance_mm = matched_head_model(test.metadata).region_distance_mm
    for model_dir in model_dirs.split(","):
        weights = load_file(str(Path(model_dir, "model.safetensors")))
        for half_mm in (None, 12.0, 6.0):
            errors = best_fit_errors(weights["head.weight"], weights["head.bias"], test, distance_mm, half_mm)
            target = "true map" if half_mm is None else f"centre-weighted, {half_mm:g} mm"
            print(
                f"{Path(model_dir).name:14} {target:26} median {np.median(errors):4.1f} mm, "
                f"on the centre {np.mean(errors == 0):.2f}, <= 8 mm {np.mean(errors <= 8):.2f}"
            )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
