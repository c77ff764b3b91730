"""Probe how sharp a CNN-Transformer's linear output head can make a patch.

Usage: BRAINFORGE_CACHE=... python scripts/head_rank_probe.py [MODEL_DIR]

A linear head maps ``d_model`` Transformer features to every region, so each
output map lies in the span of its ``d_model`` weight columns plus its bias.
For every region c the script takes the ideal target of a patch centred on c
(the centre-weighted target that training fits: Gaussian, half amplitude at
12 mm, cut at R mm), projects it onto that span (least squares) and prints the
share of the target's energy the projection keeps and the peak-centre error
of the projection's argmax. For comparison it does the same with the best
possible subspaces of 64-512 dimensions (the leading singular vectors of all
the targets). The head is read at the middle sample of a token (``k // 2``);
a model with ``head_hidden > 0`` has a second, non-linear path that this
span does not bound. Defaults to the bundled model. Measured 2026-12-05 on
default-v12: its span keeps 33 % / 47 % / 58 % of the energy (R = 12 / 16 /
20 mm), the best 128 dimensions 72 %, 256 dimensions 92 % (R = 16 mm).
"""

from __future__ import annotations

import sys

import numpy as np


def span_scores(basis: np.ndarray, targets: np.ndarray, distance_mm: np.ndarray) -> tuple[float, float, float]:
    """Energy share kept, mean argmax error (mm) and share of argmaxes on the centre, projecting onto ``basis``."""
    orthonormal, _ = np.linalg.qr(basis)
    projected = (targets @ orthonormal) @ orthonormal.T
    regions = np.arange(len(targets))
    peaks = projected.argmax(axis=1)
    energy = float(np.sum(projected**2) / np.sum(targets**2))
    return energy, float(distance_mm[regions, peaks].mean()), float(np.mean(peaks == regions))


def main(model_dir: str | None) -> None:
    """Print the table."""
    from brainforge import set_log_level
    from brainforge._data import default_model_dir
    from brainforge.anatomy import make_head_model
    from brainforge.models import load_model
    from brainforge.synthesis.patches import patch_weights

    set_log_level("warning")
    model, _ = load_model(model_dir or default_model_dir())
    if model.name != "cnn_transformer":
        raise SystemExit(
            f"error: {model_dir} holds a {model.name}; this probe reads a cnn_transformer's output layer "
            "(for a channel_count_router, give one member's folder)."
        )
    n_regions, k = model.n_regions, model.config.samples_per_token
    rows = slice((k // 2) * n_regions, (k // 2 + 1) * n_regions)
    weight = model.head.weight.detach().numpy()[rows].astype(float)
    bias = model.head.bias.detach().numpy()[rows].astype(float)
    distance_mm = make_head_model("1010-64").region_distance_mm
    print(f"{model_dir or 'bundled default'}: linear head from {weight.shape[1]} features, {n_regions} regions")
    print("| subspace | patch cut R, mm | energy kept | mean argmax error, mm | argmax on centre |")
    print("| --- | --- | --- | --- | --- |")
    weights = patch_weights(distance_mm, 12.0)
    targets = {radius: np.where(distance_mm <= radius, weights, 0.0) for radius in (12.0, 16.0, 20.0)}
    for radius, target in targets.items():
        scores = span_scores(np.column_stack([weight, bias]), target, distance_mm)
        label = f"the head's ({weight.shape[1]} + bias)"
        print(f"| {label} | {radius:g} | {scores[0]:.2f} | {scores[1]:.1f} | {scores[2]:.2f} |")
    _, _, components = np.linalg.svd(targets[16.0], full_matrices=False)
    for dim in (64, 128, 256, 512):
        scores = span_scores(components[:dim].T, targets[16.0], distance_mm)
        print(f"| best {dim} dimensions | 16 | {scores[0]:.2f} | {scores[1]:.1f} | {scores[2]:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
