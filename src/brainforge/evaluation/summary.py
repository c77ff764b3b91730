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
