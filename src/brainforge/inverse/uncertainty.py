"""A confidence per region for any solver: a noise-resampling bootstrap of its estimate.

The same procedure serves classical solvers and trained networks, so their
confidences can be compared:

1. Solve the segment once; its peak time is the sample of the largest
   |activity|.
2. Build a pool of the segment's own noise: the samples farther than
   ``noise_exclude_s`` from the peak, each channel's mean removed (background
   activity and sensor noise, with their spatial and temporal correlation).
3. Solve ``n_resamples`` replicates, each the segment plus the pool read from
   a random offset (circularly, so temporal structure is kept) with a random
   sign, and note each replicate's peak region within ``peak_window_s`` of the
   original peak time.
4. A region's confidence is the share of replicates whose peak lies within
   ``margin_mm`` of it; the ``level`` set is the fewest regions that hold that
   share of replicate peaks, widened by ``margin_mm``.

The replicates carry the segment's noise twice (once in the data, once
added), so the spread is that of a noisier recording; ``margin_mm`` is
calibrated on synthetic data with known sources
(:func:`brainforge.evaluation.calibrate_confidence`) so that the ``level``
set holds the true source centre as often as it says.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .._errors import BrainForgeError, check_seed
from .._logging import verbose
from .solvers import masked_peak_time

#: Fewest noise-pool samples (outside the peak's neighbourhood) a segment must have.
MIN_NOISE_SAMPLES = 50


@dataclass(frozen=True)
class UncertaintyConfig:
    """How the bootstrap runs.

    Parameters
    ----------
    n_resamples : int
        Bootstrap replicates (each one solver call).
    level : float
        Share of replicate peaks the confidence set holds, in (0, 1).
    margin_mm : float
        Distance around each replicate peak that counts as the same place,
        mm: it widens the confidence set and smooths the confidence. 0 counts
        the peak region alone; calibrated values per solver are in
        ``docs/model_comparison.md``.
    noise_exclude_s : float
        Samples within this of the peak are left out of the noise pool, s.
    peak_window_s : float
        Each replicate's peak is sought within this of the original peak time, s.
    seed : int
        Seed of the replicates' offsets and signs.
    """

    n_resamples: int = 30
    level: float = 0.9
    margin_mm: float = 0.0
    noise_exclude_s: float = 0.1
    peak_window_s: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_resamples < 2:
            raise BrainForgeError(f"n_resamples must be at least 2, got {self.n_resamples}.")
        if not 0.0 < self.level < 1.0:
            raise BrainForgeError(f"level must lie in (0, 1), got {self.level}.")
        if self.margin_mm < 0 or self.noise_exclude_s < 0 or self.peak_window_s < 0:
            raise BrainForgeError("margin_mm, noise_exclude_s and peak_window_s must not be negative.")
        check_seed(self.seed)


@dataclass
class RegionConfidence:
    """A bootstrap confidence per region.

    Attributes
    ----------
    confidence : array, shape (n_regions,)
        Share of replicates whose peak lies within ``margin_mm`` of the region (0-1).
    spread : array, shape (n_regions, n_times)
        Standard deviation of the replicates' activity, relative to the
        estimate's largest |value| (1 = as large as the peak).
    peak_time : int
        Sample of the estimate's largest |activity|.
    resample_peaks : array of int, shape (n_resamples,)
        Each replicate's peak region.
    confidence_set : array of int
        Regions of the ``level`` set.
    level : float
    margin_mm : float
    seconds : float
        Wall time of the bootstrap (all replicates), s.
    """

    confidence: np.ndarray
    spread: np.ndarray
    peak_time: int
    resample_peaks: np.ndarray
    confidence_set: np.ndarray
    level: float
    margin_mm: float
    seconds: float

    def set_size(self) -> int:
        """Return the number of regions in the confidence set."""
        return len(self.confidence_set)


def noise_pool(eeg: np.ndarray, peak_time: int, exclude: int, usable: np.ndarray | None = None) -> np.ndarray:
    """Return the samples of ``eeg`` (n_channels, n_times) farther than ``exclude`` from ``peak_time``, centred.

    ``usable`` (a mask over the times) leaves out others too, such as spans annotated as bad.
    """
    distance = np.abs(np.arange(eeg.shape[1]) - peak_time)
    keep = distance > exclude if usable is None else (distance > exclude) & usable
    pool = eeg[:, keep]
    if pool.shape[1] < MIN_NOISE_SAMPLES:
        raise BrainForgeError(
            f"The segment has {pool.shape[1]} samples away from its peak (> {exclude} samples), too few to "
            f"estimate its noise (at least {MIN_NOISE_SAMPLES}); localize a longer span (--tmin/--tmax)."
        )
    return pool - pool.mean(axis=1, keepdims=True)


def confidence_set(resample_peaks: np.ndarray, region_distance_mm: np.ndarray, level: float, margin_mm: float):
    """Return the fewest regions holding ``level`` of the replicate peaks, widened by ``margin_mm``."""
    counts = np.bincount(resample_peaks, minlength=region_distance_mm.shape[0])
    order = np.argsort(-counts, kind="stable")
    needed = int(np.ceil(level * len(resample_peaks) - 1e-9))
    n_core = int(np.searchsorted(np.cumsum(counts[order]), needed) + 1)
    core = order[:n_core]
    if margin_mm <= 0:
        return np.sort(core)
    return np.flatnonzero((region_distance_mm[:, core] <= margin_mm).any(axis=1))


@verbose
def region_confidence(
    solver,
    eeg: np.ndarray,
    region_distance_mm: np.ndarray,
    sfreq: float,
    config: UncertaintyConfig | None = None,
    *,
    searched: np.ndarray | None = None,
    verbose: bool | str | int | None = None,
) -> RegionConfidence:
    """Bootstrap a fitted solver's estimate of ``eeg`` (n_channels, n_times) into a confidence per region.

    Parameters
    ----------
    solver : InverseSolver
        A fitted solver (classical or network).
    eeg : array, shape (n_channels, n_times)
        The segment, as the solver takes it.
    region_distance_mm : array, shape (n_regions, n_regions)
        Region-centre distances, mm (``head.region_distance_mm``).
    sfreq : float
        Sampling rate, Hz.
    config : UncertaintyConfig | None
        Bootstrap settings (defaults when None).
    searched : array of bool, shape (n_times,) | None
        Times the peak may be taken from and the noise drawn from (``localize``
        leaves out spans annotated as bad and the filter's edges); None: all.
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    confidence : RegionConfidence
    """
    config = config or UncertaintyConfig()
    start = time.perf_counter()
    eeg = np.asarray(eeg, float)
    estimate = solver.apply_regions(eeg, sfreq).data
    magnitude = np.abs(estimate)
    peak_time = masked_peak_time(estimate, searched)
    scale = float(magnitude[:, peak_time].max()) or 1.0
    pool = noise_pool(eeg, peak_time, round(config.noise_exclude_s * sfreq), searched)
    half = round(config.peak_window_s * sfreq)
    window = slice(max(0, peak_time - half), peak_time + half + 1)
    rng = np.random.default_rng(config.seed)
    n_times, n_pool = eeg.shape[1], pool.shape[1]
    peaks = np.empty(config.n_resamples, dtype=int)
    total = np.zeros_like(estimate, dtype=float)
    total_sq = np.zeros_like(estimate, dtype=float)
    for b in range(config.n_resamples):
        offset, sign = int(rng.integers(n_pool)), float(rng.choice((-1.0, 1.0)))
        noise = pool[:, (offset + np.arange(n_times)) % n_pool]
        replicate = solver.apply_regions(eeg + sign * noise, sfreq).data / scale
        peaks[b] = int(np.abs(replicate[:, window]).max(axis=1).argmax())
        total += replicate
        total_sq += replicate**2
    mean = total / config.n_resamples
    spread = np.sqrt(np.maximum(total_sq / config.n_resamples - mean**2, 0.0) * config.n_resamples
                     / (config.n_resamples - 1))  # fmt: skip
    near = region_distance_mm[:, peaks] <= config.margin_mm if config.margin_mm > 0 else None
    if near is None:
        confidence = np.bincount(peaks, minlength=region_distance_mm.shape[0]) / config.n_resamples
    else:
        confidence = near.mean(axis=1)
    return RegionConfidence(
        confidence=confidence,
        spread=spread,
        peak_time=peak_time,
        resample_peaks=peaks,
        confidence_set=confidence_set(peaks, region_distance_mm, config.level, config.margin_mm),
        level=config.level,
        margin_mm=config.margin_mm,
        seconds=time.perf_counter() - start,
    )
