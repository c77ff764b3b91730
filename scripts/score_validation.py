"""Score trained models on a training run's own validation set: peak-patch and peak-centre error (mm).

Usage: BRAINFORGE_CACHE=... python scripts/score_validation.py RUN_DIR MODEL_DIR [MODEL_DIR ...]
       [--val-seed N] [--ensembles] [--spatial-sigmas 3,6] [--centroid-thresholds 0.5,0.9]
       [--centroid-radius-mm 15] [--subset-averaging 48,56] [--subset-draws 4]

Rebuilds the run's validation set from its ``run.json`` (head, spike library,
forward bank, synthesis settings, seed, size) with the code ``brainforge train``
uses, so exactly as training drew it, and prints both metrics for each model:
for example a fine-tuned run's starting model, which its log never scored.

``--val-seed N`` draws the same recipe with another seed instead: a fresh
set that no model's checkpoint selection has seen, for choosing between
models without touching the held-out test sets.

``--ensembles`` also scores the output average of every combination of two
or more of the models (an ensemble, which costs one network per member at
inference). ``--spatial-sigmas 3,6`` also scores each model with its output
smoothed over the regions by a Gaussian of the distance between region
centres (sigma in mm; each region's output becomes the weighted mean of
its neighbours', the weights normalized to sum to 1 so that dense areas
such as the deep regions gain nothing), a candidate fixed output filter
that would move the peak towards the middle of the estimated patch.

Two more read-outs that need no training: ``--centroid-thresholds 0.5,0.9``
scores, instead of the largest region, the region nearest the centroid
(weighted by |estimate|) of the regions within ``--centroid-radius-mm`` of
the largest that reach that fraction of it; ``--subset-averaging 48,56``
scores the mean output over ``--subset-draws`` random channel subsets of each
size (each subset's EEG re-referenced and normalized as in training, each
output divided by its largest |value| so that every draw weighs the same; the
draws are seeded by batch, size and draw, so every model sees the same
subsets), a test-time average over montages the network was trained on.

It also describes the estimate's shape on the single-patch samples, at the
true peak time (medians): how many regions reach half the estimate's maximum
(against the patch's size), the estimate at the true centre relative to its
maximum, and the distance from the centroid of the estimate's above-half
regions (weighted by |estimate|) to the true amplitude-weighted centroid, mm.
"""

from __future__ import annotations

import json
from pathlib import Path


def shape_statistics(estimate, sources, centre, positions_mm) -> list[list[float]]:
    """Per single-patch sample: regions >= half max, estimate at centre / max, centroid distance (mm), patch size."""
    import torch

    from brainforge.training.metrics import peak_times

    rows = []
    times = peak_times(sources)
    for i in torch.nonzero(centre.sum(dim=1) == 1).flatten().tolist():
        est, true = estimate[i, times[i]].abs(), sources[i, times[i]].abs()
        above = est >= 0.5 * est.max()
        est_centroid = (est * above) @ positions_mm / (est * above).sum()
        true_centroid = true @ positions_mm / true.sum()
        at_centre = est[centre[i]].item() / est.max().item()
        distance = (est_centroid - true_centroid).norm().item()
        rows.append([above.sum().item(), at_centre, distance, (true > 0).sum().item()])
    return rows


def centroid_regions(at_peak, positions_mm, distance_mm, threshold: float, radius_mm: float):
    """Per sample, the region nearest the |estimate|-weighted centroid of the regions near the peak.

    Parameters
    ----------
    at_peak : tensor, shape (n_samples, n_regions)
        Estimates at one time each.
    positions_mm, distance_mm : tensor, shapes (n_regions, 3) and (n_regions, n_regions)
        Region centres and the distances between them, mm.
    threshold : float
        Fraction of the largest |estimate| a region must reach.
    radius_mm : float
        Only regions this close to the largest one count, mm.

    Returns
    -------
    tensor of int, shape (n_samples,)
        The chosen region of each sample, one of those that counted.
    """
    import torch

    magnitude = at_peak.abs()
    peak = magnitude.argmax(dim=1)
    rows = torch.arange(len(at_peak))
    near = (magnitude >= threshold * magnitude[rows, peak, None]) & (distance_mm[peak] <= radius_mm)
    weights = magnitude * near
    centroid = weights @ positions_mm / weights.sum(dim=1, keepdim=True)
    gap = torch.cdist(centroid, positions_mm).masked_fill(~near, float("inf"))
    return gap.argmin(dim=1)


def main(
    run_dir: str,
    model_dirs: list[str],
    val_seed: int | None = None,
    ensembles: bool = False,
    spatial_sigmas_mm: tuple[float, ...] = (),
    centroid_thresholds: tuple[float, ...] = (),
    centroid_radius_mm: float = 15.0,
    subset_sizes: tuple[int, ...] = (),
    subset_draws: int = 4,
) -> None:
    """Print the validation metrics of each model (and of their ensembles and other read-outs)."""
    import itertools

    import numpy as np
    import torch

    from brainforge._config import config_from_dict
    from brainforge.cli import training_generator
    from brainforge.models import load_model
    from brainforge.synthesis import SynthesisConfig
    from brainforge.training import SyntheticDataModule, TrainingConfig, channel_subset
    from brainforge.training.metrics import has_sources, peak_centre_error_mm, peak_patch_error_mm, peak_times

    run = json.loads(Path(run_dir, "run.json").read_text())
    if val_seed is not None:
        run["training"]["seed"] = val_seed
    generator = training_generator(run["cli"], config_from_dict(SynthesisConfig, run["data"]["synthesis"]))
    data = SyntheticDataModule(generator, TrainingConfig.from_dict(run["training"]))
    distance = torch.as_tensor(generator.head.region_distance_mm, dtype=torch.float32)
    positions = torch.as_tensor(generator.head.region_centres_mm, dtype=torch.float32)
    models = {name: load_model(name)[0].eval() for name in model_dirs}
    n_channels = generator.head.n_channels
    for name, model in models.items():
        if subset_sizes and not model.any_montage:
            raise SystemExit(f"--subset-averaging needs a network that takes any montage; {name} does not.")
        if subset_sizes and max(subset_sizes) > min(n_channels, model.montage.n_channels):
            raise SystemExit(
                f"--subset-averaging {max(subset_sizes)} exceeds the {min(n_channels, model.montage.n_channels)} "
                f"channels of the validation set or {name}; give smaller subsets."
            )
    kernels = {sigma: torch.exp(-0.5 * (distance / sigma) ** 2) for sigma in spatial_sigmas_mm}
    kernels = {sigma: kernel / kernel.sum(dim=1, keepdim=True) for sigma, kernel in kernels.items()}
    combinations = [
        combination
        for size in (range(2, len(models) + 1) if ensembles else ())
        for combination in itertools.combinations(models, size)
    ]
    errors: dict[str, tuple[list, list, list]] = {}

    def score(label: str, estimate, sources, active, centre, shapes: bool = False) -> None:
        patch_error, centre_error, shape = errors.setdefault(label, ([], [], []))
        patch_error.append(peak_patch_error_mm(estimate, sources, active, distance))
        centre_error.append(peak_centre_error_mm(estimate, sources, centre, distance))
        if shapes:
            shape.extend(shape_statistics(estimate, sources, centre, positions))

    with torch.inference_mode():
        for batch_index, batch in enumerate(data.val_dataloader()):
            keep = has_sources(batch["active"])
            sources, active, centre = batch["sources"][keep], batch["active"][keep], batch["centre"][keep]
            estimates = {name: model(batch["eeg"])[keep] for name, model in models.items()}
            rows, peak_time = torch.arange(len(sources)), peak_times(sources)
            for name, estimate in estimates.items():
                score(name, estimate, sources, active, centre, shapes=True)
                for sigma, kernel in kernels.items():  # the errors read the true peak time only
                    at_peak = estimate[rows, peak_time, None] @ kernel.T  # row r: sum_j kernel[r, j] x_j
                    label = f"{name} smoothed over regions, sigma {sigma:g} mm"
                    score(label, at_peak, sources[rows, peak_time, None], active, centre)
                at_peak = estimate[rows, peak_time]
                for threshold in centroid_thresholds:
                    chosen = torch.zeros_like(at_peak)
                    chosen[rows, centroid_regions(at_peak, positions, distance, threshold, centroid_radius_mm)] = 1.0
                    label = f"{name} centroid read-out, >= {threshold:g} of the peak within {centroid_radius_mm:g} mm"
                    score(label, chosen[:, None], sources[rows, peak_time, None], active, centre)
                for size in subset_sizes:
                    montage, outputs = models[name].montage, []
                    for draw in range(subset_draws):
                        rng = np.random.default_rng([batch_index, size, draw])
                        index = np.sort(rng.choice(montage.n_channels, size, replace=False))
                        output = models[name](*channel_subset(batch["eeg"][keep], montage, index))
                        outputs.append(output / output.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12))
                    label = f"{name} averaged over {subset_draws} draws of {size} channels"
                    score(label, torch.stack(outputs).mean(dim=0), sources, active, centre)
            for combination in combinations:
                estimate = torch.stack([estimates[name] for name in combination]).mean(dim=0)
                score(f"ensemble of {' + '.join(combination)}", estimate, sources, active, centre)
    for name, (patch, centre, shape) in errors.items():
        patch, centre = torch.cat(patch), torch.cat(centre)
        print(
            f"{name}: val_peak_patch_error_mm {patch.mean():.2f}, val_peak_centre_error_mm {centre.mean():.2f} "
            f"(median {centre.median():.2f}; means over {len(centre)} samples with sources)"
        )
        if not shape:
            continue
        shape = torch.tensor(shape).median(dim=0).values
        print(
            f"  single-patch samples (medians): {shape[0]:.0f} regions >= half max (patch: {shape[3]:.0f}), "
            f"estimate at the true centre {shape[1]:.2f} of its max, its centroid {shape[2]:.1f} mm from the "
            "true centroid"
        )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="training run folder (its run.json gives the validation recipe)")
    parser.add_argument("model_dirs", nargs="+", help="model folders to score")
    parser.add_argument("--val-seed", type=int, default=None, help="draw the recipe with this seed instead")
    parser.add_argument("--ensembles", action="store_true", help="also score output averages of 2+ models")
    parser.add_argument(
        "--spatial-sigmas",
        default="",
        help="also score outputs smoothed over regions by these Gaussians, e.g. 3,6 (mm)",
    )
    parser.add_argument(
        "--centroid-thresholds",
        default="",
        help="also score the region nearest the centroid of the regions reaching these fractions of the peak",
    )
    parser.add_argument("--centroid-radius-mm", type=float, default=15.0, help="centroid read-out radius (mm)")
    parser.add_argument(
        "--subset-averaging", default="", help="also score outputs averaged over random subsets of these sizes"
    )
    parser.add_argument("--subset-draws", type=int, default=4, help="subsets drawn per size (default 4)")
    arguments = parser.parse_args()
    sigmas = tuple(float(value) for value in arguments.spatial_sigmas.split(",") if value.strip())
    if not all(0 < sigma < float("inf") for sigma in sigmas):
        parser.error(f"--spatial-sigmas takes widths > 0 mm, got {arguments.spatial_sigmas!r}")
    try:
        thresholds = tuple(
            sorted({float(value) for value in arguments.centroid_thresholds.split(",") if value.strip()})
        )
        sizes = tuple(sorted({int(value) for value in arguments.subset_averaging.split(",") if value.strip()}))
    except ValueError:
        parser.error("--centroid-thresholds takes fractions and --subset-averaging whole channel counts, e.g. 48,56")
    if not all(0 < threshold <= 1 for threshold in thresholds):
        parser.error(f"--centroid-thresholds takes fractions in (0, 1], got {arguments.centroid_thresholds!r}")
    if not 0 <= arguments.centroid_radius_mm < float("inf"):
        parser.error(f"--centroid-radius-mm takes a distance >= 0 mm, got {arguments.centroid_radius_mm}")
    if not all(size >= 1 for size in sizes) or arguments.subset_draws < 1:
        parser.error("--subset-averaging takes channel counts >= 1 and --subset-draws a count >= 1")
    main(
        arguments.run_dir,
        arguments.model_dirs,
        arguments.val_seed,
        arguments.ensembles,
        sigmas,
        thresholds,
        arguments.centroid_radius_mm,
        sizes,
        arguments.subset_draws,
    )
