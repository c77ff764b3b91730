"""Scoring on EEG from another group's head model: DeepSIF's published 75 x 994 leadfield.

The held-out forwards of :mod:`brainforge.evaluation.heldout` are our own
head model changed (cap moved, skull, sphere). DeepSIF's published leadfield
is independent of it: another group's BEM on fsaverage, their electrode
positions, their 994-region parcellation. EEG drawn through it and
localized by solvers fitted on our template head (electrode positions from
the channel names, as a user would) measures what the co-registration and
conductor differences between two real pipelines cost.

The two parcellations differ, so the metrics compare positions: the
distance between a region of ours and one of the reference is the distance
between their centres (both are means of fsaverage5 pial vertices). The
peak-centre error is then the distance from the centre of our region of
largest |estimate| at the true peak to the nearest true patch centre of the
reference; the peak-patch error, to the nearest reference region of any
patch; the correlation is DeepSIF's (:func:`~brainforge.evaluation.deepsif_metrics`),
each Otsu-kept region of ours assigned to the nearest patch by the same
distances. A perfect estimate cannot score 0: ``centre_floor_mm`` is the
distance from each true centre to our nearest cortical region centre.

The reference data are for evaluation only: never train on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._errors import BrainForgeError

#: Name of the test set written from the reference leadfield.
REFERENCE_TEST_SET = "deepsif_leadfield.zarr"


def write_reference_head_test_set(
    anatomy_dir: str | Path,
    out_dir: str | Path,
    n_samples: int,
    *,
    seed: int = 4000,
    n_sources: tuple[int, int] = (1, 2),
    sensor_snr_db: tuple[float, float] = (5.0, 20.0),
    montage: str = "1010-64",
) -> Path:
    """Write (or reuse) a test set whose EEG comes from DeepSIF's published leadfield.

    Parameters
    ----------
    anatomy_dir : path
        Folder with DeepSIF's anatomy files (``load_deepsif_anatomy``).
    out_dir : path
        Folder of the test set (``deepsif_leadfield.zarr``); a set already
        there is reused.
    n_samples : int
        Samples to draw.
    seed : int
        Dataset seed.
    n_sources : (int, int)
        Fewest and most patches per sample (cortical: the reference has no deep regions).
    sensor_snr_db : (float, float)
        Sensor SNR range, dB (power).
    montage : str
        Channels to keep (by name) from the reference's 75, in this montage's order.

    Returns
    -------
    path : Path
    """
    from ..anatomy import get_electrodes, load_deepsif_anatomy
    from ..nmm import default_spike_library, read_spike_library
    from ..synthesis import SampleGenerator, SynthesisConfig
    from ..synthesis.store import write_test_set

    path = Path(out_dir) / REFERENCE_TEST_SET
    if path.exists():
        return path
    reference = load_deepsif_anatomy(anatomy_dir)
    names = list(get_electrodes(montage).names)
    missing = [name for name in names if name not in reference.ch_names]
    if missing:
        raise BrainForgeError(
            f"The reference leadfield lacks {len(missing)} channels of {montage} ({', '.join(missing[:5])}); "
            "choose a montage within its 75 channels, for example 1010-64."
        )
    library = read_spike_library(default_spike_library(progress=False))
    config = SynthesisConfig(n_sources=n_sources, sensor_snr_db=sensor_snr_db, deep_share=0.0)
    generator = SampleGenerator(reference.pick_channels(names), library, config)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    description = {"forward_mismatch": {"reference_head": "DeepSIF published leadfield"}}
    return write_test_set(generator, n_samples, path, seed=seed, description=description, progress=False)


def cross_distance_mm(ours_mm: np.ndarray, reference_mm: np.ndarray) -> np.ndarray:
    """Distances between two sets of region centres, mm: shape (len(ours_mm), len(reference_mm))."""
    from scipy.spatial.distance import cdist

    return cdist(np.asarray(ours_mm, float), np.asarray(reference_mm, float))


def score_on_reference_head(
    solvers: Sequence[str],
    test_path: str | Path,
    head,
    *,
    channel_counts: Sequence[int] = (16,),
    solver_lambda2: float | None = None,
    ghost_mm: float | None = None,
    half_window_ms: float | None = None,
):
    """Score solvers fitted on ``head`` on a test set from another parcellation and head model.

    Parameters
    ----------
    solvers : list of str
        Solver names or model folders (as ``make_solver`` takes them).
    test_path : path
        A test set from :func:`write_reference_head_test_set`.
    head : HeadModel
        The template head the solvers are fitted on (its channels must
        include the test set's).
    channel_counts : list of int
        10-10 subsets scored besides all the test set's channels.
    solver_lambda2, ghost_mm, half_window_ms : float | None
        As :class:`~brainforge.evaluation.benchmark.BenchmarkConfig` (None: its defaults).

    Returns
    -------
    samples : pandas.DataFrame
        One row per sample, channel set and solver: ``test_set``, ``sample``,
        ``n_channels``, ``solver``, ``snr_db``, ``n_sources``, ``depth``,
        ``peak_centre_error_mm``, ``peak_patch_error_mm``, ``correlation``
        (spike window), ``centre_floor_mm``, the failure flags and ``ms``.
    """
    import time

    import pandas as pd

    from ..inverse import CLASSICAL_SOLVERS, make_solver
    from ..synthesis.store import read_test_set
    from .benchmark import _channel_sets, failure_flags, solver_label
    from .benchmark_config import BenchmarkConfig
    from .metrics import deepsif_metrics, peak_centre_error_mm, peak_patch_error_mm, spike_window

    defaults = BenchmarkConfig()
    lambda2 = defaults.solver_lambda2 if solver_lambda2 is None else solver_lambda2
    ghost = defaults.ghost_mm if ghost_mm is None else ghost_mm
    half_window = defaults.half_window_ms if half_window_ms is None else half_window_ms
    test = read_test_set(test_path)
    test_channels = list(test.metadata["ch_names"])
    missing = sorted(set(test_channels) - set(head.ch_names))
    if missing:
        raise BrainForgeError(f"The solvers' head model lacks channels of the test set: {', '.join(missing[:10])}.")
    distance = cross_distance_mm(head.region_centres_mm, test.metadata["region_centres_mm"])
    cortical = ~np.asarray(head.region_is_deep, bool)
    floor = distance[cortical].min(axis=0)  # each reference region to our nearest cortical region centre
    sets = _channel_sets(test_channels, channel_counts)
    fitted = {}
    for name in solvers:
        options = {"lambda2": lambda2} if name.lower() in CLASSICAL_SOLVERS else {}
        for index, channels in enumerate(sets):
            fitted[name, index] = make_solver(name, **options).fit(head.pick_channels(channels))
    rows = []
    for i in range(len(test)):
        truth = np.asarray(test.sources[i], float).T  # (reference regions, times)
        eeg_all = np.asarray(test.eeg[i], float)  # (times, channels)
        window = spike_window(truth, test.sfreq, half_window)
        centres = test.centres[i][test.centres[i] >= 0]
        if not len(centres):
            continue
        patches = test.patches(i)
        base = {
            "test_set": Path(test_path).name,
            "sample": i,
            "snr_db": float(test.sensor_snr_db[i]),
            "n_sources": len(centres),
            "depth": "superficial",
            "forward": "deepsif_leadfield",
            "centre_floor_mm": float(floor[centres].min()),
        }
        for index, channels in enumerate(sets):
            eeg = eeg_all[:, [test_channels.index(c) for c in channels]].T
            eeg = eeg - eeg.mean(axis=0)
            for name in solvers:
                tic = time.perf_counter()
                estimate = fitted[name, index].apply_regions(eeg, test.sfreq).data
                elapsed_ms = (time.perf_counter() - tic) * 1e3
                finite = bool(np.isfinite(estimate).all())
                scored = estimate if finite else np.nan_to_num(estimate, nan=0.0, posinf=0.0, neginf=0.0)
                metrics = {
                    "peak_centre_error_mm": peak_centre_error_mm(scored, truth, centres, distance),
                    "peak_patch_error_mm": peak_patch_error_mm(scored, truth, patches, distance),
                    "correlation": deepsif_metrics(scored[:, window], truth[:, window], patches, centres, distance)[
                        "correlation"
                    ],
                }
                if not finite:
                    metrics = dict.fromkeys(metrics, np.nan)
                metrics.update(failure_flags(estimate, metrics, ghost))
                rows.append({**base, "n_channels": len(channels), "solver": solver_label(name), "ms": elapsed_ms})
                rows[-1].update(metrics)
    return pd.DataFrame(rows)
