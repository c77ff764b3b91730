"""Sparse montages: spherical-spline upsampling onto the training montage against the channels as they are.

Usage:
    BRAINFORGE_CACHE=... python scripts/sparse_montage_probe.py tune RUN_DIR MODEL_DIR [SEED] [N]
    BRAINFORGE_CACHE=... python scripts/sparse_montage_probe.py paired MODEL_DIR HELDOUT_DIR [SIZES]

``tune`` draws N samples (default 1024) of RUN_DIR's validation recipe (its
``run.json``: synthesis through the training forward bank, 64 channels) with
the validation seed SEED (default 41, a seed no training run or selection
used), keeps the 1010-16, 1010-21 and 1010-32 subsets of each and scores
MODEL_DIR's peak-centre error (mean and median over samples with sources, mm)
on the subset as it is (re-referenced and re-normalized, as training shows
subsets) and spline-upsampled onto the network's own montage for each
regularization (1e-8 to 1e-4) and sphere centre: the centroid of the
montage's electrodes (``centroid``, what ``LearnedSolver`` uses) or the
centre of the sphere fitted to them (``fit``, MNE's ``fit_sphere_to_headshape``
for EEG-only digitization). This is the set the solver's settings were chosen on.

``paired`` scores ``LearnedSolver(MODEL_DIR, upsample=False)`` against the
default ``upsample=True`` on the test sets a ``benchmarks/heldout_forward.py``
run cached in HELDOUT_DIR (forward models outside the training bank), at each
size of SIZES (default 16,21,32: the 10-10 subsets; another size keeps that
many of the 64 channels drawn at random with seed 0, a cap with bad channels
left out), on the spike window as the
benchmark scores it; prints both medians and means and the paired difference
(upsampled minus as is; ``brainforge.evaluation.summary.paired_difference``:
mean and medians with 95 % paired bootstrap intervals, 2,000 resamples, seed
0), and the shares of samples better and worse with their sign test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ALPHAS = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4)
SUBSET_SIZES = (16, 21, 32)


def tune(run_dir: str, model_dir: str, seed: int = 41, n_samples: int = 1024) -> None:
    """Print the peak-centre error of each subset size and upsampling setting on in-bank validation data."""
    import torch
    from mne.bem import _fit_sphere

    from brainforge._config import config_from_dict
    from brainforge.anatomy import CHANNEL_SUBSETS
    from brainforge.cli import training_generator
    from brainforge.models import load_model
    from brainforge.synthesis import SynthesisConfig
    from brainforge.synthesis.normalize import normalize_eeg
    from brainforge.topomap import spherical_spline_matrix
    from brainforge.training import SyntheticDataModule, TrainingConfig, channel_subset
    from brainforge.training.metrics import has_sources, peak_centre_error_mm

    run = json.loads(Path(run_dir, "run.json").read_text())
    run["training"]["seed"], run["training"]["val_samples"] = seed, n_samples
    generator = training_generator(run["cli"], config_from_dict(SynthesisConfig, run["data"]["synthesis"]))
    data = SyntheticDataModule(generator, TrainingConfig.from_dict(run["training"]))
    distance = torch.as_tensor(generator.head.region_distance_mm, dtype=torch.float32)
    model = load_model(model_dir)[0].eval()
    montage = model.montage
    positions = montage.ch_pos_mm
    origins = {"centroid": positions.mean(axis=0), "fit": _fit_sphere(positions / 1000.0)[1] * 1000.0}
    for name, origin in origins.items():
        print(f"sphere centre '{name}': {np.round(origin, 1)} mm")
    variants = {}  # (size, label) -> (channel index, upsampling matrix or None)
    for size in SUBSET_SIZES:
        index = np.sort([montage.ch_names.index(c) for c in CHANNEL_SUBSETS[f"1010-{size}"]])
        variants[(size, "as is")] = (index, None)
        for name, origin in origins.items():
            for alpha in ALPHAS:
                matrix = spherical_spline_matrix(positions[index], positions, origin, alpha=alpha)
                variants[(size, f"upsampled, {name}, alpha {alpha:g}")] = (index, torch.as_tensor(matrix).float())
    errors: dict = {key: [] for key in variants}
    full = []
    with torch.inference_mode():
        for batch in data.val_dataloader():
            keep = has_sources(batch["active"])
            eeg, sources, centre = batch["eeg"][keep], batch["sources"][keep], batch["centre"][keep]
            full.append(peak_centre_error_mm(model(eeg), sources, centre, distance))
            for key, (index, matrix) in variants.items():
                if matrix is None:
                    estimate = model(*channel_subset(eeg, montage, index))
                else:
                    subset = eeg[:, :, torch.as_tensor(index)]
                    estimate = model(normalize_eeg((subset - subset.mean(dim=2, keepdim=True)) @ matrix.T))
                errors[key].append(peak_centre_error_mm(estimate, sources, centre, distance))
    full = torch.cat(full)
    print(f"all {montage.n_channels} channels: mean {full.mean():.2f}, median {full.median():.2f} mm", end=" ")
    print(f"({len(full)} samples)")
    print("| channels | input | mean, mm | median, mm | on the centre |")
    print("| --- | --- | --- | --- | --- |")
    for (size, label), values in errors.items():
        values = torch.cat(values)
        print(
            f"| {size} | {label} | {values.mean():.2f} | {values.median():.2f} | {(values == 0).float().mean():.3f} |"
        )


def cap_channels(names: list[str], size: int) -> list[str]:
    """Return the 10-10 subset of ``size`` channels, else ``size`` of ``names`` drawn with seed 0 (bad channels out).

    Each size is drawn on its own: a smaller random cap is not a subset of a larger one.
    """
    from brainforge.anatomy.montage import CHANNEL_SUBSETS

    if not 3 <= size < len(names):
        raise SystemExit(f"size {size}: give 3 to {len(names) - 1} of the test sets' {len(names)} channels.")
    if f"1010-{size}" in CHANNEL_SUBSETS:
        wanted = set(CHANNEL_SUBSETS[f"1010-{size}"])
        return [c for c in names if c in wanted]
    keep = np.sort(np.random.default_rng(0).choice(len(names), size, replace=False))
    return [names[i] for i in keep]


def paired(model_dir: str, heldout_dir: str, sizes: tuple[int, ...] = SUBSET_SIZES) -> None:
    """Print the paired comparison of the solver with and without upsampling on cached held-out test sets."""
    import pandas as pd

    from brainforge import set_log_level
    from brainforge.evaluation.benchmark import matched_head_model
    from brainforge.evaluation.metrics import evaluate, spike_window
    from brainforge.evaluation.summary import format_paired_difference, paired_difference
    from brainforge.inverse import LearnedSolver
    from brainforge.synthesis.store import read_test_set

    set_log_level("warning")
    rows = []  # one per (test set, sample, size, input): the columns paired_difference reads
    for path in sorted(Path(heldout_dir).glob("*.zarr")):
        test = read_test_set(path)
        head = matched_head_model(test.metadata)
        names = list(test.metadata["ch_names"])
        for size in sizes:
            channels = cap_channels(names, size)
            picks = [names.index(c) for c in channels]
            sub_head = head.pick_channels(channels)
            solvers = {u: LearnedSolver(model_dir, upsample=u).fit(sub_head) for u in (False, True)}
            for i in range(len(test)):
                eeg = np.asarray(test.eeg[i], float).T[picks]
                eeg -= eeg.mean(axis=0)
                truth = np.asarray(test.sources[i], float).T
                window = spike_window(truth, test.sfreq)
                patches, centres = test.patches(i), test.centres[i][test.centres[i] >= 0]
                for upsample, solver in solvers.items():
                    estimate = solver.apply_regions(eeg, test.sfreq).data[:, window]
                    metrics = evaluate(
                        estimate, truth[:, window], patches, centres, head.region_distance_mm,
                        head.region_adjacency, n_redraw=0,
                    )  # fmt: skip
                    rows.append({
                        "test_set": path.name, "sample": i, "n_channels": size,
                        "solver": "upsampled" if upsample else "as is",
                        "peak_centre_error_mm": metrics["peak_centre_error_mm"],
                    })  # fmt: skip
    samples = pd.DataFrame(rows)
    for size in sizes:
        errors = samples[samples.n_channels == size].groupby("solver").peak_centre_error_mm
        d = paired_difference(samples, "as is", "upsampled", size)
        print(
            f"{size} channels: as is median {errors.median()['as is']:.1f} (mean {errors.mean()['as is']:.2f}), "
            f"upsampled median {errors.median()['upsampled']:.1f} (mean {errors.mean()['upsampled']:.2f}) mm; "
            f"paired {format_paired_difference(d)}"
        )


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] not in ("tune", "paired"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "tune":
        tune(sys.argv[2], sys.argv[3], *(int(a) for a in sys.argv[4:6]))
    else:
        sizes = tuple(int(size) for size in sys.argv[4].split(",")) if len(sys.argv) > 4 else SUBSET_SIZES
        paired(sys.argv[2], sys.argv[3], sizes)
