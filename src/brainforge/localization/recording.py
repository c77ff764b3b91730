"""Reading and preparing real EEG recordings for localisation: channels, positions, reference, filter, rate."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import BrainForgeError

logger = logging.getLogger("brainforge")

#: Fewest usable channels accepted.
MIN_CHANNELS = 8
#: At or below this many channels a warning says that accuracy drops.
FEW_CHANNELS = 16
#: Lowest sampling rate accepted, Hz.
MIN_SFREQ_HZ = 100.0
#: Old 10-20 names and their 10-10 equivalents.
LEGACY_NAMES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
#: File positions farther than this from the standard position of the same name count as individual, mm.
STANDARD_POSITION_TOLERANCE_MM = 10.0
#: Peak-to-peak below this is a flat channel, V.
FLAT_PTP_V = 1e-9


@dataclass(frozen=True)
class PreprocessingConfig:
    """How a recording is prepared.

    Parameters
    ----------
    l_freq, h_freq : float | None
        Band-pass edges, Hz (None: no high-pass / low-pass). The low-pass is
        lowered below the new Nyquist frequency when needed.
    tmin, tmax : float | None
        Crop the recording to this span, s (with events: the epoch around
        each event).
    events : tuple of str | None
        Annotation descriptions to localise: epochs around every matching
        annotation are averaged (an evoked spike), then localised.
    """

    l_freq: float | None = 1.0
    h_freq: float | None = 70.0
    tmin: float | None = None
    tmax: float | None = None
    events: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.tmin is not None and self.tmax is not None and self.tmax <= self.tmin:
            raise BrainForgeError(f"tmax ({self.tmax} s) must be later than tmin ({self.tmin} s).")


@dataclass
class PreparedEEG:
    """EEG ready for a solver.

    Attributes
    ----------
    data : array, shape (n_channels, n_times)
        Average-referenced, filtered, resampled EEG, V.
    sfreq : float
        Sampling rate, Hz.
    tmin : float
        Time of the first sample, s.
    ch_names : list of str
        Channel names (standard spelling where known).
    montage : mne.channels.DigMontage | None
        Individual electrode positions from the file; None when the
        standard positions of the names are used.
    dropped : list of str
        Channels dropped (bad, flat or not finite).
    notes : list of str
        Warnings and caveats of the preparation, for the report.
    source : str
        What was read.
    """

    data: np.ndarray
    sfreq: float
    tmin: float
    ch_names: list[str]
    montage: object | None
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = ""


def read_recording(path: str | Path):
    """Read any EEG file that MNE reads (raw FIF, EDF, BDF, BrainVision, EEGLAB, ...; ``-epo.fif``, ``-ave.fif``)."""
    import mne

    path = Path(path)
    if not path.exists():
        raise BrainForgeError(f"Recording not found: {path}.")
    name = path.name.lower()
    try:
        if name.endswith(("-epo.fif", "_epo.fif", "-epo.fif.gz")):
            return mne.read_epochs(path, preload=True, verbose="error")
        if name.endswith(("-ave.fif", "_ave.fif", "-ave.fif.gz")):
            return mne.read_evokeds(path, verbose="error")[0]
        return mne.io.read_raw(path, preload=True, verbose="error")
    except Exception as err:  # MNE raises many types for unreadable files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BrainForgeError(
            f"Cannot read {path.name} as EEG ({reason}); BrainForge reads what MNE reads: FIF, EDF, BDF, "
            "BrainVision (.vhdr), EEGLAB (.set), ..."
        ) from err


def standard_name(name: str, known: dict[str, str]) -> str | None:
    """Return the 10-05 spelling of a channel name (``EEG Fp1-REF`` -> ``Fp1``, ``T3`` -> ``T7``), or None."""
    cleaned = re.sub(r"^(EEG|eeg)[\s_-]*", "", name.strip())
    cleaned = re.sub(r"[-_ ](REF|Ref|ref|LE|AVG|Avg|avg|A1|A2|M1|M2|Cz)$", "", cleaned) or cleaned
    cleaned = LEGACY_NAMES.get(cleaned.upper().replace("Z", "z"), cleaned)
    for candidate in (cleaned, cleaned.upper()):
        if candidate.lower() in known:
            return known[candidate.lower()]
    return None


def _standard_positions_m(names: list[str]) -> np.ndarray:
    """Positions of 10-05 names in MNE's head frame, m (the frame a file's montage is read in)."""
    import mne

    info = mne.create_info(names, 1000.0, "eeg")
    info.set_montage("standard_1005", on_missing="ignore", verbose="error")
    return _file_positions_m(info)


def _file_positions_m(info) -> np.ndarray:
    """Channel positions stored in the file (head frame, m); NaN rows where absent."""
    positions = np.array([ch["loc"][:3] for ch in info["chs"]], float)
    missing = ~np.isfinite(positions).all(axis=1) | (np.abs(positions).sum(axis=1) == 0)
    positions[missing] = np.nan
    return positions


def _to_evoked_or_raw(inst, config: PreprocessingConfig):
    """Epochs become their average; with ``events``, a raw recording becomes the average around them."""
    import mne

    if isinstance(inst, mne.BaseEpochs):
        return inst.average(picks="all"), "the average of the epochs"
    if isinstance(inst, mne.Evoked):
        return inst.copy(), "an evoked response"
    if not isinstance(inst, mne.io.BaseRaw):
        raise BrainForgeError(f"Expected an mne Raw, Epochs or Evoked object, got {type(inst).__name__}.")
    raw = inst.copy().load_data(verbose="error")
    if not config.events:
        return raw, "a continuous recording"
    wanted = set(config.events)
    onsets = [a["onset"] for a in raw.annotations if a["description"] in wanted]
    if not onsets:
        present = sorted(set(raw.annotations.description)) or ["none"]
        raise BrainForgeError(
            f"No annotation named {', '.join(sorted(wanted))} in the recording (present: {', '.join(present)})."
        )
    tmin = -0.2 if config.tmin is None else config.tmin
    tmax = 0.3 if config.tmax is None else config.tmax
    samples = np.round((np.asarray(onsets) - raw.first_time) * raw.info["sfreq"]).astype(int) + raw.first_samp
    events = np.c_[samples, np.zeros_like(samples), np.ones_like(samples)]
    epochs = mne.Epochs(raw, events, tmin=tmin, tmax=tmax, baseline=None, preload=True, verbose="error")
    if not len(epochs):
        raise BrainForgeError("Every event lies too close to the recording's edges for the epoch window.")
    return epochs.average(picks="all"), f"the average of {len(epochs)} epoch(s) around {', '.join(sorted(wanted))}"


def prepare_recording(inst, sfreq: float, config: PreprocessingConfig | None = None) -> PreparedEEG:
    """Pick, check, reference, filter and resample the EEG of an MNE object.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        The recording.
    sfreq : float
        The solver's sampling rate, Hz.
    config : PreprocessingConfig | None
        Filter, time span and events.

    Returns
    -------
    prepared : PreparedEEG
    """
    import mne

    from ..anatomy import dense_channel_names

    config = config or PreprocessingConfig()
    inst, source = _to_evoked_or_raw(inst, config)
    if inst.info["sfreq"] < MIN_SFREQ_HZ:
        raise BrainForgeError(
            f"The sampling rate is {inst.info['sfreq']:g} Hz; localisation needs at least {MIN_SFREQ_HZ:g} Hz."
        )
    picks = mne.pick_types(inst.info, eeg=True, exclude=[])
    if not len(picks):
        raise BrainForgeError("The recording has no EEG channels; set their type with set_channel_types().")
    inst.pick(picks, verbose="error")
    notes: list[str] = []
    bads = [b for b in inst.info["bads"] if b in inst.ch_names]
    data = inst.get_data()
    finite = np.isfinite(data).all(axis=1)
    ptp = np.where(finite, np.nanmax(data, axis=1) - np.nanmin(data, axis=1), np.inf)
    flat = [name for name, value, ok in zip(inst.ch_names, ptp, finite, strict=True) if ok and value < FLAT_PTP_V]
    nonfinite = [name for name, ok in zip(inst.ch_names, finite, strict=True) if not ok]
    if len(flat) == len(inst.ch_names):
        raise BrainForgeError("Every EEG channel is flat; check the recording and its units.")
    dropped = list(dict.fromkeys(bads + flat + nonfinite))
    for label, names in (("marked bad", bads), ("flat", flat), ("with NaN or infinite values", nonfinite)):
        if names:
            message = f"Dropped {len(names)} channel(s) {label}: {', '.join(names)}."
            logger.warning(message)
            notes.append(message)
    inst.drop_channels(dropped)
    known = {n.lower(): n for n in dense_channel_names()}
    names = list(inst.ch_names)
    standard = [standard_name(n, known) for n in names]
    file_pos = _file_positions_m(inst.info)
    unknown = [n for n, s, p in zip(names, standard, file_pos, strict=True) if s is None and not np.isfinite(p).all()]
    if unknown:
        raise BrainForgeError(
            f"Channel(s) without positions that no standard montage knows: {', '.join(unknown)}; "
            "set the montage (raw.set_montage) or rename them to 10-05 names."
        )
    montage = None
    have_positions = np.isfinite(file_pos).all(axis=1)
    if have_positions.all():
        reference = _standard_positions_m([s for s in standard if s is not None]) if all(standard) else None
        distance_mm = np.linalg.norm(reference - file_pos, axis=1) * 1e3 if reference is not None else None
        if distance_mm is None or np.nanmax(distance_mm, initial=0.0) > STANDARD_POSITION_TOLERANCE_MM:
            montage = mne.channels.make_dig_montage(dict(zip(names, file_pos, strict=True)), coord_frame="head")
            notes.append("Electrode positions from the file, projected onto the template head.")
    if montage is None:
        if not all(standard):
            missing = [n for n, s in zip(names, standard, strict=True) if s is None]
            raise BrainForgeError(f"Channel(s) without positions that no standard montage knows: {', '.join(missing)}.")
        if any(s != n for s, n in zip(standard, names, strict=True)):
            inst.rename_channels(dict(zip(names, standard, strict=True)), verbose="error")
        notes.append("Electrode positions: standard 10-05 positions of the channel names on the template head.")
    n_channels = len(inst.ch_names)
    if len(set(inst.ch_names)) != n_channels:
        raise BrainForgeError("Two channels map to the same standard name; drop or rename one.")
    if n_channels < MIN_CHANNELS:
        raise BrainForgeError(f"Only {n_channels} usable EEG channel(s); localisation needs at least {MIN_CHANNELS}.")
    if n_channels <= FEW_CHANNELS:
        message = f"Only {n_channels} channels: expect lower localisation accuracy than with 32 or more."
        logger.warning(message)
        notes.append(message)
    if not config.events and (config.tmin is not None or config.tmax is not None):
        if isinstance(inst, mne.io.BaseRaw):
            inst.crop(tmin=config.tmin or 0.0, tmax=config.tmax, include_tmax=False)
        else:
            inst.crop(tmin=config.tmin, tmax=config.tmax)
    inst.set_eeg_reference("average", projection=False, verbose="error")
    h_freq = config.h_freq
    nyquist = min(inst.info["sfreq"], sfreq) / 2.0
    if h_freq is not None and h_freq >= nyquist * 0.9:
        h_freq = nyquist * 0.9
    if config.l_freq is not None or h_freq is not None:
        inst.filter(config.l_freq, h_freq, verbose="error")
    if abs(inst.info["sfreq"] - sfreq) > 1e-6:
        notes.append(f"Resampled from {inst.info['sfreq']:g} Hz to {sfreq:g} Hz.")
        inst.resample(sfreq, verbose="error")
    data = inst.get_data()
    data = data - data.mean(axis=0)
    start = float(inst.times[0]) if isinstance(inst, mne.Evoked) else float(config.tmin or 0.0)
    return PreparedEEG(
        data=data, sfreq=float(sfreq), tmin=start,
        ch_names=list(inst.ch_names), montage=montage, dropped=dropped, notes=notes, source=source,
    )  # fmt: skip
