"""Localise a recording: solver, head model for its channels, MNE source estimate, peaks, output folder."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np

from .._errors import BrainForgeError
from .recording import PreparedEEG, PreprocessingConfig, prepare_recording, read_recording

logger = logging.getLogger("brainforge")

#: The saved source estimate spans this much around the time of the largest activity, +- s.
SAVED_STC_HALF_SPAN_S = 0.1
#: Head models whose channels are picked for recordings with standard names (no new leadfield needed).
PICKABLE_HEADS = ("1010-64", "1010-75")


def default_model_dir() -> Path:
    """Return the folder of the bundled default model (a cnn_transformer trained across montages)."""
    path = Path(str(files("brainforge") / "data" / "default_model"))
    if not (path / "model.safetensors").is_file():
        raise BrainForgeError(f"The default model is missing from {path}; reinstall BrainForge.")
    return path


@dataclass
class Localization:
    """Everything a localisation produced.

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
    """

    stc: object
    region_data: np.ndarray
    head: object
    prepared: PreparedEEG
    solver: str
    peaks: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def times(self) -> np.ndarray:
        """Sample times, s."""
        return self.prepared.tmin + np.arange(self.region_data.shape[1]) / self.prepared.sfreq


def make_solver_for(name: str):
    """Return an unfitted solver: ``default`` (the bundled model), a classical method or a model folder."""
    from ..inverse import CLASSICAL_SOLVERS, ClassicalSolver, LearnedSolver

    if name == "default":
        return LearnedSolver(default_model_dir())
    if name.lower() in CLASSICAL_SOLVERS:
        return ClassicalSolver(name.lower(), vertex_output=True)
    path = Path(name)
    if path.is_dir():
        return LearnedSolver(path)
    raise BrainForgeError(
        f"Unknown solver {name!r}: use 'default', one of {', '.join(CLASSICAL_SOLVERS)}, or a model folder."
    )


def head_model_for(prepared: PreparedEEG, n_regions: int = 1000):
    """Return the template head model with the recording's channels (picked from a cached one where possible)."""
    from ..anatomy import CHANNEL_SUBSETS, make_head_model

    names = prepared.ch_names
    if prepared.montage is not None:
        return make_head_model(prepared.montage, n_regions=n_regions)
    for base in PICKABLE_HEADS:
        if set(names) <= set(CHANNEL_SUBSETS[base]):
            return make_head_model(base, n_regions=n_regions).pick_channels(names)
    return make_head_model(names, n_regions=n_regions)


def _solver_regions(solver) -> int:
    """Cortical regions of the template the solver was trained on (1000 for classical solvers)."""
    config = getattr(solver, "config", None) or {}
    head = (config.get("head_model") or {}).get("config") or {}
    return int(head.get("n_regions", 1000))


def source_estimate(vertex_data: np.ndarray, head, tmin: float, sfreq: float):
    """Wrap dipole-level activity (n_sources, n_times) as an MNE estimate on fsaverage.

    Cortical sources are fsaverage5 vertices, which are the first 10242
    vertices of each fsaverage hemisphere; deep sources form a discrete
    volume part (``MixedSourceEstimate``).
    """
    import mne

    n_left, n_cortical = head.n_left_sources, head.n_cortical_sources
    vertices = [np.arange(n_left), np.arange(n_cortical - n_left)]
    tstep = 1.0 / sfreq
    if head.n_deep_regions:
        vertices.append(np.arange(head.n_sources - n_cortical))
        return mne.MixedSourceEstimate(vertex_data, vertices, tmin, tstep, subject="fsaverage", verbose="error")
    return mne.SourceEstimate(vertex_data[:n_cortical], vertices, tmin, tstep, subject="fsaverage", verbose="error")


def find_peaks(region_data: np.ndarray, head, times: np.ndarray, n_peaks: int = 5) -> list[dict]:
    """Return the strongest local maxima (region graph) at the time of the largest |activity|."""
    from ..evaluation import local_maxima

    magnitude = np.abs(region_data)
    peak_time = int(magnitude.max(axis=0).argmax())
    maxima = local_maxima(region_data[:, peak_time], head.region_adjacency, threshold=0.3)
    maxima = maxima[np.argsort(-magnitude[maxima, peak_time])][:n_peaks]
    top = magnitude[:, peak_time].max()
    deep = head.region_is_deep
    return [
        {
            "rank": rank + 1,
            "region": int(region),
            "name": head.region_names[region],
            "time_s": round(float(times[peak_time]), 4),
            "relative_amplitude": round(float(magnitude[region, peak_time] / top), 4) if top > 0 else 0.0,
            "x_mm": round(float(head.region_centres[region, 0]), 1),
            "y_mm": round(float(head.region_centres[region, 1]), 1),
            "z_mm": round(float(head.region_centres[region, 2]), 1),
            "deep": bool(deep[region]),
        }
        for rank, region in enumerate(maxima)
    ]


def localize_prepared(prepared: PreparedEEG, solver: str = "default") -> Localization:
    """Run a solver on prepared EEG and wrap the result."""
    model = make_solver_for(solver)
    head = head_model_for(prepared, _solver_regions(model))
    model.fit(head)
    activity = model.apply(prepared.data, prepared.sfreq)
    region_data = activity.data
    vertex_data = activity.vertex_data if activity.vertex_data is not None else region_data[head.source_region]
    stc = source_estimate(vertex_data, head, prepared.tmin, prepared.sfreq)
    result = Localization(stc, region_data, head, prepared, solver, notes=list(prepared.notes))
    result.peaks = find_peaks(region_data, head, result.times)
    if solver == "default" or Path(solver).is_dir():
        result.notes.append(
            "A network trained on synthetic spikes on the template head: it localises focal, spike-like "
            "activity; slow or widespread activity and individual anatomy are outside its training."
        )
    return result


def localize(
    inst,
    solver: str = "default",
    *,
    tmin: float | None = None,
    tmax: float | None = None,
    events: list[str] | None = None,
    l_freq: float | None = 1.0,
    h_freq: float | None = 70.0,
):
    """Localise the sources of an MNE recording.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        EEG with standard channel names or electrode positions.
    solver : str
        ``"default"`` (the bundled network), a classical method (``sloreta``,
        ``eloreta``, ``dspm``, ``mne``, ``wmne``, ``lcmv``) or a trained-model folder.
    tmin, tmax : float | None
        Time span, s (with ``events``: the epoch around each event).
    events : list of str | None
        Annotation descriptions whose epochs are averaged and localised.
    l_freq, h_freq : float | None
        Band-pass, Hz.

    Returns
    -------
    stc : mne.SourceEstimate | mne.MixedSourceEstimate
        Source activity on fsaverage (mixed when the head model has deep sources).
    """
    config = PreprocessingConfig(l_freq, h_freq, tmin, tmax, tuple(events) if events else None)
    model_sfreq = _solver_sfreq(solver)
    return localize_prepared(prepare_recording(inst, model_sfreq, config), solver).stc


def _solver_sfreq(solver: str) -> float:
    """Return the rate the solver works at: a network's training rate, 500 Hz for classical solvers."""
    from ..inverse import LearnedSolver

    model = make_solver_for(solver)
    return model.sfreq if isinstance(model, LearnedSolver) else 500.0


def localize_file(path: str | Path, out_dir: str | Path, solver: str = "default", **options) -> Localization:
    """Localise a recording file and write the output folder (see :func:`write_outputs`)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BrainForgeError(f"{out_dir} exists and is not empty; choose another --out.")
    config = PreprocessingConfig(**options)
    sfreq = _solver_sfreq(solver)  # an unknown solver stops before the file is read
    prepared = prepare_recording(read_recording(path), sfreq, config)
    prepared.source = f"{Path(path).name}: {prepared.source}"
    result = localize_prepared(prepared, solver)
    write_outputs(result, out_dir)
    return result


def saved_source_estimate(result: Localization):
    """Return the part of the source estimate written to disk: +-0.1 s around the largest activity, float32.

    Dipole-level estimates of whole recordings run to gigabytes; the region
    time courses (CSV) keep the full span.
    """
    peak = result.times[int(np.abs(result.region_data).max(axis=0).argmax())]
    tmin = max(result.stc.tmin, peak - SAVED_STC_HALF_SPAN_S)
    tmax = min(result.stc.times[-1], peak + SAVED_STC_HALF_SPAN_S)
    saved = result.stc.copy().crop(tmin, tmax)
    saved.data = saved.data.astype(np.float32)
    return saved


def write_outputs(result: Localization, out_dir: str | Path, report: bool = True) -> Path:
    """Write the source estimate, region time courses, peaks, summary and report into ``out_dir`` at once.

    Everything is written into a temporary folder beside ``out_dir`` and
    renamed when complete, so the folder is either whole or absent.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        saved = saved_source_estimate(result)
        saved.save(tmp / "source_estimate", ftype="h5", verbose="error")
        names = result.head.region_names
        table = pd.DataFrame(result.region_data.T, columns=names)
        table.insert(0, "time_s", np.round(result.times, 6))
        table.to_csv(tmp / "region_timecourses.csv", index=False, float_format="%.5g")
        pd.DataFrame(result.peaks).to_csv(tmp / "peaks.csv", index=False)
        summary = {
            "solver": result.solver,
            "source": result.prepared.source,
            "channels": result.prepared.ch_names,
            "dropped_channels": result.prepared.dropped,
            "sfreq_hz": result.prepared.sfreq,
            "n_times": int(result.region_data.shape[1]),
            "head_model": result.head.description,
            "source_estimate_span_s": [round(float(saved.tmin), 6), round(float(saved.times[-1]), 6)],
            "peaks": result.peaks,
            "notes": result.notes,
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
        if report:
            from .report import make_report

            make_report(result).save(tmp / "report.html", open_browser=False, overwrite=True, verbose="error")
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked by the caller)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
