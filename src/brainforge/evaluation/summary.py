"""Benchmark statistics: bootstrap intervals, per-condition summaries and timing tables."""

from __future__ import annotations

import numpy as np

from .benchmark_config import CONDITIONS, BenchmarkConfig


def bootstrap_interval(
    values: np.ndarray, n_bootstrap: int, confidence: float, rng: np.random.Generator | int, statistic=np.mean
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` of the finite ``values`` (:func:`scipy.stats.bootstrap`)."""
    from scipy.stats import bootstrap

    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if not len(values):
        return np.nan, np.nan
    if np.ptp(values) == 0:  # one value, or all equal: every resample has the same statistic
        return float(values[0]), float(values[0])
    result = bootstrap(
        (values,), statistic, n_resamples=n_bootstrap, confidence_level=confidence, method="percentile",
        random_state=rng, vectorized=True,
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_difference(
    samples,
    first: str,
    other: str,
    *,
    metric: str = "peak_centre_error_mm",
    n_channels: int | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean per-sample difference ``other - first`` of one metric on the same samples, with a 95 % interval.

    Two solvers scored on one test set are not independent: most of the
    spread of either is the samples'. Matching each sample with itself
    removes it, so this interval is much narrower than the difference of two
    medians' intervals.

    Parameters
    ----------
    samples : pandas.DataFrame
        A benchmark's ``samples.csv`` (columns ``test_set``, ``sample``,
        ``n_channels``, ``solver`` and ``metric``).
    first, other : str
        Solver names; the difference is ``other`` minus ``first`` (for an
        error in mm, negative means ``other`` is better).
    metric : str
        Column to compare.
    n_channels : int | None
        Only rows with this channel count (None: all, each channel count
        paired with itself).
    n_bootstrap : int
        Percentile-bootstrap resamples of the per-sample differences.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    difference : dict
        ``mean``, ``low`` and ``high`` (95 % interval of the mean), the shares
        of pairs where ``other`` is lower (``share_lower``) and higher
        (``share_higher``), and ``n``, the pairs with both values finite.
    """
    from .._errors import BrainForgeError

    keys = ["test_set", "sample", "n_channels"]
    rows = samples if n_channels is None else samples[samples.n_channels == n_channels]
    for solver in (first, other):
        if not (rows.solver == solver).any():
            known = ", ".join(dict.fromkeys(samples.solver))
            raise BrainForgeError(f"No {solver!r} rows to pair (solvers: {known}); check the solver name.")
    pairs = rows[rows.solver == first][[*keys, metric]].merge(
        rows[rows.solver == other][[*keys, metric]], on=keys, suffixes=("_first", "_other"), validate="one_to_one"
    )
    difference = (pairs[f"{metric}_other"] - pairs[f"{metric}_first"]).to_numpy(float)
    difference = difference[np.isfinite(difference)]
    if not len(difference):
        raise BrainForgeError(f"{first!r} and {other!r} share no sample with a finite {metric}; nothing to pair.")
    low, high = bootstrap_interval(difference, n_bootstrap, 0.95, seed, statistic=np.mean)
    return {
        "mean": float(difference.mean()),
        "low": low,
        "high": high,
        "share_lower": float(np.mean(difference < 0)),
        "share_higher": float(np.mean(difference > 0)),
        "n": len(difference),
    }


def metric_columns(samples) -> list[str]:
    """Return the metric columns of a ``samples`` table."""
    fixed = {"test_set", "sample", "sensor_snr_db", "solver", "ms", "n_regions", *CONDITIONS}
    return [c for c in samples.columns if c not in fixed]


def summarize(samples, config: BenchmarkConfig):
    """Mean, median and bootstrap interval per solver, condition (``all`` included) and metric."""
    import pandas as pd

    rng = np.random.default_rng(config.seed)
    metrics = metric_columns(samples)
    rows = []
    for condition in ("all", *CONDITIONS):
        groups = samples.groupby(["solver"] if condition == "all" else ["solver", condition], sort=True)
        for key, group in groups:
            solver, value = (key[0], "all") if condition == "all" else key
            for metric in metrics:
                values = group[metric].to_numpy(float)
                finite = values[np.isfinite(values)]
                low, high = bootstrap_interval(finite, config.n_bootstrap, config.confidence, rng)
                rows.append({
                    "solver": solver, "condition": condition, "value": value, "metric": metric,
                    "n": len(finite), "mean": finite.mean() if len(finite) else np.nan,
                    "median": np.median(finite) if len(finite) else np.nan, "ci_low": low, "ci_high": high,
                })  # fmt: skip
    return pd.DataFrame(rows)


def timing_table(samples, fit_seconds: dict):
    """Fit seconds (``fit_seconds[(solver, n_channels)]``) and time per segment (mean and median ms)."""
    import pandas as pd

    rows = []
    for (solver, n_channels), group in samples.groupby(["solver", "n_channels"], sort=True):
        rows.append({
            "solver": solver, "n_channels": n_channels, "fit_s": fit_seconds.get((solver, n_channels), np.nan),
            "ms_per_segment_mean": group["ms"].mean(), "ms_per_segment_median": group["ms"].median(),
            "segments": len(group),
        })  # fmt: skip
    return pd.DataFrame(rows)
