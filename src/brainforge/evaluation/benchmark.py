"""One benchmark for every solver: the same stored test sets, the published metrics, conditions, intervals.

``run_benchmark(solvers, test_sets, out_dir)`` fits each solver once per
head model and channel set, runs it on every sample of every test set, scores
the spike window with :func:`~brainforge.evaluation.evaluate`, and writes:

- ``samples.csv``: one row per sample and solver (conditions, time, metrics);
- ``summary.csv``: per solver and condition, each metric's mean, median and
  bootstrap confidence interval of the mean;
- ``report.md``: the same as Markdown tables, with the time per segment;
- ``error_vs_snr.png`` and ``error_vs_channels.png``: one line per solver.

Conditions are read from each sample: sensor SNR (rounded to the nearest
``snr_bins_db``), number of sources, channel count (the test set's, plus the
10-10 subsets asked for), superficial vs deep (any patch centred on a deep
region) and the forward model (matched, or the test set's mismatch).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._cache import atomic_path
from .._errors import BrainForgeError
from .metrics import SPIKE_HALF_WINDOW_MS, evaluate, spike_window

logger = logging.getLogger("brainforge")

#: Metrics in the Markdown condition tables and plots (all metrics go to the CSVs).
HEADLINE_METRICS = (
    "loc_error_mm",
    "peak_centre_error_mm",
    "peak_patch_error_mm",
    "segment_correlation",
    "failed",
    "dispersion_mm",
    "auc_close",
    "dice",
)
#: Condition columns of ``samples.csv``, in report order.
CONDITIONS = ("snr_db", "n_sources", "n_channels", "depth", "forward")
#: Metrics where lower is better (the rest: higher is better).
LOWER_IS_BETTER = (
    "loc_error_mm",
    "peak_centre_error_mm",
    "peak_patch_error_mm",
    "mle_mm",
    "nmse",
    "dispersion_mm",
    "hd95_mm",
    "segment_loc_error_mm",
    "segment_peak_centre_error_mm",
    "segment_peak_patch_error_mm",
    "failed",
    "failed_nonfinite",
    "failed_ghost",
)


@dataclass(frozen=True)
class BenchmarkConfig:
    """How the benchmark runs.

    Parameters
    ----------
    channel_counts : tuple of int | None
        Also evaluate on these 10-10 subsets (16, 21, 32, 64, 75) of each test
        set's channels, where the test set holds them; None: the test set's
        channels only.
    snr_bins_db : tuple of float
        Sensor SNRs are reported at the nearest of these, dB.
    half_window_ms : float
        Scoring window around the spike peak, +- ms.
    n_bootstrap : int
        Bootstrap resamples for the confidence interval of each mean.
    confidence : float
        Confidence level of the interval.
    max_samples : int | None
        Use only the first samples of each test set.
    solver_snr : float
        Amplitude SNR assumed by the minimum-norm solvers (``lambda2 = 1 / snr**2``).
    seed : int
        Seed of the bootstrap and of the AUC_far draws.
    ghost_mm : float
        An estimate whose strongest region at the spike peak lies farther
        than this from every true patch region counts as a failure
        (``failed_ghost``), as do estimates with NaN or inf.
    """

    channel_counts: tuple[int, ...] | None = None
    snr_bins_db: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0)
    half_window_ms: float = SPIKE_HALF_WINDOW_MS
    n_bootstrap: int = 1000
    confidence: float = 0.95
    max_samples: int | None = None
    solver_snr: float = 3.0
    seed: int = 0
    ghost_mm: float = 40.0

    def __post_init__(self) -> None:
        if self.n_bootstrap < 1:
            raise BrainForgeError(f"n_bootstrap must be >= 1, got {self.n_bootstrap}.")
        if not 0 < self.confidence < 1:
            raise BrainForgeError(f"confidence must lie in (0, 1), got {self.confidence}.")
        if self.max_samples is not None and self.max_samples < 1:
            raise BrainForgeError(f"max_samples must be >= 1, got {self.max_samples}.")
        if self.channel_counts is not None:
            from ..anatomy import CHANNEL_SUBSETS

            unknown = [n for n in self.channel_counts if f"1010-{n}" not in CHANNEL_SUBSETS]
            if unknown:
                known = ", ".join(k.split("-")[1] for k in CHANNEL_SUBSETS)
                raise BrainForgeError(f"No 10-10 subset with {unknown} channels; choose from {known}.")


@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` measured.

    Attributes
    ----------
    samples : pandas.DataFrame
        One row per sample, channel set and solver.
    summary : pandas.DataFrame
        Mean, median and interval per solver, condition and metric.
    timing : pandas.DataFrame
        Fit seconds and milliseconds per segment per solver and channel count.
    files : list of Path
        Files written.
    skipped : list of str
        Solver / channel-set pairs that could not run, with the reason.
    """

    samples: object
    summary: object
    timing: object
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- inputs
def solver_label(name: str) -> str:
    """Column label of a solver: the classical name, or a model folder's name."""
    from ..inverse import CLASSICAL_SOLVERS

    return name.lower() if name.lower() in CLASSICAL_SOLVERS else Path(name).name or name


def check_solver_names(names: Sequence[str]) -> list[str]:
    """Refuse unknown solver names and model folders without weights before any work starts."""
    from ..inverse import CLASSICAL_SOLVERS

    if not names:
        raise BrainForgeError("No solver given; pass e.g. --solvers sloreta,eloreta,MODEL_DIR.")
    checked = []
    for name in names:
        if name.lower() in CLASSICAL_SOLVERS:
            checked.append(name.lower())
            continue
        path = Path(name)
        if not path.is_dir():
            raise BrainForgeError(
                f"Unknown solver {name!r}: not one of {', '.join(CLASSICAL_SOLVERS)} and not a model folder."
            )
        if not (path / "model.safetensors").is_file():
            raise BrainForgeError(f"Model folder {path} has no model.safetensors; train one with `brainforge train`.")
        checked.append(str(path))
    labels = [solver_label(n) for n in checked]
    if len(set(labels)) != len(labels):
        raise BrainForgeError(f"Two solvers share a name ({', '.join(labels)}); give model folders distinct names.")
    return checked


def forward_label(mismatch: dict | None) -> str:
    """Short name of a test set's forward model relative to the solvers' (``matched`` when unaltered)."""
    if not mismatch:
        return "matched"
    parts = []
    for key, value in mismatch.items():
        if key == "conductivity":
            parts.append(f"skull:{value[1]:g}")
        elif key == "electrode_jitter_mm":
            parts.append(f"jitter:{value:g}")
        elif key == "jitter_seed":
            continue
        elif key == "cap_shift_mm":
            parts.append(f"shift:{float(np.hypot(*value)):g}")
        elif key == "conductor":
            parts.append(str(value))
        else:
            parts.append(f"{key}:{value}")
    return ",".join(parts)


def matched_head_model(metadata: dict):
    """Build the solvers' head model for a test set: its template configuration without the forward mismatch."""
    from ..anatomy import make_head_model

    config = metadata.get("head_config")
    if config is None or config.get("montage") == "custom":
        raise BrainForgeError(
            "The test set was made on a saved or custom head model; pass the solvers' head model with --head."
        )
    montage = config["montage"] if config["montage"] != "names" else list(config["channels"])
    return make_head_model(
        montage,
        channels=None if config["channels"] is None or config["montage"] == "names" else list(config["channels"]),
        n_regions=config["n_regions"],
        deep=config["deep"],
        deep_spacing_mm=config["deep_spacing_mm"],
        skull_mm=config["skull_mm"],
        seed=config["seed"],
    )


def check_test_set_head(metadata: dict, head, name: str) -> None:
    """Refuse a test set whose regions or channels are not the head model's."""
    centres = np.asarray(metadata["region_centres_mm"], float)
    if centres.shape != head.region_centres.shape or np.abs(centres - head.region_centres).max() > 0.01:
        raise BrainForgeError(
            f"Test set {name} comes from another head model ({len(centres)} regions) than the solvers' "
            f"({head.description}, {head.n_regions} regions); benchmark it against its own head model (--head)."
        )
    missing = sorted(set(metadata["ch_names"]) - set(head.ch_names))
    if missing:
        raise BrainForgeError(
            f"Test set {name} has channels the solvers' head model lacks: {', '.join(missing[:10])}; "
            "use a head model with its montage (--head)."
        )


def snr_bin(snr_db: float, bins: Sequence[float]) -> float:
    """Return the nearest of ``bins`` to ``snr_db``."""
    bins = np.asarray(bins, float)
    return float(bins[np.argmin(np.abs(bins - snr_db))])


# ---------------------------------------------------------------------- running
def _channel_sets(test_names: list[str], counts: Sequence[int] | None) -> list[list[str]]:
    """List the test set's channels, then each asked-for 10-10 subset it holds (in the test set's order)."""
    from ..anatomy import CHANNEL_SUBSETS

    sets = [test_names]
    for count in counts or ():
        if count == len(test_names):
            continue
        subset = set(CHANNEL_SUBSETS[f"1010-{count}"])
        if not subset <= set(test_names):
            logger.warning("The test set lacks some 1010-%d channels; that channel count is skipped.", count)
            continue
        sets.append([c for c in test_names if c in subset])
    return sets


class _SolverCache:
    """Fitted solvers, one per (solver, head model, channel set), fitted on first use."""

    def __init__(self, config: BenchmarkConfig):
        self.config = config
        self.fitted: dict = {}
        self.fit_seconds: dict = {}

    def get(self, name: str, head, channels: list[str]):
        from ..inverse import CLASSICAL_SOLVERS, make_solver

        key = (name, head.description, tuple(channels))
        if key not in self.fitted:
            options = {"snr": self.config.solver_snr} if name in CLASSICAL_SOLVERS else {}
            sub_head = head.pick_channels(channels) if list(channels) != list(head.ch_names) else head
            start = time.perf_counter()
            self.fitted[key] = make_solver(name, **options).fit(sub_head)
            self.fit_seconds[(solver_label(name), len(channels))] = time.perf_counter() - start
        return self.fitted[key]


def _rows_for_test_set(
    path: Path, solvers: list[str], head, cache: _SolverCache, config: BenchmarkConfig, skipped: list[str], progress
) -> list[dict]:
    from tqdm.auto import tqdm

    from ..synthesis.store import read_test_set

    test = read_test_set(path)
    meta = test.metadata
    check_test_set_head(meta, head, path.name)
    test_channels = list(meta["ch_names"])
    n_samples = len(test) if config.max_samples is None else min(len(test), config.max_samples)
    forward = forward_label(meta.get("forward_mismatch"))
    distance, adjacency, deep = head.region_distance, head.region_adjacency, head.region_is_deep
    sets = _channel_sets(test_channels, config.channel_counts)
    runnable = {}  # (solver, set index) -> fitted solver, or None when it cannot run
    rows: list[dict] = []
    block = 64
    bar = tqdm(total=n_samples, desc=f"benchmark {path.name}", unit="sample", disable=not progress)
    for start in range(0, n_samples, block):
        stop = min(n_samples, start + block)
        eeg_block = np.asarray(test.eeg[start:stop], float)
        sources_block = np.asarray(test.sources[start:stop], float)
        for offset, i in enumerate(range(start, stop)):
            truth = sources_block[offset].T
            window = spike_window(truth, test.sfreq, config.half_window_ms)
            patches = test.patches(i)
            centres = test.centres[i][test.centres[i] >= 0]
            base = {
                "test_set": path.name,
                "sample": i,
                "snr_db": snr_bin(float(test.sensor_snr_db[i]), config.snr_bins_db),
                "sensor_snr_db": float(test.sensor_snr_db[i]),
                "n_sources": len(centres),
                "depth": "deep" if deep[centres].any() else "superficial",
                "forward": forward,
            }
            for set_index, channels in enumerate(sets):
                picks = [test_channels.index(c) for c in channels]
                eeg = eeg_block[offset][:, picks].T
                eeg = eeg - eeg.mean(axis=0)
                for name in solvers:
                    key = (name, set_index)
                    if key not in runnable:
                        runnable[key] = _first_fit(name, head, channels, cache, eeg, test.sfreq, skipped)
                    solver = runnable[key]
                    if solver is None:
                        continue
                    tic = time.perf_counter()
                    activity = solver.apply(eeg, test.sfreq)
                    elapsed_ms = (time.perf_counter() - tic) * 1e3
                    estimate = activity.data
                    finite = bool(np.isfinite(estimate).all())
                    estimate = estimate if finite else np.nan_to_num(estimate, nan=0.0, posinf=0.0, neginf=0.0)
                    metrics = evaluate(estimate[:, window], truth[:, window], patches, centres, distance, adjacency)
                    # AUC_far is not kept for the whole segment: its 25 redraws were a third of the scoring time.
                    whole = evaluate(estimate, truth, patches, centres, distance, adjacency, n_redraw=0)
                    if not finite:  # scored as failures, not as numbers
                        metrics = dict.fromkeys(metrics, np.nan)
                        whole = dict.fromkeys(whole, np.nan)
                    metrics.update({f"segment_{k}": v for k, v in whole.items() if k in SEGMENT_METRICS})
                    metrics.update(failure_flags(activity.data, metrics, config.ghost_mm))
                    rows.append(
                        {**base, "n_channels": len(channels), "solver": solver_label(name), "ms": elapsed_ms, **metrics}
                    )
        bar.update(stop - start)
    bar.close()
    return rows


#: Metrics also scored over the whole segment (columns ``segment_<metric>``).
SEGMENT_METRICS = ("loc_error_mm", "peak_centre_error_mm", "peak_patch_error_mm", "correlation", "auc_close")


def failure_flags(estimate: np.ndarray, metrics: dict, ghost_mm: float) -> dict[str, float]:
    """Failure indicators of one estimate: 1.0 or 0.0, so that their mean is a rate and their sum a count.

    ``failed_nonfinite``: the estimate holds NaN or inf (its metrics are
    NaN and drop out of the means, but it is counted here).
    ``failed_ghost``: the strongest region at the spike peak lies more than
    ``ghost_mm`` from every true patch region.
    ``failed``: either.
    """
    nonfinite = not (np.isfinite(estimate).all() and np.isfinite(metrics["peak_patch_error_mm"]))
    ghost = not nonfinite and not metrics["peak_patch_error_mm"] <= ghost_mm
    return {"failed_nonfinite": float(nonfinite), "failed_ghost": float(ghost), "failed": float(nonfinite or ghost)}


def _first_fit(name, head, channels, cache, eeg, sfreq, skipped):
    """Fit (or fetch) a solver and try it once; a solver that cannot handle the channel set is skipped."""
    try:
        solver = cache.get(name, head, channels)
        solver.apply(eeg, sfreq)
    except BrainForgeError as err:
        message = f"{solver_label(name)} on {len(channels)} channels: {err}"
        if message not in skipped:
            logger.warning("Skipped %s", message)
            skipped.append(message)
        return None
    return solver


# ---------------------------------------------------------------------- summaries
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


def summarise(samples, config: BenchmarkConfig):
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


def timing_table(samples, cache: _SolverCache):
    """Fit seconds and time per segment (mean and median ms) per solver and channel count."""
    import pandas as pd

    rows = []
    for (solver, n_channels), group in samples.groupby(["solver", "n_channels"], sort=True):
        rows.append({
            "solver": solver, "n_channels": n_channels, "fit_s": cache.fit_seconds.get((solver, n_channels), np.nan),
            "ms_per_segment_mean": group["ms"].mean(), "ms_per_segment_median": group["ms"].median(),
            "segments": len(group),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _cell(row) -> str:
    return f"{row['mean']:.3g} [{row['ci_low']:.3g}, {row['ci_high']:.3g}]" if row["n"] else "-"


def markdown_report(summary, timing, config: BenchmarkConfig, test_sets: list[str], skipped: list[str]) -> str:
    """Write the Markdown report: overall metrics, one table per condition, timings."""
    level = round(config.confidence * 100)
    lines = [
        "# BrainForge benchmark",
        "",
        f"Test sets: {', '.join(test_sets)}. Scored on +-{config.half_window_ms:g} ms around each spike peak; "
        "`segment_*` metrics over the whole segment. "
        f"Cells: mean [{level}% bootstrap interval of the mean, {config.n_bootstrap} resamples]. "
        "Lower is better for errors (mm), dispersion, HD95 and nMSE; higher for AUC, Dice, precision, recall "
        "and correlation. Per-sample values: `samples.csv`; medians: `summary.csv`.",
        "",
        "## All samples",
        "",
    ]
    overall = summary[summary.condition == "all"]
    metrics = list(dict.fromkeys(overall.metric))
    solvers = list(dict.fromkeys(overall.solver))
    lines += ["| metric | " + " | ".join(solvers) + " |", "| --- |" + " --- |" * len(solvers)]
    for metric in metrics:
        cells = []
        for solver in solvers:
            row = overall[(overall.solver == solver) & (overall.metric == metric)]
            cells.append(_cell(row.iloc[0]) if len(row) else "-")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Failures (counted, never dropped from this count; ghost: peak > {config.ghost_mm:g} mm from every "
        "true patch region; non-finite: NaN or inf estimate, left out of the means above):",
        "",
    ]
    for solver in solvers:
        counts = {}
        for metric in ("failed", "failed_ghost", "failed_nonfinite"):
            row = overall[(overall.solver == solver) & (overall.metric == metric)]
            counts[metric] = (
                (round(row["mean"].iloc[0] * row["n"].iloc[0]), int(row["n"].iloc[0])) if len(row) else (0, 0)
            )
        failed, n = counts["failed"]
        lines.append(
            f"- {solver}: {failed} of {n} "
            f"({counts['failed_ghost'][0]} ghost, {counts['failed_nonfinite'][0]} non-finite)"
        )
    for condition in CONDITIONS:
        part = summary[(summary.condition == condition) & summary.metric.isin(HEADLINE_METRICS)]
        values = sorted(set(part.value), key=_sort_key)
        if len(values) < 2 and condition != "n_channels":
            continue
        lines += [
            "",
            f"## By {condition}",
            "",
            "| solver | " + condition + " | n | " + " | ".join(HEADLINE_METRICS) + " |",
        ]
        lines.append("| --- | --- | --- |" + " --- |" * len(HEADLINE_METRICS))
        for solver in solvers:
            for value in values:
                rows = part[(part.solver == solver) & (part.value == value)]
                if not len(rows):
                    continue
                cells = [
                    _cell(rows[rows.metric == m].iloc[0]) if (rows.metric == m).any() else "-" for m in HEADLINE_METRICS
                ]
                lines.append(f"| {solver} | {value} | {int(rows.n.max())} | " + " | ".join(cells) + " |")
    lines += ["", "## Time", "", "| solver | channels | fit (s) | ms per segment (mean) | median | segments |"]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for _, row in timing.iterrows():
        lines.append(
            f"| {row.solver} | {row.n_channels} | {row.fit_s:.2f} | {row.ms_per_segment_mean:.2f} | "
            f"{row.ms_per_segment_median:.2f} | {row.segments} |"
        )
    if skipped:
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in skipped]
    return "\n".join(lines) + "\n"


def _sort_key(value):
    return (0, float(value), "") if isinstance(value, int | float | np.number) else (1, 0.0, str(value))


def plot_against(
    summary, condition: str, path: Path, metrics: Sequence[str] = ("loc_error_mm", "peak_centre_error_mm")
):
    """PNG of each metric's mean (with its interval) against ``condition``, one line per solver."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    part = summary[summary.condition == condition]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for axis, metric in zip(axes[0], metrics, strict=True):
        for solver, rows in part[part.metric == metric].groupby("solver", sort=True):
            rows = rows.assign(x=rows.value.astype(float)).sort_values("x")
            errors = np.vstack([rows["mean"] - rows.ci_low, rows.ci_high - rows["mean"]])
            axis.errorbar(rows.x, rows["mean"], yerr=np.clip(errors, 0, None), marker="o", capsize=3, label=solver)
        axis.set_xlabel({"snr_db": "sensor SNR (dB)", "n_channels": "channels"}.get(condition, condition))
        axis.set_ylabel(metric.replace("_mm", " (mm)"))
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def run_benchmark(
    solvers: Sequence[str],
    test_sets: Sequence[str | Path],
    out_dir: str | Path,
    config: BenchmarkConfig | None = None,
    *,
    head=None,
    progress: bool = True,
) -> BenchmarkResult:
    """Run every solver on every test set and write the tables and plots.

    Parameters
    ----------
    solvers : list of str
        Classical solver names (``sloreta``, ``eloreta``, ``dspm``, ``mne``,
        ``wmne``, ``lcmv``) and trained-model folders.
    test_sets : list of path
        Test sets written by ``brainforge synth``.
    out_dir : path
        Report folder (created; files in it are replaced atomically).
    config : BenchmarkConfig | None
        Conditions, bootstrap and solver settings.
    head : HeadModel | None
        The solvers' head model; by default each test set's template head
        model without its forward mismatch (so a mismatched test set is
        solved with the matched model, as in practice).
    progress : bool
        Show progress bars.

    Returns
    -------
    result : BenchmarkResult
    """
    import pandas as pd

    config = config or BenchmarkConfig()
    solvers = check_solver_names(list(solvers))
    paths = [Path(p) for p in test_sets]
    if not paths:
        raise BrainForgeError("No test set given; make one with `brainforge synth` and pass it with --test.")
    for path in paths:
        if not (path / "zarr.json").is_file():
            raise BrainForgeError(f"Test set not found: {path}. Make one with `brainforge synth`.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache, skipped, rows = _SolverCache(config), [], []
    heads: dict = {}
    from ..synthesis.store import read_test_set

    for path in paths:
        solver_head = head
        if solver_head is None:
            meta = read_test_set(path).metadata
            key = json_key(meta.get("head_config"))
            if key not in heads:
                heads[key] = matched_head_model(meta)
            solver_head = heads[key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN metrics of empty estimates are kept as NaN
            rows += _rows_for_test_set(path, solvers, solver_head, cache, config, skipped, progress)
    if not rows:
        raise BrainForgeError("No solver could run on these test sets: " + "; ".join(skipped))
    samples = pd.DataFrame(rows)
    summary = summarise(samples, config)
    timing = timing_table(samples, cache)
    files = []
    for name, table in (("samples.csv", samples), ("summary.csv", summary), ("timing.csv", timing)):
        _write_text(out_dir / name, table.to_csv(index=False))
        files.append(out_dir / name)
    _write_text(out_dir / "report.md", markdown_report(summary, timing, config, [p.name for p in paths], skipped))
    files.append(out_dir / "report.md")
    for condition, name in (("snr_db", "error_vs_snr.png"), ("n_channels", "error_vs_channels.png")):
        plot_against(summary, condition, out_dir / name)
        files.append(out_dir / name)
    return BenchmarkResult(samples, summary, timing, files, skipped)


def json_key(value) -> str:
    """Return a hashable key for a JSON-like value."""
    import json

    return json.dumps(value, sort_keys=True, default=str)
