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
distance from each true centre to our nearest region centre.

The reference data are for evaluation only: never train on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._errors import BrainForgeError

if TYPE_CHECKING:
    import pandas as pd

    from ..anatomy import HeadModel

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
        The stored test set (``OUT/deepsif_leadfield.zarr``).
    """
    from ..anatomy import get_electrodes, load_deepsif_anatomy
    from ..nmm import default_spike_library, read_spike_library
    from ..synthesis import SampleGenerator, SynthesisConfig
    from ..synthesis.store import write_test_set

    path = Path(out_dir) / REFERENCE_TEST_SET
    names = list(get_electrodes(montage).names)
    if path.exists():
        _check_reuse(path, n_samples, seed, n_sources, sensor_snr_db, names)
        return path
    reference = load_deepsif_anatomy(anatomy_dir)
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


def _check_reuse(path: Path, n_samples: int, seed: int, n_sources, sensor_snr_db, names: list[str]) -> None:
    """Refuse to reuse a stored reference set drawn with other settings than those asked for."""
    from ..synthesis.store import check_test_set_reuse

    check_test_set_reuse(
        path, n_samples=n_samples, seed=seed, synthesis={"n_sources": n_sources, "sensor_snr_db": sensor_snr_db},
        ch_names=names, channel_order=True,
    )  # fmt: skip


def cross_distance_mm(ours_mm: np.ndarray, reference_mm: np.ndarray) -> np.ndarray:
    """Distances between two sets of region centres, mm: shape (len(ours_mm), len(reference_mm))."""
    from scipy.spatial.distance import cdist

    return cdist(np.asarray(ours_mm, float), np.asarray(reference_mm, float))


def score_on_reference_head(
    solvers: Sequence[str],
    test_path: str | Path,
    head: HeadModel,
    *,
    channel_counts: Sequence[int] = (16,),
    solver_lambda2: float | None = None,
    ghost_mm: float | None = None,
    half_window_ms: float | None = None,
) -> pd.DataFrame:
    """Score solvers fitted on ``head`` on a test set from another parcellation and head model.

    Parameters
    ----------
    solvers : list of str
        Solver names or model folders (as ``make_solver`` takes them); their
        labels (a folder's last part) must differ. A solver that cannot run
        on a channel set (a fixed-montage network on 16 channels) is skipped
        there with a warning, as in the benchmark.
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
        One row per sample with sources, channel set and solver: ``test_set``,
        ``sample``, ``n_channels``, ``solver``, ``sensor_snr_db``, ``n_sources``, ``depth``,
        ``peak_centre_error_mm``, ``peak_patch_error_mm``, ``correlation``
        (spike window), ``centre_floor_mm``, the failure flags and ``ms``.
    """
    import dataclasses

    import pandas as pd

    from ..synthesis.store import read_test_set
    from .benchmark import _channel_sets, _SolverCache, single_threaded_blas, solver_label
    from .benchmark_config import BenchmarkConfig

    defaults = BenchmarkConfig()
    settings = {"solver_lambda2": solver_lambda2, "ghost_mm": ghost_mm, "half_window_ms": half_window_ms}
    config = dataclasses.replace(defaults, **{k: v for k, v in settings.items() if v is not None})
    labels = [solver_label(name) for name in solvers]
    if len(set(labels)) != len(labels):
        raise BrainForgeError(f"Two solvers share a label ({', '.join(labels)}); rename a model folder.")
    test = read_test_set(test_path)
    test_channels = list(test.metadata["ch_names"])
    missing = sorted(set(test_channels) - set(head.ch_names))
    if missing:
        raise BrainForgeError(f"The solvers' head model lacks channels of the test set: {', '.join(missing[:10])}.")
    distance_mm = cross_distance_mm(head.region_centres_mm, test.metadata["region_centres_mm"])
    floor_mm = distance_mm.min(axis=0)  # each reference region to our nearest region centre
    sets = _channel_sets(test_channels, channel_counts)
    cache = _SolverCache(config)
    with single_threaded_blas():
        return pd.DataFrame(_score_rows(test, test_path, solvers, head, sets, cache, config, distance_mm, floor_mm))


def _score_rows(test, test_path, solvers, head, sets, cache, config, distance_mm, floor_mm) -> list[dict]:
    """One row per sample with sources, channel set and solver (see :func:`score_on_reference_head`)."""
    from .benchmark import failure_flags, solver_estimates, solver_label
    from .metrics import deepsif_metrics, peak_centre_error_mm, peak_patch_error_mm, spike_window

    test_channels = list(test.metadata["ch_names"])
    skipped, runnable, rows = [], {}, []
    for i in range(len(test)):
        truth = np.asarray(test.sources[i], float).T  # (reference regions, times)
        eeg_all = np.asarray(test.eeg[i], float)  # (times, channels)
        window = spike_window(truth, test.sfreq, config.half_window_ms)
        centres = test.centres[i][test.centres[i] >= 0]
        if not len(centres):
            continue
        patches = test.patches(i)
        base = {
            "test_set": Path(test_path).name,
            "sample": i,
            "sensor_snr_db": float(test.sensor_snr_db[i]),
            "n_sources": len(centres),
            "depth": "superficial",
            "forward": "deepsif_leadfield",
            "centre_floor_mm": float(floor_mm[centres].min()),
        }
        estimates = solver_estimates(eeg_all, test_channels, sets, solvers, runnable, head, cache, test.sfreq, skipped)
        for channels, name, (raw, estimate, finite, elapsed_ms) in estimates:
            # Only DeepSIF's correlation is kept: its precision and recall compare region indices,
            # which mean different regions in the two parcellations.
            published = deepsif_metrics(estimate[:, window], truth[:, window], patches, centres, distance_mm)
            metrics = {
                "peak_centre_error_mm": peak_centre_error_mm(estimate, truth, centres, distance_mm),
                "peak_patch_error_mm": peak_patch_error_mm(estimate, truth, patches, distance_mm),
                "correlation": published["correlation"],
            }
            if not finite:
                metrics = dict.fromkeys(metrics, np.nan)
            metrics.update(failure_flags(raw, metrics, config.ghost_mm))
            rows.append({**base, "n_channels": len(channels), "solver": solver_label(name), "ms": elapsed_ms})
            rows[-1].update(metrics)
    return rows
