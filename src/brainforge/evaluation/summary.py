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
    n_channels: int,
    *,
    metric: str = "peak_centre_error_mm",
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Compare two solvers sample by sample on one metric: paired differences with 95 % intervals.

    Two solvers scored on one test set are not independent: most of the
    spread of either is the samples'. Matching each sample with itself
    removes it, so these intervals are much narrower than the two medians'.

    Parameters
    ----------
    samples : pandas.DataFrame
        A benchmark's ``samples.csv`` (columns ``test_set``, ``sample``,
        ``n_channels``, ``solver`` and ``metric``).
    first, other : str
        Solver names; differences are ``other`` minus ``first`` (for an
        error in mm, negative means ``other`` is better).
    n_channels : int
        The channel set to compare (each sample is paired with itself at
        this channel count only).
    metric : str
        Column to compare.
    n_bootstrap : int
        Percentile-bootstrap resamples (of samples, both solvers together).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    difference : dict
        - ``mean``, ``mean_low``, ``mean_high``: the mean per-sample
          difference and its 95 % interval;
        - ``median``, ``median_low``, ``median_high``: the difference of
          the two medians (``other``'s minus ``first``'s, what a headline
          median table compares) and its 95 % paired interval;
        - ``share_lower``, ``share_higher``: shares of pairs where
          ``other`` is lower or higher (the rest are ties), and
          ``sign_test_p``, the two-sided sign test of those counts;
        - ``n``: pairs with both values finite; ``n_dropped``: pairs left
          out because a value is not finite (a solver's non-finite failure).
    """
    from pandas.errors import MergeError
    from scipy.stats import binomtest, bootstrap

    from .._errors import BrainForgeError

    keys = ["test_set", "sample", "n_channels"]
    rows = samples[samples.n_channels == n_channels]
    for solver in (first, other):
        if not (rows.solver == solver).any():
            known = ", ".join(dict.fromkeys(samples.solver))
            raise BrainForgeError(
                f"No {solver!r} rows at {n_channels} channels to pair (solvers: {known}); check the name and count."
            )
    try:
        pairs = rows[rows.solver == first][[*keys, metric]].merge(
            rows[rows.solver == other][[*keys, metric]], on=keys, suffixes=("_first", "_other"), validate="one_to_one"
        )
    except MergeError as err:
        raise BrainForgeError(f"Samples of {first!r} or {other!r} repeat ({err}); pair one benchmark run.") from err
    values_first = pairs[f"{metric}_first"].to_numpy(float)
    values_other = pairs[f"{metric}_other"].to_numpy(float)
    finite = np.isfinite(values_first) & np.isfinite(values_other)
    values_first, values_other = values_first[finite], values_other[finite]
    if not len(values_first):
        raise BrainForgeError(f"{first!r} and {other!r} share no sample with a finite {metric}; nothing to pair.")
    difference = values_other - values_first
    mean_low, mean_high = bootstrap_interval(difference, n_bootstrap, 0.95, seed, statistic=np.mean)
    median = float(np.median(values_other) - np.median(values_first))
    if len(difference) > 1 and np.ptp(difference) > 0:
        result = bootstrap(
            (values_first, values_other), lambda a, b, axis: np.median(b, axis=axis) - np.median(a, axis=axis),
            paired=True, n_resamples=n_bootstrap, confidence_level=0.95, method="percentile", random_state=seed,
            vectorized=True,
        )  # fmt: skip
        median_low, median_high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    else:  # one pair, or one difference throughout: every resample gives the same value
        median_low = median_high = median
    n_lower, n_higher = int(np.sum(difference < 0)), int(np.sum(difference > 0))
    return {
        "mean": float(difference.mean()),
        "mean_low": mean_low,
        "mean_high": mean_high,
        "median": median,
        "median_low": median_low,
        "median_high": median_high,
        "share_lower": n_lower / len(difference),
        "share_higher": n_higher / len(difference),
        "sign_test_p": float(binomtest(n_lower, n_lower + n_higher).pvalue) if n_lower + n_higher else 1.0,
        "n": len(difference),
        "n_dropped": int((~finite).sum()),
    }


def format_paired_difference(difference: dict[str, float]) -> str:
    """Write a :func:`paired_difference` result as one line (mm, 95 % intervals).

    Parameters
    ----------
    difference : dict
        What :func:`paired_difference` returns.

    Returns
    -------
    line : str
        For example ``"mean -0.57 mm [-1.07, -0.08], medians -0.54 mm
        [-1.16, +0.08]; better in 23%, worse in 18% (sign test p = 0.036)
        of 800"``, with the count of non-finite pairs left out appended
        when there are any.
    """
    d = difference
    line = (
        f"mean {d['mean']:+.2f} mm [{d['mean_low']:+.2f}, {d['mean_high']:+.2f}], medians {d['median']:+.2f} mm "
        f"[{d['median_low']:+.2f}, {d['median_high']:+.2f}]; better in {d['share_lower']:.0%}, "
        f"worse in {d['share_higher']:.0%} (sign test p = {d['sign_test_p']:.3f}) of {d['n']}"
    )
    return line + (f", {d['n_dropped']} non-finite left out" if d["n_dropped"] else "")


def metric_columns(samples) -> list[str]:
    """Return the metric columns of a ``samples`` table."""
    fixed = {"test_set", "sample", "sensor_snr_db", "solver", "ms", "n_regions", *CONDITIONS}
    return [c for c in samples.columns if c not in fixed]


def summarize(samples, config: BenchmarkConfig):
    """Mean, median and bootstrap interval per solver, condition (``all`` included) and metric.

    Each cell's resamples come from its own generator, seeded by ``config.seed`` and the
    cell's names, so a solver's interval does not change with the other solvers, metrics or
    conditions in the table.
    """
    import zlib

    import pandas as pd

    metrics = metric_columns(samples)
    rows = []
    for condition in ("all", *CONDITIONS):
        groups = samples.groupby(["solver"] if condition == "all" else ["solver", condition], sort=True)
        for key, group in groups:
            solver, value = (key[0], "all") if condition == "all" else key
            for metric in metrics:
                values = group[metric].to_numpy(float)
                finite = values[np.isfinite(values)]
                cell = zlib.crc32(f"{solver}|{condition}|{value}|{metric}".encode())
                rng = np.random.default_rng([config.seed, cell])
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
