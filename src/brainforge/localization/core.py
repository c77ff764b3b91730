"""Localize a recording: solver, head model for its channels, MNE source estimate, peaks, output folder."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._config import split_names
from .._data import package_data
from .._errors import BrainForgeError
from .._logging import verbose
from ..inverse.solvers import DEFAULT_SFREQ_HZ, masked_peak_time, source_estimate
from .output import TimecourseWriter, check_out_dir, commit_tmp_dir, open_tmp_dir
from .recording import (
    FilterPlan,
    PreparedEEG,
    PreprocessingConfig,
    RecordingStream,
    bad_spans_s_within,
    break_edge_spans_s,
    edge_spans_note,
    filter_edge_spans_s,
    in_spans,
    output_span,
    prepare_recording,
    prepared_eeg,
    read_recording,
    select_channels,
    short_stretches_note,
)

logger = logging.getLogger("brainforge")

#: A dipole-level source estimate of the whole analysed span is written when it takes at most this much, MB
#: (float32); otherwise it spans +- SAVED_STC_HALF_SPAN_S around the time of the largest activity.
MAX_STC_MB = 100.0
#: The saved source estimate spans this much around the time of the largest activity, +- s.
SAVED_STC_HALF_SPAN_S = 0.1
#: The report's time courses and the in-memory result span this much around the largest activity, +- s.
VIEW_HALF_SPAN_S = 1.0
#: Recordings are localized in blocks of this length, s (memory is bounded by the block, not the recording).
CHUNK_S = 20.0
#: Head models whose channels are picked for recordings with standard names (no new leadfield needed).
PICKABLE_HEADS = ("1010-64", "1010-75")
#: Why a peak search stops when every sample is left out (the whole pass and the view say the same).
NOTHING_TO_SEARCH = (
    "Every sample of the analysed span lies in a span annotated as bad (BAD_...), or at the filter's edges by "
    "the recording's ends and breaks; choose --tmin/--tmax outside those spans, or rename the annotations if the "
    "data there are usable."
)


@dataclass
class Localization:
    """Everything a localization produced.

    Attributes
    ----------
    stc : mne.SourceEstimate | mne.MixedSourceEstimate
        Activity on fsaverage (``MixedSourceEstimate`` with the deep sources
        as a discrete volume part).
    region_data : array, shape (n_regions, n_times)
        Region time courses.
    head : HeadModel
        The head model (template, the recording's channels).
    prepared : PreparedEEG
        The EEG as the solver saw it.
    solver : str
        Solver name.
    peaks : list of dict
        The strongest local maxima at the time of the largest activity.
    notes : list of str
        Caveats of this run.
    outputs : dict
        What :func:`localize_file` wrote beyond ``stc`` and ``region_data``.
        For a recording solved in more than one block, ``region_data`` holds
        +-1 s around the largest activity, ``stc`` +-0.1 s of it (its own
        ``stc.times``; index it by time, not by :attr:`peak_index`), and the
        time courses file the whole span.
    confidence : RegionConfidence | None
        The bootstrap confidence per region (``uncertainty=``), else None.
    excluded_spans_s : list of (float, float)
        Spans left out of the peak search (annotated as bad; the filter's edges).
    peak_index : int | None
        Index (into :attr:`times`) of the peak time: the largest activity outside
        ``excluded_spans_s``. The peaks, the report's pictures, the saved source
        estimate's span and the confidence all use it.
    """

    stc: object
    region_data: np.ndarray
    head: object
    prepared: PreparedEEG
    solver: str
    peaks: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    confidence: object = None
    excluded_spans_s: list = field(default_factory=list)
    peak_index: int | None = None

    def searched(self) -> np.ndarray:
        """Return the mask of the times the peak search may use (not in :attr:`excluded_spans_s`)."""
        return ~in_spans(self.times, self.excluded_spans_s, 0.5 / self.prepared.sfreq)

    def find_peaks(self, n_peaks: int = 5) -> None:
        """Set :attr:`peak_index` and :attr:`peaks` from the region time courses and the excluded spans."""
        self.peak_index = peak_time_index(self.region_data, self.searched())
        self.peaks = find_peaks(self.region_data, self.head, self.times, n_peaks, peak_index=self.peak_index)

    @property
    def times(self) -> np.ndarray:
        """Sample times, s."""
        return self.prepared.tmin + np.arange(self.region_data.shape[1]) / self.prepared.sfreq


def head_model_for(prepared, regions: dict | None = None):
    """Return the template head model with the recording's channels (picked from a cached one where possible).

    ``prepared`` is a :class:`PreparedEEG` or a ``ChannelPlan``: anything with
    ``ch_names`` and ``montage``. ``regions`` are the region options of
    :func:`~brainforge.anatomy.make_head_model` (:func:`_solver_regions`; default: the template's).
    """
    from ..anatomy import CHANNEL_SUBSETS, make_head_model

    regions = regions or {}
    names = prepared.ch_names
    if prepared.montage is not None:
        return make_head_model(prepared.montage, **regions)
    for base in PICKABLE_HEADS:
        if set(names) <= set(CHANNEL_SUBSETS[base]):
            return make_head_model(base, **regions).pick_channels(names)
    return make_head_model(names, **regions)


#: Options of make_head_model that decide a head model's regions, which a network's outputs are.
REGION_OPTIONS = ("n_regions", "deep", "deep_spacing_mm", "seed")


def _solver_regions(solver) -> dict:
    """Region options of the template a network was trained on (:data:`REGION_OPTIONS`; none for classical solvers)."""
    config = getattr(solver, "config", None) or {}
    head = (config.get("head_model") or {}).get("config") or {}
    return {name: head[name] for name in REGION_OPTIONS if head.get(name) is not None}


def peak_time_index(region_data: np.ndarray, searched: np.ndarray | None = None) -> int:
    """Return the time index of the largest |activity| among the ``searched`` times (all when None)."""
    if searched is not None and not searched.any():
        raise BrainForgeError(NOTHING_TO_SEARCH)
    return masked_peak_time(region_data, searched)


def find_peaks(
    region_data: np.ndarray, head, times: np.ndarray, n_peaks: int = 5, *, peak_index: int | None = None
) -> list[dict]:
    """Return the strongest local maxima (region graph) at the time of the largest |activity|.

    Each peak carries its region's anatomical name, lobe and the share of the
    region that name covers (:func:`brainforge.anatomy.region_labels`).
    ``peak_index`` gives the time instead (:meth:`Localization.find_peaks`
    passes the largest activity outside the excluded spans).
    """
    from ..anatomy import region_labels
    from ..evaluation import local_maxima

    labels = region_labels(head)
    magnitude = np.abs(region_data)
    peak_time = peak_time_index(region_data) if peak_index is None else int(peak_index)
    maxima = local_maxima(region_data[:, peak_time], head.region_adjacency, threshold=0.3)
    maxima = maxima[np.argsort(-magnitude[maxima, peak_time])][:n_peaks]
    top = magnitude[:, peak_time].max()
    deep = head.region_is_deep
    return [
        {
            "rank": rank + 1,
            "region": int(region),
            "name": head.region_names[region],
            "label": labels[region].name,
            "lobe": labels[region].lobe,
            "label_share": labels[region].share,
            "time_s": round(float(times[peak_time]), 4),
            "relative_amplitude": round(float(magnitude[region, peak_time] / top), 4) if top > 0 else 0.0,
            "x_mm": round(float(head.region_centres_mm[region, 0]), 1),
            "y_mm": round(float(head.region_centres_mm[region, 1]), 1),
            "z_mm": round(float(head.region_centres_mm[region, 2]), 1),
            "deep": bool(deep[region]),
        }
        for rank, region in enumerate(maxima)
    ]


#: The frame of every position a localization gives (peaks' x_mm, y_mm, z_mm; deep_sources.csv).
COORDINATE_FRAME = (
    "fsaverage MRI coordinates (surface RAS), mm: MNI305 space, not MNE's head frame "
    "(fsaverage's head -> MRI transform moves points by about 5 cm)"
)

#: What the estimates' values are, by classical solver (MNE's apply_inverse and LCMV, fixed orientations).
CLASSICAL_VALUES = {
    "mne": "current dipole moment, A*m",
    "wmne": "current dipole moment, A*m (depth-weighted)",
    "eloreta": "current dipole moment, A*m",
    "dspm": "noise-normalized (an F-like statistic), no unit",
    "sloreta": "noise-normalized (standardized), no unit",
    "lcmv": "neural activity index (unit-noise-gain-invariant weights), no unit",
}
#: What a network's estimates are.
NETWORK_VALUES = (
    "relative: the network's output times the scale of the EEG it normalized (V), no physical unit; compare "
    "regions and times within a run"
)

NETWORK_NOTE = (
    "A network trained on synthetic spikes on the template head: it localizes focal, spike-like "
    "activity; slow or widespread activity and individual anatomy are outside its training."
)


@contextmanager
def logged_warnings() -> Iterator[set[str]]:
    """Collect the messages BrainForge logs at warning level or above while the block runs.

    Callers that show a result's notes use it to leave out the ones the log showed already.
    """
    logged: set[str] = set()

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.add(record.getMessage())

    handler = _Collect(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield logged
    finally:
        logger.removeHandler(handler)


def _as_solver(solver):
    """Return (solver object, name): a name or model folder is looked up once; a solver object is used as given."""
    if isinstance(solver, str | os.PathLike):
        from ..inverse import make_solver

        name = os.fspath(solver)
        return make_solver(name), name
    if not (callable(getattr(solver, "fit", None)) and callable(getattr(solver, "apply_regions", None))):
        raise BrainForgeError(
            f"solver={solver!r} is not a solver: give a name (default, sloreta, ...), a model folder, or an "
            "object with fit() and apply_regions() such as make_solver()'s."
        )
    return solver, getattr(solver, "name", type(solver).__name__)


def value_units(model) -> str:
    """Return what a solver's estimates are (:data:`CLASSICAL_VALUES`, :data:`NETWORK_VALUES`)."""
    if _is_network(model):
        return NETWORK_VALUES
    return CLASSICAL_VALUES.get(getattr(model, "name", ""), "as the solver object gives them")


def _is_network(model) -> bool:
    from ..inverse import LearnedSolver

    return isinstance(model, LearnedSolver)


def calibration_key(solver) -> str:
    """Return the name a solver's calibrated margin is stored under.

    A classical method by its lower-case name (``"sLORETA"`` and ``"sloreta"`` are one
    solver), the bundled network as ``"default"`` (by name, by its folder's path, or as a
    :class:`~brainforge.inverse.LearnedSolver` on that folder); anything else as given. A
    solver object with options that can change its 1-s estimates (:data:`CALIBRATION_OPTIONS`) set
    otherwise than by default, as the calibration ran it, gets a key of its own, with those options,
    which no calibration holds (also when a value happens to give the same estimate, such as a
    network's own window length).
    """
    changed = _changed_options(solver)
    return f"{_solver_key(solver)} ({changed})" if changed else _solver_key(solver)


def _solver_key(solver) -> str:
    """Return the name :func:`calibration_key` gives a solver, whatever its options."""
    from .._data import default_model_dir
    from ..inverse import CLASSICAL_SOLVERS, ClassicalSolver, LearnedSolver

    if isinstance(solver, ClassicalSolver):
        return solver.method.lower()
    if isinstance(solver, LearnedSolver):
        solver = str(solver.model_dir)
    if not isinstance(solver, str | Path):
        return getattr(solver, "name", type(solver).__name__)
    name = str(solver)
    if name.lower() in CLASSICAL_SOLVERS:
        return name.lower()
    if name == "default":
        return "default"
    try:
        bundled = default_model_dir().resolve()
    except BrainForgeError:  # an install without the bundled model: a folder is only itself
        return name
    return "default" if Path(name).is_dir() and Path(name).resolve() == bundled else name


#: The solver options that change a 1-s segment's estimate, by solver class: a solver object with
#: any of them set otherwise than by default is not the solver that was calibrated.
CALIBRATION_OPTIONS = {
    "ClassicalSolver": ("lambda2", "baseline", "reg"),
    "LearnedSolver": ("window_samples", "upsample"),
}


def _defaults(solver) -> dict:
    """Return the constructor defaults of ``solver``'s :data:`CALIBRATION_OPTIONS` (found by its classes)."""
    import inspect

    classes = [c.__name__ for c in type(solver).__mro__ if c.__name__ in CALIBRATION_OPTIONS]
    names = CALIBRATION_OPTIONS[classes[0]] if classes else ()
    parameters = inspect.signature(type(solver).__init__).parameters
    return {name: parameters[name].default for name in names if name in parameters}


def _changed_options(solver) -> str:
    """Return ``solver``'s :data:`CALIBRATION_OPTIONS` that differ from their defaults, as text ("" if none)."""
    changed = []
    for name, default in _defaults(solver).items():
        value = getattr(solver, name)
        if (value is None) != (default is None) or (value is not None and not np.array_equal(value, default)):
            changed.append(f"{name}={value!r}" if np.ndim(value) == 0 else f"{name}=given")
    return ", ".join(changed)


def calibrated_margin_mm(solver) -> float | None:
    """Return the confidence-set margin calibrated for a solver (a name or a solver object), or None.

    The margins are in ``data/confidence_calibration.json``; :func:`calibration_key` finds a solver's entry.
    """
    path = package_data("confidence_calibration.json")
    if not path.is_file():
        return None
    entry = json.loads(path.read_text()).get("solvers", {}).get(calibration_key(solver))
    return None if entry is None else float(entry["margin_mm"])


def default_uncertainty(solver, n_resamples: int = 30, seed: int = 0):
    """Return the bootstrap settings of ``localize --uncertainty`` for a solver.

    Parameters
    ----------
    solver : str | InverseSolver
        The solver (a name, a model folder or a solver object), whose calibrated margin
        is looked up (:func:`calibration_key`; 0 mm when it has none).
    n_resamples : int
        Bootstrap replicates (at least 2; :class:`UncertaintyConfig` checks).
    seed : int
        Seed of the replicates (>= 0).

    Returns
    -------
    config : UncertaintyConfig
    """
    from ..inverse.uncertainty import UncertaintyConfig

    margin = calibrated_margin_mm(solver)
    return UncertaintyConfig(n_resamples=n_resamples, margin_mm=margin or 0.0, seed=seed)


def _uncertainty_config(uncertainty, solver):
    """Return the bootstrap settings for a solver: ``True`` takes the defaults with its calibrated margin."""
    from ..inverse.uncertainty import UncertaintyConfig

    if uncertainty is None or uncertainty is False:
        return None
    if uncertainty is True:
        return default_uncertainty(solver)
    if not isinstance(uncertainty, UncertaintyConfig):
        raise BrainForgeError(f"uncertainty must be True, False or an UncertaintyConfig, got {uncertainty!r}.")
    return uncertainty


def _add_confidence(result: Localization, model, eeg: np.ndarray, config) -> None:
    """Bootstrap the solver on ``eeg`` (the result's span) and attach the confidence to the result and its peaks."""
    from ..inverse.uncertainty import region_confidence

    confidence = region_confidence(
        model, eeg, result.head.region_distance_mm, result.prepared.sfreq, config, searched=result.searched()
    )
    result.confidence = confidence
    for peak in result.peaks:
        peak["confidence"] = round(float(confidence.confidence[peak["region"]]), 4)
    if calibrated_margin_mm(model) is None and config.margin_mm == 0:
        result.notes.append(
            f"The {100 * config.level:.0f} % confidence set counts noise only (no calibrated margin for "
            f"{calibration_key(model)}): on head models unlike the template it holds the true source less often "
            "than it says."
        )


def localize_prepared(prepared: PreparedEEG, solver="default", uncertainty=None) -> Localization:
    """Run a solver (a name, or an unfitted solver object) on prepared EEG and wrap the result.

    ``uncertainty`` (True or an :class:`~brainforge.inverse.uncertainty.UncertaintyConfig`)
    adds a bootstrap confidence per region (``result.confidence``).
    """
    model, name = _as_solver(solver)
    head = head_model_for(prepared, _solver_regions(model))
    model.fit(head)
    activity = model.apply_regions(prepared.data, prepared.sfreq, with_dipoles=True)
    region_data = activity.data
    stc = activity.to_source_estimate(head, prepared.tmin)
    result = Localization(stc, region_data, head, prepared, name, notes=list(prepared.notes))
    edges, breaks = _edges_for(model, prepared), _break_spans_for(model, prepared)
    result.excluded_spans_s = [*prepared.bad_spans_s, *edges, *breaks]
    result.find_peaks()
    _note_edges(result, edges, prepared)
    _note_breaks(result, breaks, prepared)
    _add_network_notes(result, model, prepared.data.shape[1])
    config = _uncertainty_config(uncertainty, model)
    if config is not None:
        _add_confidence(result, model, prepared.data, config)
    return result


@verbose
def localize(
    inst,
    solver="default",
    *,
    tmin: float | None = None,
    tmax: float | None = None,
    events: list[str] | None = None,
    l_freq: float | None = 1.0,
    h_freq: float | None = 70.0,
    channels: list[str] | None = None,
    exclude: list[str] | None = None,
    positions: str | Path | None = None,
    return_confidence: bool = False,
    uncertainty=None,
    verbose: bool | str | int | None = None,
):
    """Localize the sources of an MNE recording (in memory; for long files use :func:`localize_file`).

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        EEG with standard channel names or electrode positions.
    solver : str | InverseSolver
        ``"default"`` (the bundled network), a classical method (``sloreta``,
        ``eloreta``, ``dspm``, ``mne``, ``wmne``, ``lcmv``), a trained-model
        folder, or an unfitted solver (for example ``make_solver("default", overlap=0.5)``).
    tmin, tmax : float | None
        Time span, s (with ``events``: the epoch around each event).
    events : list of str | str | None
        Annotation descriptions whose epochs are averaged and localized (a string:
        comma-separated names).
    l_freq, h_freq : float | None
        Band-pass, Hz (None or 0: off).
    channels, exclude : list of str | str | None
        Use only these channels / leave these out (file or 10-05 names; a string:
        comma-separated names).
    positions : path | None
        A file of electrode positions (for example digitized ones) to use
        instead of the recording's (:func:`brainforge.localization.read_positions`).
    return_confidence : bool
        Also return a bootstrap confidence per region (noise resampling,
        :mod:`brainforge.inverse.uncertainty`), with the solver's calibrated margin.
    uncertainty : UncertaintyConfig | None
        Bootstrap settings (implies ``return_confidence``).
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    stc : mne.SourceEstimate | mne.MixedSourceEstimate
        Source activity on fsaverage (mixed when the head model has deep sources).
    confidence : RegionConfidence
        Only with ``return_confidence`` or ``uncertainty``: ``confidence.confidence``
        per region, ``confidence.confidence_set``, and ``confidence.spread`` (regions x times).
    """
    events, channels, exclude = (split_names(names) for names in (events, channels, exclude))
    config = PreprocessingConfig(
        l_freq, h_freq, tmin, tmax, tuple(events) if events else None,
        tuple(channels) if channels else None, tuple(exclude or ()), positions,
    )  # fmt: skip
    model, _ = _as_solver(solver)
    uncertainty = uncertainty if uncertainty is not None else (True if return_confidence else None)
    uncertainty = _uncertainty_config(uncertainty, model)
    with logged_warnings() as logged:
        prepared = prepare_recording(inst, _solver_sfreq(model), config)
        result = localize_prepared(prepared, model, uncertainty)
    for note in result.notes:  # only the estimate is returned: its caveats go to the log, each once
        if note not in logged:
            logger.warning("Note: %s", note)
    if uncertainty is not None:
        return result.stc, result.confidence
    return result.stc


def _edge_s(model, sfreq: float) -> float:
    """Return the least of each end of a recording that the peak search skips after a high-pass, s.

    A network's window (0 for a classical solver; the high-pass's own edge,
    :func:`~brainforge.localization.recording.filter_edge_s`, is added by
    :func:`~brainforge.localization.recording.filter_edge_spans_s` when longer): a network scales
    each window back by its maximum, so the window that holds the edge transient is inflated
    throughout (on white noise, 1.5 times the middle's activity 0.5-1 s from the ends, the middle's
    beyond 1 s; ``scripts/edge_transient_probe.py``, docs/localize.md).
    """
    return model.window_length / sfreq if _is_network(model) else 0.0


def _edges_for(model, prepared: PreparedEEG) -> list[tuple[float, float]]:
    """Return the recording's filter-edge spans (:func:`_edge_s` long) that the prepared EEG reaches into."""
    if prepared.recording_s is None:  # epochs, evoked data and event averages: no recording edge in their time base
        return []
    first_s, last_s = _span_s(prepared)
    high_pass = prepared.preprocessing.get("applied", {}).get("high_pass_hz")
    return filter_edge_spans_s(high_pass, prepared.recording_s, first_s, last_s, _edge_s(model, prepared.sfreq))


def _span_s(prepared: PreparedEEG) -> tuple[float, float]:
    """Return the times (s) of the prepared EEG's first and last samples."""
    return prepared.tmin, prepared.tmin + (prepared.data.shape[1] - 1) / prepared.sfreq


def _add_network_notes(result: Localization, model, n_samples: int) -> None:
    """Record what the estimates' values are; add what a network's estimate needs said: its training, a short span."""
    result.outputs["values"] = value_units(model)
    if not _is_network(model):
        return
    result.notes.append(NETWORK_NOTE)
    window = model.window_length
    if n_samples < window:
        sfreq = result.prepared.sfreq
        message = (
            f"The analysed span ({n_samples / sfreq:.3g} s) is shorter than the network's {window / sfreq:g}-s "
            "window, which it was trained on whole: treat its estimate with care, and compare --solver sloreta."
        )
        logger.warning(message)
        result.notes.append(message)


def _break_spans_for(
    model, prepared: PreparedEEG, analysed_s: tuple[float, float] | None = None
) -> list[tuple[float, float]]:
    """Return the spans either side of the recording's breaks (:func:`break_edge_spans_s`) that the analysis reaches.

    ``analysed_s`` (first, last; s) when the prepared EEG holds only a view of the analysed span.
    """
    if prepared.recording_s is None or not prepared.breaks_s:
        return []
    first_s, last_s = analysed_s or _span_s(prepared)
    high_pass = prepared.preprocessing.get("applied", {}).get("high_pass_hz")
    edge_s = _edge_s(model, prepared.sfreq)
    return break_edge_spans_s(high_pass, prepared.breaks_s, first_s, last_s, edge_s, prepared.recording_s)


def _note_breaks(result: Localization, spans, prepared: PreparedEEG, analysed_s=None) -> None:
    """Add the notes on the recording's breaks: filtered stretch by stretch, their edges left out, short stretches."""
    if not prepared.breaks_s:
        return
    note = (
        f"The recording breaks off and resumes at {len(prepared.breaks_s)} point(s) (annotated BAD_ACQ_SKIP or "
        "boundary, or the edges of NaN in a bad span): each stretch between them was filtered on its own"
    )
    if spans:
        note += (
            f", and the stretches' filter edges by the breaks ({sum(end - start for start, end in spans):.3g} s in "
            "all) were left out of the peak search"
        )
    result.notes.append(note + ".")
    first_s, last_s = analysed_s or _span_s(prepared)
    length_s = prepared.preprocessing.get("applied", {}).get("filter_length_s", 0.0)
    short = short_stretches_note(prepared.breaks_s, prepared.recording_s, first_s, last_s, length_s)
    if short:
        result.notes.append(short)


def _note_edges(result: Localization, edges, prepared: PreparedEEG) -> None:
    """Add the note on the edges left out of the peak search, once."""
    note = edge_spans_note(edges, prepared.preprocessing.get("applied", {}).get("high_pass_hz"))
    if note and note not in result.notes:
        result.notes.append(note)


def _solver_sfreq(model) -> float:
    """Return the rate the solver works at: a network's training rate, :data:`DEFAULT_SFREQ_HZ` for classical ones."""
    return model.sfreq if _is_network(model) else DEFAULT_SFREQ_HZ


@verbose
def localize_file(
    path: str | Path,
    out_dir: str | Path,
    solver: str = "default",
    *,
    timecourses: str = "parquet",
    chunk_s: float = CHUNK_S,
    progress: bool = False,
    report: bool = True,
    uncertainty=None,
    condition: str | int | None = None,
    verbose: bool | str | int | None = None,
    **options,
) -> Localization:
    """Localize a recording file and write the output folder.

    A continuous recording is read, prepared and localized in blocks of
    ``chunk_s`` (with margins, so the result does not depend on the blocks),
    so memory does not grow with its length. Every option is checked, and
    the output folder created, before any work starts.

    Parameters
    ----------
    path : path
        The recording (anything MNE reads).
    out_dir : path
        The output folder (new or empty).
    solver : str
        As in :func:`localize`.
    timecourses : {"parquet", "csv", "none"}
        Format of the region time courses of the whole span.
    chunk_s : float
        Block length, s.
    progress : bool
        Show a progress bar.
    report : bool
        Write report.html.
    uncertainty : bool | UncertaintyConfig | None
        Add a bootstrap confidence per region (on the span around the largest
        activity for a long recording): ``source_spread-stc.h5``,
        ``region_confidence.csv``, a ``confidence`` column in peaks.csv and a
        brain picture in the report.
    condition : str | int | None
        With an ``-ave.fif`` file of several evoked responses: which one, by
        comment or index from 0 (:func:`read_recording`). None: the first.
    **options
        :class:`PreprocessingConfig` fields (``l_freq``, ``h_freq``, ``tmin``,
        ``tmax``, ``events``, ``channels``, ``exclude``, ``positions``).
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    result : Localization
        The estimate around the largest activity (all of it for a short span solved in one block).
    """
    import mne

    out_dir = check_out_dir(out_dir)
    config = PreprocessingConfig(**options)
    if timecourses not in TimecourseWriter.FORMATS:
        raise BrainForgeError(f"--timecourses {timecourses!r}: choose one of {', '.join(TimecourseWriter.FORMATS)}.")
    if not chunk_s > 0:
        raise BrainForgeError(f"chunk_s must be positive, got {chunk_s}.")
    model, name = _as_solver(solver)  # an unknown solver stops before the file is read
    uncertainty = _uncertainty_config(uncertainty, model)
    inst = read_recording(path, preload=False, condition=condition)
    tmp = open_tmp_dir(out_dir)
    try:
        if isinstance(inst, mne.io.BaseRaw) and not config.events:
            result = _localize_stream(inst, model, name, config, tmp, timecourses, chunk_s, progress)
            if uncertainty is not None:
                _add_confidence(result, model, result.prepared.data, uncertainty)
        else:
            prepared = prepare_recording(inst, _solver_sfreq(model), config)
            result = localize_prepared(prepared, model, uncertainty)
            result.solver = name
            writer = TimecourseWriter(tmp, result.head.region_names, timecourses)
            writer.write(result.times, result.region_data)
            writer.close()
            result.outputs["region_timecourses"] = writer.describe()
            result.outputs["analysed_span_s"] = [round(float(result.times[0]), 6), round(float(result.times[-1]), 6)]
        result.prepared.source = f"{Path(path).name}: {result.prepared.source}"
        _write_results(result, tmp, report)
        commit_tmp_dir(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def _block_solver(
    model, stream: RecordingStream, span: tuple[int, int], first: int, last: int, with_dipoles: bool = False
):
    """Prepare and solve output samples [first, last) of ``span`` with the solver's margins.

    Returns the EEG block with margins, the activity (with the solver's
    dipole-level estimate if ``with_dipoles``) and the offset of ``first`` in them.
    """
    margin, step = model.block_grid()
    start, stop = span
    begin = max(start, start + (first - margin - start) // step * step)
    end = min(stop, last + margin)
    eeg = stream.block(begin, end)
    activity = model.apply_regions(eeg, stream.filters.sfreq_out, with_dipoles=with_dipoles)
    return eeg, activity, first - begin


def _localize_stream(raw, model, name, config, tmp: Path, timecourses: str, chunk_s: float, progress: bool):
    """Localize a continuous recording block by block, writing the time courses as it goes."""
    from tqdm.auto import tqdm

    sfreq = _solver_sfreq(model)
    filters = FilterPlan.make(raw.info["sfreq"], sfreq, config)
    n_out = filters.n_out(raw.n_times)
    span = output_span(raw.n_times / filters.sfreq_in, n_out, sfreq, config)
    # Scanned for NaN and flat channels: every input sample the span's filtered values depend on.
    plan = select_channels(raw, config, filters.input_span(*span, raw.n_times))
    head = head_model_for(plan, _solver_regions(model))
    model.fit(head)
    stream = RecordingStream(raw, plan, filters)
    _, step = model.block_grid()
    chunk = max(step, round(chunk_s * sfreq) // step * step)
    writer = TimecourseWriter(tmp, head.region_names, timecourses, background=True)
    bad_spans = bad_spans_s_within(raw, span[0] / sfreq, (span[1] - 1) / sfreq)
    recording_s = n_out / sfreq
    edge_spans = filter_edge_spans_s(
        filters.l_freq, recording_s, span[0] / sfreq, (span[1] - 1) / sfreq, _edge_s(model, sfreq)
    )
    break_spans = break_edge_spans_s(
        filters.l_freq, stream.breaks_s, span[0] / sfreq, (span[1] - 1) / sfreq, _edge_s(model, sfreq), recording_s
    )
    excluded = [*bad_spans, *edge_spans, *break_spans]
    best_value, best_sample = -1.0, None
    bar = tqdm(total=round((span[1] - span[0]) / sfreq, 3), unit="s", desc="Localizing", disable=not progress)
    try:
        for first in range(span[0], span[1], chunk):
            last = min(span[1], first + chunk)
            _, activity, offset = _block_solver(model, stream, span, first, last)
            region = activity.data[:, offset : offset + last - first]
            searched = ~in_spans(np.arange(first, last) / sfreq, excluded, 0.5 / sfreq)
            if searched.any():
                index = masked_peak_time(region, searched)
                value = float(np.abs(region[:, index]).max())
                if value > best_value:
                    best_value, best_sample = value, first + index
            writer.write(np.arange(first, last) / sfreq, region)
            bar.update(round((last - first) / sfreq, 3))
    finally:
        bar.close()
        writer.close()
    if best_sample is None:
        raise BrainForgeError(NOTHING_TO_SEARCH)
    result = _view(model, name, stream, span, chunk, best_sample, head, plan, config, bad_spans, recording_s)
    result.outputs["region_timecourses"] = writer.describe()
    result.outputs["analysed_span_s"] = [round(span[0] / sfreq, 6), round((span[1] - 1) / sfreq, 6)]
    result.outputs["block_s"] = chunk / sfreq
    return result


def _view(
    model, name, stream, span, chunk, peak_sample, head, plan, config, bad_spans=(), recording_s=None
) -> Localization:
    """Solve again the block that holds the largest activity and wrap +-1 s around it as the result.

    The dipole-level estimate covers the whole span when it was solved in
    one block and fits :data:`MAX_STC_MB`, else +-:data:`SAVED_STC_HALF_SPAN_S`
    around the peak.
    Solving the same block as the pass did gives the same values (a
    network's windows and LCMV's covariance depend on the block).
    """
    sfreq = stream.filters.sfreq_out
    start, stop = span
    first = start + (peak_sample - start) // chunk * chunk
    last = min(stop, first + chunk)
    stc_mb = head.n_sources * (stop - start) * 4 / 1e6
    whole = stc_mb <= MAX_STC_MB and (first, last) == (start, stop)  # a span in one block, small enough
    half = round(VIEW_HALF_SPAN_S * sfreq)
    lo, hi = (first, last) if whole else (max(first, peak_sample - half), min(last, peak_sample + half + 1))
    half = round(SAVED_STC_HALF_SPAN_S * sfreq)
    stc_lo, stc_hi = (lo, hi) if whole else (max(lo, peak_sample - half), min(hi, peak_sample + half + 1))
    samplewise = getattr(model, "samplewise", False)
    if samplewise:  # only the view is needed, and its dipoles come from the same kernel
        first, last = lo, hi
    # LCMV: dipoles from the block's own covariance, as in the pass (a network has none).
    eeg, activity, offset = _block_solver(model, stream, span, first, last, with_dipoles=not samplewise)
    view = slice(offset + lo - first, offset + hi - first)
    region, view_eeg = activity.data[:, view], eeg[:, view]
    if samplewise:
        vertex = model.apply_regions(view_eeg[:, stc_lo - lo : stc_hi - lo], sfreq, with_dipoles=True).vertex_data
    elif activity.vertex_data is not None:
        vertex = activity.vertex_data[:, offset + stc_lo - first : offset + stc_hi - first]
    else:
        vertex = region[head.source_region, stc_lo - lo : stc_hi - lo]
    analysed_s = (span[0] / sfreq, (span[1] - 1) / sfreq)
    prepared = prepared_eeg(view_eeg, lo / sfreq, plan, stream.filters, config, "a continuous recording", None,
                         stream.n_in, list(bad_spans), recording_s, analysed_s, stream.breaks_s)  # fmt: skip
    stc = source_estimate(vertex.astype(np.float32), head, stc_lo / sfreq, sfreq)
    result = Localization(stc, region, head, prepared, name, notes=list(prepared.notes))
    edges, breaks = _edges_for(model, prepared), _break_spans_for(model, prepared, analysed_s)
    result.excluded_spans_s = [*prepared.bad_spans_s, *edges, *breaks]
    result.find_peaks()
    _note_edges(result, edges, prepared)
    _note_breaks(result, breaks, prepared, analysed_s)
    _add_network_notes(result, model, stop - start)
    reason = (
        f"the whole span would take {stc_mb:.0f} MB (more than {MAX_STC_MB:g} MB)"
        if stc_mb > MAX_STC_MB
        else f"the span was solved in blocks of {chunk / sfreq:g} s (chunk_s)"
    )
    result.outputs["source_estimate_scope"] = (
        f"the whole analysed span ({stc_mb:.0f} MB as float32, within {MAX_STC_MB:g} MB)"
        if whole
        else f"+-{SAVED_STC_HALF_SPAN_S:g} s around the largest activity: {reason}; use --tmin/--tmax or --events "
        "for other windows"
    )
    return result


def saved_source_estimate(result: Localization):
    """Return the part of the source estimate written to disk, float32.

    The whole estimate when it fits :data:`MAX_STC_MB`, else +-0.1 s around
    the largest activity (dipole-level estimates of whole recordings run to
    gigabytes; the region time courses keep the full span).
    """
    stc = result.stc
    saved = stc.copy()
    if stc.data.shape[0] * stc.data.shape[1] * 4 / 1e6 > MAX_STC_MB:
        index = result.peak_index if result.peak_index is not None else peak_time_index(result.region_data)
        peak = result.times[index]
        tmin = max(stc.tmin, peak - SAVED_STC_HALF_SPAN_S)
        tmax = min(stc.times[-1], peak + SAVED_STC_HALF_SPAN_S)
        saved = saved.crop(tmin, tmax)
        result.outputs.setdefault("source_estimate_scope", f"+-{SAVED_STC_HALF_SPAN_S:g} s around the peak")
    else:
        result.outputs.setdefault("source_estimate_scope", "the whole analysed span")
    saved.data = saved.data.astype(np.float32)
    return saved


def _write_confidence(result: Localization, saved, folder: Path) -> dict:
    """Write the spread as a source estimate (the saved estimate's span) and the confidence per region.

    Returns the summary entry.
    """
    import pandas as pd

    from ..anatomy import region_labels

    confidence, head = result.confidence, result.head
    first = round((saved.tmin - result.times[0]) * result.prepared.sfreq)
    spread = confidence.spread[:, first : first + saved.data.shape[1]]
    stc = source_estimate(spread[head.source_region].astype(np.float32), head, saved.tmin, result.prepared.sfreq)
    stc.save(folder / "source_spread", ftype="h5")
    labels = region_labels(head)
    in_set = np.zeros(head.n_regions, bool)
    in_set[confidence.confidence_set] = True
    order = np.argsort(-confidence.confidence, kind="stable")
    table = pd.DataFrame(
        {
            "region": order,
            "name": [head.region_names[r] for r in order],
            "label": [labels[r].name for r in order],
            "confidence": np.round(confidence.confidence[order], 4),
            "in_confidence_set": in_set[order],
            "spread_at_peak": np.round(confidence.spread[order, confidence.peak_time], 4),
        }
    )
    table.to_csv(folder / "region_confidence.csv", index=False)
    return {
        "method": "noise-resampling bootstrap (brainforge.inverse.uncertainty)",
        "n_resamples": len(confidence.resample_peaks),
        "level": confidence.level,
        "margin_mm": confidence.margin_mm,
        "confidence_set": [head.region_names[r] for r in confidence.confidence_set],
        "seconds": round(confidence.seconds, 3),
        "files": ["source_spread-stc.h5", "region_confidence.csv"],
    }


#: The deep sources' positions: the saved estimate's volume part has vertices 0, 1, ... in this table's order.
DEEP_SOURCES_FILE = "deep_sources.csv"


def deep_sources_table(head):
    """Return the deep dipoles as the saved estimate's volume part numbers them: vertex, region, position (mm).

    The volume part of ``source_estimate-stc.h5`` is a discrete source space
    of the template's deep dipoles, vertices ``0 .. n_deep - 1``; no fsaverage
    volume source space has them, so this table gives each one's region and
    position (:data:`COORDINATE_FRAME`).
    """
    import pandas as pd

    deep = np.arange(head.n_cortical_sources, head.n_sources)
    regions = head.source_region[deep]
    return pd.DataFrame(
        {
            "vertex": np.arange(len(deep)),
            "region": [head.region_names[r] for r in regions],
            "x_mm": head.source_pos_mm[deep, 0],
            "y_mm": head.source_pos_mm[deep, 1],
            "z_mm": head.source_pos_mm[deep, 2],
        }
    )


def _write_results(result: Localization, folder: Path, report: bool = True) -> None:
    """Write the source estimate, peaks, summary and report of a result into ``folder``."""
    import pandas as pd

    saved = saved_source_estimate(result)
    saved.save(folder / "source_estimate", ftype="h5")
    pd.DataFrame(result.peaks).to_csv(folder / "peaks.csv", index=False)
    if result.head.n_deep_regions:
        deep_sources_table(result.head).to_csv(folder / DEEP_SOURCES_FILE, index=False, float_format="%.2f")
    prepared = result.prepared
    summary = {
        "solver": result.solver,
        "source": prepared.source,
        "channels": prepared.ch_names,
        "dropped_channels": prepared.dropped,
        "sfreq_hz": prepared.sfreq,
        "analysed_span_s": result.outputs.get("analysed_span_s"),
        "n_times": (result.outputs.get("region_timecourses") or {}).get("n_times", int(result.region_data.shape[1])),
        "preprocessing": prepared.preprocessing,
        "head_model": result.head.description,
        "region_timecourses": result.outputs.get("region_timecourses"),
        "source_estimate": {
            "file": "source_estimate-stc.h5",
            "span_s": [round(float(saved.tmin), 6), round(float(saved.times[-1]), 6)],
            "scope": result.outputs.get("source_estimate_scope"),
            "values": result.outputs.get("values"),
            "deep_sources": DEEP_SOURCES_FILE if result.head.n_deep_regions else None,
        },
        "coordinates": COORDINATE_FRAME,
        "block_s": result.outputs.get("block_s"),
        "peaks": result.peaks,
        "uncertainty": _write_confidence(result, saved, folder) if result.confidence is not None else None,
        "notes": result.notes,
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    if report:
        from .report import make_report

        make_report(result).save(folder / "report.html", open_browser=False, overwrite=True)


def write_outputs(result: Localization, out_dir: str | Path, report: bool = True, timecourses: str = "parquet") -> Path:
    """Write an in-memory result into a new output folder at once (whole or absent).

    Writes the source estimate, region time courses, peaks, summary and report.
    """
    out_dir = check_out_dir(out_dir)
    tmp = open_tmp_dir(out_dir)
    try:
        writer = TimecourseWriter(tmp, result.head.region_names, timecourses)
        writer.write(result.times, result.region_data)
        writer.close()
        result.outputs["region_timecourses"] = writer.describe()
        result.outputs.setdefault(
            "analysed_span_s", [round(float(result.times[0]), 6), round(float(result.times[-1]), 6)]
        )
        _write_results(result, tmp, report)
        commit_tmp_dir(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
