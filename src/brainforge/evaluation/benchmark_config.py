"""What the benchmark runs and what it returns: its configuration, metric lists and result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .._errors import BrainForgeError
from ..inverse.solvers import DEFAULT_LAMBDA2
from .metrics import SPIKE_HALF_WINDOW_MS

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
    solver_lambda2 : float
        Regularization of the minimum-norm solvers, MNE's ``lambda2`` (default 1/9).
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
    solver_lambda2: float = DEFAULT_LAMBDA2
    seed: int = 0
    ghost_mm: float = 40.0

    def __post_init__(self) -> None:
        if self.n_bootstrap < 1:
            raise BrainForgeError(f"n_bootstrap must be >= 1, got {self.n_bootstrap}.")
        if not 0 < self.confidence < 1:
            raise BrainForgeError(f"confidence must lie in (0, 1), got {self.confidence}.")
        if self.max_samples is not None and self.max_samples < 1:
            raise BrainForgeError(f"max_samples must be >= 1, got {self.max_samples}.")
        if not self.solver_lambda2 > 0:
            raise BrainForgeError(f"--lambda2 must be positive, got {self.solver_lambda2} (MNE's default is 1/9).")
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
