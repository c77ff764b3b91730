"""Simulated recordings with known sources, and the demo that localizes one end to end."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._errors import BrainForgeError, check_seed
from .._logging import verbose

logger = logging.getLogger("brainforge")

#: Cosine ramp at both ends of every simulated segment, s (segments join at zero).
RAMP_S = 0.05
#: File that marks a folder as the demo's own (a later demo may replace it).
DEMO_MARKER = "BRAINFORGE_DEMO"
#: Median channel standard deviation of a simulated recording, V.
TARGET_STD_V = 20e-6


@dataclass
class TrueSource:
    """A simulated source: its patch and the time of its spike peak."""

    kind: str
    time_s: float
    centre: int
    regions: list[int]

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {"kind": self.kind, "time_s": self.time_s, "centre": self.centre, "regions": self.regions}


def simulate_recording(head, library, kinds=("cortical", "deep"), *, snr_db: float = 10.0, seed: int = 0):
    """Simulate a continuous recording with one spike patch per entry of ``kinds`` (``"cortical"`` or ``"deep"``).

    Each source is a 1-s sample of the synthesis stage (one patch over
    neural-mass background, sensor noise at ``snr_db``); the samples are
    joined with cosine ramps and scaled to a realistic amplitude.

    Returns
    -------
    raw : mne.io.RawArray
        With standard 10-05 positions and annotations ``spike_<kind>`` at each peak.
    truth : list of TrueSource
    """
    import mne

    from ..synthesis import SampleGenerator, SynthesisConfig

    segments, truth = [], []
    offset = 0
    sfreq = float(library.metadata.get("sfreq_hz", 500.0))
    for index, kind in enumerate(kinds):
        if kind not in ("cortical", "deep"):
            raise BrainForgeError(f"Source kinds are 'cortical' or 'deep', got {kind!r}.")
        config = SynthesisConfig(
            n_sources=(1, 1), sensor_snr_db=(snr_db, snr_db), deep_share=1.0 if kind == "deep" else 0.0
        )
        sample = SampleGenerator(head, library, config).sample(seed * 1000 + index, keep_parts=True)
        eeg = sample.parts["clean"] + sample.parts["noise"]  # (T, C), un-normalized
        n_times = len(eeg)
        ramp = round(RAMP_S * sfreq)
        taper = np.ones(n_times)
        taper[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        taper[-ramp:] = taper[:ramp][::-1]
        segments.append((eeg - eeg.mean(axis=0)) * taper[:, None])
        peak = int(np.abs(sample.source_values).max(axis=1).argmax())
        truth.append(TrueSource(kind, (offset + peak) / sfreq, int(sample.centres[0]), sample.patches[0].tolist()))
        offset += n_times
    data = np.concatenate(segments).T
    data *= TARGET_STD_V / np.median(data.std(axis=1))
    info = mne.create_info(list(head.ch_names), sfreq, "eeg")
    raw = mne.io.RawArray(data, info)
    raw.set_montage("colin27_1005", on_missing="ignore")
    raw.set_annotations(
        mne.Annotations([s.time_s for s in truth], [0.0] * len(truth), [f"spike_{s.kind}" for s in truth])
    )
    return raw, truth


def write_long_recording(
    path: str | Path, minutes: float, head, library, *, tile_s: float = 10.0, snr_db: float = 10.0, seed: int = 0
) -> Path:
    """Write a long synthetic recording (FIF) for benchmarks and the slow tests.

    A ``tile_s`` recording from :func:`simulate_recording` (one spike per
    second, cortical and deep in turn) is repeated to ``minutes``, each repeat
    with its own sensor noise (``TARGET_STD_V / 2`` per channel, from ``seed``),
    and saved as float32 FIF with the spike annotations of every repeat.

    Parameters
    ----------
    path : path
        Output ``.fif`` file (``*_raw.fif``); FIF files over 2 GB are split by MNE.
    minutes : float
        Length of the recording, min.
    head : HeadModel
        Channels and leadfield (for example ``make_head_model("1010-64")``).
    library : SpikeLibrary
        Neural-mass spikes.
    tile_s : float
        Length of the simulated piece that is repeated, s.
    snr_db, seed
        As in :func:`simulate_recording`.

    Returns
    -------
    path : Path
    """
    import mne

    if not minutes > 0 or not tile_s >= 1:
        raise BrainForgeError(f"minutes must be positive and tile_s at least 1 s, got {minutes} and {tile_s}.")
    kinds = tuple("deep" if i % 4 == 3 else "cortical" for i in range(int(tile_s)))
    tile, _ = simulate_recording(head, library, kinds, snr_db=snr_db, seed=seed)
    sfreq = tile.info["sfreq"]
    n_times = round(minutes * 60.0 * sfreq)
    piece = tile.get_data().astype(np.float32)
    data = np.empty((piece.shape[0], n_times), np.float32)
    rng = np.random.default_rng(seed)
    onsets, names = [], []
    for start in range(0, n_times, piece.shape[1]):
        stop = min(n_times, start + piece.shape[1])
        noise = rng.standard_normal((piece.shape[0], stop - start), dtype=np.float32) * np.float32(TARGET_STD_V / 2)
        data[:, start:stop] = piece[:, : stop - start] + noise
        for annotation in tile.annotations:
            onset = start / sfreq + annotation["onset"]
            if onset < n_times / sfreq:
                onsets.append(onset)
                names.append(annotation["description"])
    raw = mne.io.RawArray(data, tile.info)
    del data
    raw.set_annotations(mne.Annotations(onsets, [0.0] * len(onsets), names))
    path = Path(path)
    raw.save(path, fmt="single", overwrite=True)
    return path


def source_errors_mm(result, truth: list[TrueSource], half_window_s: float = 0.01) -> list[float]:
    """Per true source: distance from the strongest region near its peak time to its nearest patch region, mm.

    The strongest region is taken at the sample of largest total |activity|
    within ``half_window_s`` of the true peak (0 mm inside the patch).
    """
    distance = result.head.region_distance_mm
    errors = []
    for source in truth:
        near = np.flatnonzero(np.abs(result.times - source.time_s) <= half_window_s)
        if not len(near):
            raise BrainForgeError(f"The localized span does not contain t = {source.time_s:.3f} s.")
        window = np.abs(result.region_data[:, near])
        moment = near[int(window.sum(axis=0).argmax())]
        region = int(np.abs(result.region_data[:, moment]).argmax())
        errors.append(float(distance[region, source.regions].min()))
    return errors


@verbose
def run_demo(
    out_dir: str | Path,
    *,
    seed: int = 0,
    snr_db: float = 10.0,
    verbose: bool | str | int | None = None,
) -> dict:
    """Simulate a recording (one cortical and one deep source), localize it with the default model and sLORETA.

    Writes ``recording_raw.fif``, ``truth.json``, ``default/`` and
    ``sloreta/`` (each a full localization folder with ``report.html``) and
    ``errors.json`` into ``out_dir``; returns the errors. The recording is
    localized without a high-pass filter (it is 2 s long and has no drift).

    Parameters
    ----------
    out_dir : path
        The demo folder (new, empty, or an earlier demo's, which is replaced).
    seed : int
        Seed of the simulated recording.
    snr_db : float
        Sensor SNR of the recording, dB (power).
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    errors : dict
        Per source: ``sources`` (kinds), ``default`` and ``sloreta`` (errors, mm); ``seconds``.
    """
    from ..anatomy import make_head_model
    from ..nmm import default_spike_library, read_spike_library
    from .core import localize_file

    out_dir = Path(out_dir)
    earlier = out_dir.exists() and any(out_dir.iterdir())
    if earlier and not (out_dir / DEMO_MARKER).is_file():
        raise BrainForgeError(f"{out_dir} exists, is not empty and holds no earlier demo; choose another --out.")
    if not np.isfinite(snr_db):
        raise BrainForgeError(f"--snr {snr_db}: give the recording's SNR as a finite number of dB, e.g. --snr 10.")
    check_seed(seed, "--seed")
    start = time.perf_counter()
    head = make_head_model("1010-64")
    library = read_spike_library(default_spike_library(progress=False))
    raw, truth = simulate_recording(head, library, ("cortical", "deep"), snr_db=snr_db, seed=seed)
    if earlier:
        shutil.rmtree(out_dir)  # an earlier demo's folder, replaced once the new recording exists
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DEMO_MARKER).write_text("Written by `brainforge demo`; a new demo replaces this folder.\n")
    recording = out_dir / "recording_raw.fif"
    raw.save(recording, overwrite=True)
    (out_dir / "truth.json").write_text(json.dumps([s.as_dict() for s in truth], indent=1))
    errors: dict = {"sources": [s.kind for s in truth]}
    for solver in ("default", "sloreta"):
        # The simulated recording is 2 s long and has no drift: a 1-Hz high-pass (3.3 s long) would only distort it.
        result = localize_file(recording, out_dir / solver, solver=solver, l_freq=None)
        errors[solver] = source_errors_mm(result, truth)
    errors["seconds"] = round(time.perf_counter() - start, 1)
    (out_dir / "errors.json").write_text(json.dumps(errors, indent=1))
    return errors
