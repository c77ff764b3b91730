"""Calibrate the bootstrap confidence on synthetic data with known sources: coverage and margin.

The confidence set of :func:`~brainforge.inverse.uncertainty.region_confidence`
at level 0.9 should hold a true source centre in 90 % of segments. The
bootstrap sees only the noise, not the bias of a mismatched head model, so on
held-out forward models its bare set covers less. :func:`calibrate_confidence`
measures that and finds the margin that fixes it, split-conformally:

1. On every sample, run the bootstrap (margin 0) and take the distance from
   the nearest true patch centre to the nearest region of the set (0 when a
   true centre is in it).
2. On the calibration half (even sample indices), the margin is the
   ``ceil((n + 1) * level) / n`` quantile of those distances.
3. On the other half, report the coverage with no margin and with the
   calibrated one, and the set sizes, overall and by SNR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .._logging import verbose
from ..inverse.uncertainty import UncertaintyConfig, region_confidence


@dataclass
class CalibrationResult:
    """What :func:`calibrate_confidence` measured.

    Attributes
    ----------
    solver : str
    level : float
        Nominal coverage of the confidence set.
    margin_mm : float
        Calibrated margin (from the calibration half).
    coverage_bare : float
        Evaluation half: share of samples whose set (no margin) holds a true centre.
    coverage : float
        Evaluation half: the same with the calibrated margin.
    coverage_interval : (float, float)
        95 % Wilson interval of ``coverage``.
    samples : pandas.DataFrame
        One row per sample: test set, index, SNR, sources, depth, half,
        distance to the set (mm), bare and widened set sizes (regions).
    ms_per_segment : float
        Median wall time of one bootstrap (all replicates), ms.
    n_resamples : int
    """

    solver: str
    level: float
    margin_mm: float
    coverage_bare: float
    coverage: float
    coverage_interval: tuple[float, float]
    samples: object
    ms_per_segment: float
    n_resamples: int

    def to_dict(self) -> dict:
        """JSON-ready summary (no per-sample rows)."""
        return {
            "solver": self.solver,
            "level": self.level,
            "margin_mm": round(self.margin_mm, 2),
            "coverage_bare": round(self.coverage_bare, 4),
            "coverage": round(self.coverage, 4),
            "coverage_interval": [round(v, 4) for v in self.coverage_interval],
            "n_calibration": int((self.samples.half == "calibration").sum()),
            "n_evaluation": int((self.samples.half == "evaluation").sum()),
            "ms_per_segment": round(self.ms_per_segment, 1),
            "n_resamples": self.n_resamples,
        }


def conformal_margin(distances: np.ndarray, level: float) -> float:
    """Return the split-conformal quantile: the ``ceil((n + 1) * level)``-th smallest distance (inf if too few)."""
    distances = np.sort(np.asarray(distances, float))
    rank = int(np.ceil((len(distances) + 1) * level))
    return float(distances[rank - 1]) if rank <= len(distances) else float("inf")


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return float(centre - half), float(centre + half)


def distance_to_set(centres: np.ndarray, regions: np.ndarray, region_distance_mm: np.ndarray) -> float:
    """Distance from the nearest true centre to the nearest region of a set, mm."""
    return float(region_distance_mm[np.ix_(centres, regions)].min())


@verbose
def calibrate_confidence(
    solver,
    head,
    test_sets: Sequence[str | Path],
    config: UncertaintyConfig | None = None,
    *,
    max_samples: int | None = None,
    label: str | None = None,
    progress: bool = False,
    verbose: bool | str | int | None = None,
) -> CalibrationResult:
    """Measure the coverage of the bootstrap confidence set on stored test sets and calibrate its margin.

    Parameters
    ----------
    solver : InverseSolver
        A solver fitted on ``head`` (classical or network).
    head : HeadModel
        The template head model the solver is fitted on (the test sets' regions).
    test_sets : list of path
        Stored test sets (for an honest figure: forward models outside training).
    config : UncertaintyConfig | None
        Bootstrap settings; its ``margin_mm`` is ignored (calibrated here).
    max_samples : int | None
        Samples used per test set (all when None).
    label : str | None
        Name of the solver in the result.
    progress : bool
        Show a progress bar.
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    result : CalibrationResult
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from ..synthesis.store import read_test_set
    from .benchmark import check_test_set_head

    config = replace(config or UncertaintyConfig(), margin_mm=0.0)
    distance = head.region_distance_mm
    rows = []
    for path in map(Path, test_sets):
        test = read_test_set(path)
        check_test_set_head(test.metadata, head, path.name)
        picks = [list(test.metadata["ch_names"]).index(name) for name in head.ch_names]
        n = len(test) if max_samples is None else min(len(test), max_samples)
        for i in tqdm(range(n), desc=f"confidence {path.name}", disable=not progress):
            eeg = np.asarray(test.eeg[i], float)[:, picks].T
            eeg = eeg - eeg.mean(axis=0)
            centres = test.centres[i][test.centres[i] >= 0]
            confidence = region_confidence(solver, eeg, distance, test.sfreq, replace(config, seed=config.seed + i))
            rows.append(
                {
                    "test_set": path.name,
                    "sample": i,
                    "half": "calibration" if i % 2 == 0 else "evaluation",
                    "sensor_snr_db": float(test.sensor_snr_db[i]),
                    "n_sources": len(centres),
                    "depth": "deep" if head.region_is_deep[centres].any() else "superficial",
                    "distance_mm": distance_to_set(centres, confidence.confidence_set, distance),
                    "set_size_bare": confidence.set_size(),
                    "core": confidence.confidence_set,
                    "ms": confidence.seconds * 1e3,
                }
            )
    samples = pd.DataFrame(rows)
    calibration = samples[samples.half == "calibration"]
    evaluation = samples[samples.half == "evaluation"]
    margin = conformal_margin(calibration.distance_mm.to_numpy(), config.level)
    samples["set_size"] = [
        int((distance[:, core] <= margin).any(axis=1).sum()) if np.isfinite(margin) else len(distance)
        for core in samples.core
    ]
    samples = samples.drop(columns="core")
    covered = int((evaluation.distance_mm <= margin).sum())
    return CalibrationResult(
        solver=label or getattr(solver, "name", type(solver).__name__),
        level=config.level,
        margin_mm=margin,
        coverage_bare=float((evaluation.distance_mm <= 0).mean()),
        coverage=covered / max(len(evaluation), 1),
        coverage_interval=wilson_interval(covered, len(evaluation)),
        samples=samples,
        ms_per_segment=float(samples.ms.median()),
        n_resamples=config.n_resamples,
    )
