"""Localization metrics as the references define them (the design document's section 6; docs/inverse.md).

All functions take region-level activity, ``estimate`` and ``truth`` of shape
(n_regions, n_times), already cut to the window being scored (see
:func:`spike_window`), and region-centre distances in mm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

#: Half-width of the scoring window around the spike peak, ms.
SPIKE_HALF_WINDOW_MS = 25.0


def spike_window(truth: np.ndarray, sfreq: float, half_width_ms: float = SPIKE_HALF_WINDOW_MS) -> slice:
    """Return the samples within ``half_width_ms`` of the largest |truth| (the spike peak)."""
    peak = int(np.abs(truth).max(axis=0).argmax())
    half = round(half_width_ms * 1e-3 * sfreq)
    return slice(max(0, peak - half), min(truth.shape[1], peak + half + 1))


def otsu_threshold(values: np.ndarray, n_bins: int = 100) -> float:
    """Otsu's threshold of ``values`` with a ``n_bins`` histogram (``skimage.filters.threshold_otsu``, as DeepSIF)."""
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(np.asarray(values, float).ravel(), nbins=n_bins))


def otsu_regions(estimate: np.ndarray, min_samples: int = 7, n_bins: int = 100) -> np.ndarray:
    """DeepSIF's reconstructed regions: |estimate| / max above Otsu's threshold at more than ``min_samples`` samples.

    Windows shorter than ``min_samples + 1`` need the threshold at one sample
    or more (the spike window of +-25 ms at 500 Hz has 25 samples).
    """
    magnitude = np.abs(estimate)
    peak = magnitude.max()
    if peak == 0:
        return np.zeros(len(estimate), bool)
    magnitude = magnitude / peak
    above = magnitude > otsu_threshold(magnitude, n_bins)
    needed = min(min_samples, estimate.shape[1] - 1)
    return above.sum(axis=1) > needed


def _nearest(distance_mm: np.ndarray, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance from each region in ``rows`` to the nearest region in ``targets``, mm."""
    return distance_mm[np.ix_(rows, targets)].min(axis=1)


def deepsif_metrics(
    estimate: np.ndarray,
    truth: np.ndarray,
    patches: Sequence[np.ndarray],
    centres: Sequence[int],
    distance_mm: np.ndarray,
) -> dict[str, float]:
    """DeepSIF's metrics: Otsu regions, precision, recall, localization error (mm), temporal correlation.

    Each reconstructed region is assigned to the nearest true patch. The
    localization error is the mean over reconstructed regions of the distance
    to the nearest true region; the correlation is Pearson's between the mean
    time course of the regions assigned to a patch and the patch centre's
    true waveform, averaged over patches that received regions.
    """
    true = np.unique(np.concatenate(patches))
    kept = np.flatnonzero(otsu_regions(estimate))
    if not len(kept):
        return {"precision": 0.0, "recall": 0.0, "loc_error_mm": np.nan, "correlation": np.nan, "n_regions": 0}
    hits = np.intersect1d(kept, true)
    to_patch = np.stack([_nearest(distance_mm, kept, np.asarray(p)) for p in patches], axis=1)
    assignment = to_patch.argmin(axis=1)
    correlations = []
    for index, centre in enumerate(centres):
        assigned = kept[assignment == index]
        if len(assigned):
            correlations.append(_pearson(estimate[assigned].mean(axis=0), truth[centre]))
    return {
        "precision": len(hits) / len(kept),
        "recall": len(hits) / len(true),
        "loc_error_mm": float(_nearest(distance_mm, kept, true).mean()),
        "correlation": float(np.nanmean(correlations)) if correlations else np.nan,
        "n_regions": len(kept),
    }


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r (:func:`scipy.stats.pearsonr`); NaN when either input is constant."""
    from scipy.stats import pearsonr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return np.nan
    return float(pearsonr(a, b).statistic)


def local_maxima(values: np.ndarray, adjacency: sp.spmatrix, threshold: float = 0.1) -> np.ndarray:
    """Regions whose |value| is at least every neighbour's and above ``threshold`` x the max."""
    magnitude = np.abs(values)
    adjacency = sp.csr_matrix(adjacency, dtype=bool)
    rows, cols = adjacency.nonzero()
    neighbour_max = np.zeros(len(magnitude))
    np.maximum.at(neighbour_max, rows, magnitude[cols])
    return np.flatnonzero((magnitude >= neighbour_max) & (magnitude > threshold * magnitude.max()))


def _merge_maxima(maxima: np.ndarray, magnitude: np.ndarray, distance_mm: np.ndarray, min_dist_mm: float):
    """Keep the largest of maxima closer than ``min_dist_mm``."""
    kept: list[int] = []
    for region in maxima[np.argsort(-magnitude[maxima])]:
        if all(distance_mm[region, k] >= min_dist_mm for k in kept):
            kept.append(int(region))
    return np.array(kept, int)


def esinet_metrics(
    estimate: np.ndarray,
    truth: np.ndarray,
    distance_mm: np.ndarray,
    adjacency: sp.spmatrix,
    *,
    threshold: float = 0.1,
    min_dist_mm: float = 30.0,
    ghost_mm: float = 40.0,
    active_fraction: float = 0.25,
    n_redraw: int = 25,
    seed: int | Sequence[int] = 0,
) -> dict[str, float]:
    """ConvDip/esinet's metrics at the spike peak: maxima-based error, AUC_close, AUC_far, nMSE.

    - Localization error: local maxima (above 10% of the max, merged within
      30 mm) of the true and estimated maps at the time of the largest true
      activity; each true maximum is paired with the nearest estimated one;
      pairs farther than 40 mm are ghosts and dropped; the mean of the rest.
    - AUC: true-active regions (> 0.25 of the max) against as many inactive
      regions closest to them (AUC_close) or drawn from the others
      (AUC_far, mean over 25 draws), scored by the normalized |estimate|.
    - nMSE: mean squared difference after max-normalizing both maps.
    """
    from sklearn.metrics import roc_auc_score

    peak = int(np.abs(truth).max(axis=0).argmax())
    true_map, estimated_map = truth[:, peak], estimate[:, peak]
    true_peaks = _merge_maxima(local_maxima(true_map, adjacency, threshold), np.abs(true_map), distance_mm, min_dist_mm)
    est_magnitude = np.abs(estimated_map)
    est_peaks = _merge_maxima(
        local_maxima(estimated_map, adjacency, threshold), est_magnitude, distance_mm, min_dist_mm
    )
    errors = distance_mm[np.ix_(true_peaks, est_peaks)].min(axis=1) if len(est_peaks) else np.array([])
    errors = errors[errors <= ghost_mm]
    norm_true = np.abs(true_map) / np.abs(true_map).max()
    norm_est = est_magnitude / est_magnitude.max() if est_magnitude.max() > 0 else est_magnitude
    positives = np.flatnonzero(norm_true > active_fraction)
    negatives = np.setdiff1d(np.arange(len(true_map)), np.flatnonzero(norm_true > 0))
    n = min(len(positives), len(negatives))
    close = negatives[np.argsort(_nearest(distance_mm, negatives, positives))[:n]]
    labels = np.r_[np.ones(len(positives)), np.zeros(n)]
    auc_close = roc_auc_score(labels, np.r_[norm_est[positives], norm_est[close]])
    rng = np.random.default_rng(seed)
    others = np.setdiff1d(negatives, close)
    auc_far = np.mean([
        roc_auc_score(labels, np.r_[norm_est[positives], norm_est[rng.choice(others, n, replace=False)]])
        for _ in range(n_redraw)
    ]) if len(others) >= n and n_redraw > 0 else np.nan  # fmt: skip
    signed_true = true_map / np.abs(true_map).max()
    signed_est = estimated_map / est_magnitude.max() if est_magnitude.max() > 0 else estimated_map
    nmse = min(np.mean((signed_true - signed_est) ** 2), np.mean((signed_true + signed_est) ** 2))
    return {
        "mle_mm": float(errors.mean()) if len(errors) else np.nan,
        "auc_close": float(auc_close),
        "auc_far": float(auc_far),
        "nmse": float(nmse),
    }


def spatial_dispersion_mm(estimate: np.ndarray, patches: Sequence[np.ndarray], distance_mm: np.ndarray) -> float:
    """Spatial dispersion (Molins et al. 2008): sqrt(sum d_r^2 P_r / sum P_r), d_r to the nearest true region, mm.

    P_r is the power of region r over the window; a blurred estimate spreads
    power away from the sources and raises it.
    """
    true = np.unique(np.concatenate(patches))
    power = (estimate**2).sum(axis=1)
    if power.sum() == 0:
        return np.nan
    d = _nearest(distance_mm, np.arange(len(estimate)), true)
    return float(np.sqrt((d**2 * power).sum() / power.sum()))


def overlap_metrics(kept: np.ndarray, true: np.ndarray, distance_mm: np.ndarray) -> dict[str, float]:
    """HD95 (95th-percentile symmetric Hausdorff distance, mm) and Dice between two sets of region indices."""
    if not len(kept):
        return {"hd95_mm": np.nan, "dice": 0.0}
    forward = _nearest(distance_mm, kept, true)
    backward = _nearest(distance_mm, true, kept)
    hd95 = max(np.percentile(forward, 95), np.percentile(backward, 95))
    dice = 2 * len(np.intersect1d(kept, true)) / (len(kept) + len(true))
    return {"hd95_mm": float(hd95), "dice": float(dice)}


def _estimated_peak_region(estimate: np.ndarray, truth: np.ndarray) -> int:
    """Region of largest |estimate| at the time of the largest true activity."""
    peak = int(np.abs(truth).max(axis=0).argmax())
    return int(np.abs(estimate[:, peak]).argmax())


def peak_centre_error_mm(
    estimate: np.ndarray, truth: np.ndarray, centres: Sequence[int], distance_mm: np.ndarray
) -> float:
    """Distance from the region of largest |estimate| at the true peak time to the nearest patch *centre*, mm.

    Parameters
    ----------
    estimate, truth : array, shape (n_regions, n_times)
        Estimated and true region activity.
    centres : sequence of int
        Centre region of each true patch.
    distance_mm : array, shape (n_regions, n_regions)
        Distances between region centres, mm.
    """
    region = _estimated_peak_region(estimate, truth)
    return float(distance_mm[region, list(centres)].min())


def peak_patch_error_mm(
    estimate: np.ndarray, truth: np.ndarray, patches: Sequence[np.ndarray], distance_mm: np.ndarray
) -> float:
    """Distance from the region of largest |estimate| at the true peak time to the nearest *region of any patch*, mm.

    0 when the estimated peak lies inside a patch; never larger than
    :func:`peak_centre_error_mm`. Training's validation metric
    (``val_peak_patch_error_mm``) is this one.
    """
    region = _estimated_peak_region(estimate, truth)
    return float(distance_mm[region, np.unique(np.concatenate(patches))].min())


def evaluate(
    estimate: np.ndarray,
    truth: np.ndarray,
    patches: Sequence[np.ndarray],
    centres: Sequence[int],
    distance_mm: np.ndarray,
    adjacency: sp.spmatrix,
    *,
    n_redraw: int = 25,
    seed: int | Sequence[int] = 0,
) -> dict[str, float]:
    """Every metric on one (already windowed) sample.

    ``n_redraw`` is the number of random draws of AUC_far (0 skips it: NaN), from
    ``seed`` (an int or a sequence of ints, as :func:`numpy.random.default_rng` takes).
    """
    true = np.unique(np.concatenate(patches))
    metrics = deepsif_metrics(estimate, truth, patches, centres, distance_mm)
    metrics.update(esinet_metrics(estimate, truth, distance_mm, adjacency, n_redraw=n_redraw, seed=seed))
    metrics["dispersion_mm"] = spatial_dispersion_mm(estimate, patches, distance_mm)
    metrics.update(overlap_metrics(np.flatnonzero(otsu_regions(estimate)), true, distance_mm))
    metrics["peak_centre_error_mm"] = peak_centre_error_mm(estimate, truth, centres, distance_mm)
    metrics["peak_patch_error_mm"] = peak_patch_error_mm(estimate, truth, patches, distance_mm)
    return metrics
