"""One benchmark for every solver: the same stored test sets, the published metrics, conditions, intervals.

``run_benchmark(solvers, test_sets, out_dir)`` fits each solver once per
head model and channel set, runs it on every sample of every test set, scores
the spike window with :func:`~brainforge.evaluation.evaluate`, and writes:

- ``samples.csv``: one row per sample and solver (conditions, time, metrics);
- ``summary.csv``: per solver and condition, each metric's mean, median and
  bootstrap confidence interval of the mean;
- ``report.md``: the same as Markdown tables, with the time per segment;
- ``error_vs_snr.png`` and ``error_vs_channels.png``: one line per solver.

The configuration and result live in :mod:`.benchmark_config`, the intervals
and summaries in :mod:`.summary`, the Markdown and plots in :mod:`.report`;
this module reads test sets, fits and runs the solvers, and scores them.

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
from pathlib import Path

import numpy as np

from .._errors import BrainForgeError
from .._logging import verbose
from ..anatomy.forward_mismatch import forward_mismatch_label
from .benchmark_config import BenchmarkConfig, BenchmarkResult
from .metrics import evaluate, spike_window
from .report import markdown_report, plot_against, write_text
from .summary import summarize, timing_table

logger = logging.getLogger("brainforge")


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
        if name == "default" and not Path(name).is_dir():  # the bundled network, as localize and compare take it
            checked.append(name)
            continue
        path = Path(name)
        if not path.is_dir():
            raise BrainForgeError(
                f"Unknown solver {name!r}: not 'default', not one of {', '.join(CLASSICAL_SOLVERS)} and not a "
                "model folder."
            )
        if not (path / "model.safetensors").is_file():
            raise BrainForgeError(f"Model folder {path} has no model.safetensors; train one with `brainforge train`.")
        checked.append(str(path))
    labels = [solver_label(n) for n in checked]
    if len(set(labels)) != len(labels):
        raise BrainForgeError(f"Two solvers share a name ({', '.join(labels)}); give model folders distinct names.")
    return checked


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
    if centres.shape != head.region_centres_mm.shape or np.abs(centres - head.region_centres_mm).max() > 0.01:
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
            options = {"lambda2": self.config.solver_lambda2} if name in CLASSICAL_SOLVERS else {}
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
    forward = forward_mismatch_label(meta.get("forward_mismatch"))
    distance, adjacency, deep = head.region_distance_mm, head.region_adjacency, head.region_is_deep
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
            estimates = solver_estimates(eeg_block[offset], test_channels, sets, solvers, runnable, head, cache,
                                         test.sfreq, skipped)  # fmt: skip
            for channels, name, (raw, estimate, finite, elapsed_ms) in estimates:
                metrics = evaluate(estimate[:, window], truth[:, window], patches, centres, distance, adjacency,
                                   seed=[config.seed, i])  # fmt: skip
                # AUC_far is not kept for the whole segment: its 25 redraws were a third of the scoring time.
                whole = evaluate(estimate, truth, patches, centres, distance, adjacency, n_redraw=0)
                if not finite:  # scored as failures, not as numbers
                    metrics = dict.fromkeys(metrics, np.nan)
                    whole = dict.fromkeys(whole, np.nan)
                metrics.update({f"segment_{k}": v for k, v in whole.items() if k in SEGMENT_METRICS})
                metrics.update(failure_flags(raw, metrics, config.ghost_mm))
                rows.append(
                    {**base, "n_channels": len(channels), "solver": solver_label(name), "ms": elapsed_ms, **metrics}
                )
        bar.update(stop - start)
    bar.close()
    return rows


#: Metrics also scored over the whole segment (columns ``segment_<metric>``).
SEGMENT_METRICS = ("loc_error_mm", "peak_centre_error_mm", "peak_patch_error_mm", "correlation", "auc_close")


def single_threaded_blas():
    """Context in which BLAS (numpy's, scipy's, MNE's) runs on one thread while solvers are timed side by side.

    OpenBLAS threads keep spinning for a while after a call; the network that
    runs next then shares the cores with them. On two cores the default
    network took 14.6-17.9 ms per segment beside sLORETA, 7.3-10.7 ms without
    it and 7.4-7.5 ms beside it with BLAS on one thread, where sLORETA itself
    took 1.25 ms instead of 1.7-3.1 (``scripts/timing_contention_probe.py``;
    ``training_runs/default-v22/scoring/timing_contention.log``). PyTorch keeps
    its own threads.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


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


def timed_estimate(runnable: dict, name: str, set_index: int, head, channels, cache, eeg, sfreq, skipped):
    """Run one solver on one segment, fitting it on first use; None when it cannot run on these channels.

    Returns ``(raw, estimate, finite, ms)``: the region activity as
    returned, the same with NaN and inf set to 0 (what the metrics see),
    whether it was finite, and the time of ``apply_regions`` in ms.
    ``runnable`` caches the fitted solver (or None) per ``(name, set_index)``.
    """
    key = (name, set_index)
    if key not in runnable:
        runnable[key] = _first_fit(name, head, channels, cache, eeg, sfreq, skipped)
    solver = runnable[key]
    if solver is None:
        return None
    tic = time.perf_counter()
    raw = solver.apply_regions(eeg, sfreq).data
    elapsed_ms = (time.perf_counter() - tic) * 1e3
    finite = bool(np.isfinite(raw).all())
    estimate = raw if finite else np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
    return raw, estimate, finite, elapsed_ms


def solver_estimates(eeg_all, test_channels, sets, solvers, runnable, head, cache, sfreq, skipped):
    """Run every solver on one segment over every channel set (average-referenced there).

    ``eeg_all`` is the segment (times, channels) in the order of ``test_channels``; ``sets`` are the
    channel sets scored. Yields ``(channels, solver name, (raw, estimate, finite, ms))`` as
    :func:`timed_estimate` returns them, leaving out solvers that cannot run on a set.
    """
    for set_index, channels in enumerate(sets):
        eeg = eeg_all[:, [test_channels.index(c) for c in channels]].T
        eeg = eeg - eeg.mean(axis=0)
        for name in solvers:
            timed = timed_estimate(runnable, name, set_index, head, channels, cache, eeg, sfreq, skipped)
            if timed is not None:
                yield channels, name, timed


def _first_fit(name, head, channels, cache, eeg, sfreq, skipped):
    """Fit (or fetch) a solver and try it once; a solver that cannot handle the channel set is skipped."""
    try:
        solver = cache.get(name, head, channels)
        solver.apply_regions(eeg, sfreq)
    except BrainForgeError as err:
        message = f"{solver_label(name)} on {len(channels)} channels: {err}"
        if message not in skipped:
            logger.warning("Skipped %s", message)
            skipped.append(message)
        return None
    return solver


@verbose
def run_benchmark(
    solvers: Sequence[str],
    test_sets: Sequence[str | Path],
    out_dir: str | Path,
    config: BenchmarkConfig | None = None,
    *,
    head=None,
    progress: bool = True,
    verbose: bool | str | int | None = None,
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
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

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
        with warnings.catch_warnings(), single_threaded_blas():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN metrics of empty estimates are kept as NaN
            rows += _rows_for_test_set(path, solvers, solver_head, cache, config, skipped, progress)
    if not rows:
        raise BrainForgeError("No solver could run on these test sets: " + "; ".join(skipped))
    samples = pd.DataFrame(rows)
    summary = summarize(samples, config)
    timing = timing_table(samples, cache.fit_seconds)
    files = []
    for name, table in (("samples.csv", samples), ("summary.csv", summary), ("timing.csv", timing)):
        write_text(out_dir / name, table.to_csv(index=False))
        files.append(out_dir / name)
    write_text(out_dir / "report.md", markdown_report(summary, timing, config, [p.name for p in paths], skipped))
    files.append(out_dir / "report.md")
    for condition, name in (("snr_db", "error_vs_snr.png"), ("n_channels", "error_vs_channels.png")):
        plot_against(summary, condition, out_dir / name)
        files.append(out_dir / name)
    return BenchmarkResult(samples, summary, timing, files, skipped)


def json_key(value) -> str:
    """Return a hashable key for a JSON-like value."""
    import json

    return json.dumps(value, sort_keys=True, default=str)
