"""Sparse caps: spherical splines against a leadfield-based (kriging) interpolation onto 64 channels.

Usage: BRAINFORGE_CACHE=... python scripts/leadfield_interpolation_probe.py HELDOUT_DIR [HELDOUT_DIR ...]

``LearnedSolver`` interpolates a sparse cap onto the network's 64 training
electrodes with spherical splines (docs/models.md, "Sparse montages"). An
interpolation that knows the head, the linear minimum-mean-square-error
estimate of the 64-channel map from the recorded channels under the template
leadfield ``L`` with independent unit-variance regions
(``C = L L^T``, both sides average-referenced, ridge ``lambda * trace / n``),
might do better. This script asks, without a network: on the test sets a
``benchmarks/heldout_forward.py`` run cached in HELDOUT_DIR (forward models
outside the training bank), how well does each rebuild the recorded 64-channel
map at the spike peak from its 1010-16 and 1010-32 subsets? It prints the
median correlation (over samples with sources) of the rebuilt and the recorded
average-referenced map per test set, cap and method.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SIZES = (16, 32)
RIDGES = (1e-3, 1e-2, 1e-1)


def kriging_matrix(leadfield: np.ndarray, index: np.ndarray, ridge: float) -> np.ndarray:
    """Return the (n_channels, len(index)) MMSE interpolation of all channels from ``index`` under ``leadfield``."""
    n_channels, n_picked = leadfield.shape[0], len(index)
    reference_all = np.eye(n_channels) - 1.0 / n_channels
    reference_picked = np.eye(n_picked) - 1.0 / n_picked
    covariance = leadfield @ leadfield.T
    picked = reference_picked @ covariance[np.ix_(index, index)] @ reference_picked
    cross = reference_all @ covariance[:, index] @ reference_picked
    regularized = picked + ridge * np.trace(picked) / n_picked * np.eye(n_picked)
    return cross @ np.linalg.pinv(regularized) @ reference_picked


def main(heldout_dirs: list[str]) -> None:
    """Print the median map correlation of each method on each cached held-out test set."""
    from brainforge import set_log_level
    from brainforge.anatomy import CHANNEL_SUBSETS
    from brainforge.evaluation.benchmark import matched_head_model
    from brainforge.synthesis.store import read_test_set
    from brainforge.topomap import Montage, montage_upsampling

    set_log_level("warning")
    for heldout in heldout_dirs:
        for path in sorted(Path(heldout).glob("*.zarr")):
            test = read_test_set(path)
            head = matched_head_model(test.metadata)  # the solvers' template head, not the test set's forward
            names = list(test.metadata["ch_names"])
            montage = Montage.from_head_model(head)
            for size in SIZES:
                wanted = set(CHANNEL_SUBSETS[f"1010-{size}"])
                index = np.array([i for i, channel in enumerate(names) if channel in wanted])
                methods = {"splines": montage_upsampling(head.ch_pos_mm[index], montage)}
                methods.update({f"kriging {r:g}": kriging_matrix(head.region_leadfield, index, r) for r in RIDGES})
                correlations: dict[str, list[float]] = {name: [] for name in methods}
                for i in range(len(test)):
                    sources = np.asarray(test.sources[i], float)
                    if not np.any(sources):
                        continue
                    peak = int(np.argmax(np.abs(sources).max(axis=1)))
                    recorded = np.asarray(test.eeg[i], float)[peak]
                    recorded = recorded - recorded.mean()
                    picked = recorded[index] - recorded[index].mean()
                    for name, matrix in methods.items():
                        correlations[name].append(np.corrcoef(matrix @ picked, recorded)[0, 1])
                medians = ", ".join(f"{name} {np.median(values):.3f}" for name, values in correlations.items())
                print(f"{Path(heldout).name}/{path.name}, {size} channels: {medians}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    main(sys.argv[1:])
