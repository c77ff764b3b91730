"""Reading and preparing real EEG recordings for localization: channels, positions, reference, filter, rate.

A recording is prepared in two steps. :func:`select_channels` decides which
channels are used and where they sit (from the channel types and names, the
user's ``channels``/``exclude``, bad marks and a scan for flat or non-finite
channels). :class:`RecordingStream` then reads, references, filters and
resamples any span of output samples, with margins wide enough that a span
prepared on its own equals the same samples of the whole recording prepared at
once. That is what lets :func:`brainforge.localization.localize_file` process
a recording of any length in chunks of bounded memory.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .._config import split_names
from .._errors import BrainForgeError
from .._logging import quiet_level, verbose
from .positions import (
    MAX_ROTATION_DEG,
    check_positions_file,
    error_reason,
    file_positions_m,
    read_positions,
    rotation_deg,
    standard_positions_m,
)

logger = logging.getLogger("brainforge")

#: Fewest usable channels accepted.
MIN_CHANNELS = 8
#: At or below this many channels a warning says that accuracy drops.
FEW_CHANNELS = 16
#: Lowest sampling rate accepted, Hz.
MIN_SFREQ_HZ = 100.0
#: Old 10-20 names and their 10-10 equivalents.
LEGACY_NAMES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
#: The note of a recording localized without its own electrode positions: what an uncorrected cap costs.
STANDARD_POSITIONS_NOTE = (
    "Electrode positions: standard 10-05 positions of the channel names on the template head, not "
    "co-registered. In our tests a cap that sat 2-3 cm lower than the template's put peaks about 1.5-2 cm "
    "too high (docs/MODEL_CARD.md, Known limits); digitized positions in the file or given with --positions "
    "avoid this."
)
#: File positions farther than this from the standard position of the same name count as individual, mm.
STANDARD_POSITION_TOLERANCE_MM = 10.0
#: The note of a recording whose file positions are the standard ones (within the tolerance); {source} names
#: where the positions came from.
FILE_POSITIONS_STANDARD_NOTE = (
    "Electrode positions from {source} lie within "
    f"{STANDARD_POSITION_TOLERANCE_MM:g} mm of the standard 10-05 positions of their names; the standard ones are used."
)
#: Peak-to-peak below this is a flat channel, V.
FLAT_PTP_V = 1e-9
#: A median channel peak-to-peak above this is not EEG in volts (even DC-coupled amplifiers' offsets stay
#: below it), V: the data are in other units stored as volts.
MAX_EEG_PTP_V = 1.0
#: A median channel peak-to-peak below this is far smaller than any EEG, V (a note says so).
MIN_EEG_PTP_V = 1e-7
#: A median channel peak-to-peak above this is more than EEG usually swings, V (a note says so): millivolts
#: stored as volts, or a DC-coupled recording's drifts.
LARGE_EEG_PTP_V = 1e-2
#: Samples read at a time when scanning a recording for flat or non-finite channels.
SCAN_CHUNK_SAMPLES = 100_000
#: Channels that are not scalp EEG, by name (after "EEG "/"POL " prefixes and reference suffixes are removed):
#: ECG/EKG, EOG (also LOC/ROC), EMG (also chin), photic stimulation, ear and mastoid references, DC and
#: trigger inputs, respiration and pulse oximetry, and Nihon Kohden's spare inputs X1, X2, ...
NON_SCALP_NAME = re.compile(
    r"^(E[CK]G|[HV]?EOG|LOC|ROC|EMG|CHIN|PHOTIC|PHOT|A[12]|M[12]|DC|TRIG|TRIGGER|STI|STIM|STATUS|EVENT|MARK"
    r"|RESP|SPO2|SAO2|PULSE|PLETH|HR|X)\d*([-_ ].*)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PreprocessingConfig:
    """How a recording is prepared; every value is checked when the object is made.

    Parameters
    ----------
    l_freq, h_freq : float | None
        Band-pass edges, Hz (None or 0: no high-pass / low-pass). The
        low-pass is lowered below the new Nyquist frequency when needed.
    tmin, tmax : float | None
        Analyse this span of the recording, s from its start (with events:
        the epoch around each event, s relative to it).
    events : tuple of str | str | None
        Annotation descriptions to localize: epochs around every matching
        annotation are averaged (an evoked spike), then localized. Every name
        must occur in the recording.
    channels : tuple of str | str | None
        Use only these channels (file or 10-05 names); None: every scalp
        EEG channel.
    exclude : tuple of str | str
        Channels not to use (file or 10-05 names). For ``events``,
        ``channels`` and ``exclude``, one string is read as comma-separated
        names (``"Fp1,Fp2"``).
    positions : str | path | None
        A file of electrode positions (digitized, for example) to use
        instead of those in the recording: any format in
        :data:`~brainforge.localization.positions.POSITION_FILE_FORMATS`
        (:func:`read_positions`). A path is stored as its string.
    """

    l_freq: float | None = 1.0
    h_freq: float | None = 70.0
    tmin: float | None = None
    tmax: float | None = None
    events: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    positions: str | Path | None = None  # stored as str

    def __post_init__(self) -> None:
        for name in ("events", "channels", "exclude"):  # one string: comma-separated names, as on the command line
            value = getattr(self, name)
            if isinstance(value, str):
                names = tuple(split_names(value))
                object.__setattr__(self, name, names if names or name == "exclude" else None)
        if self.positions is not None:
            object.__setattr__(self, "positions", str(self.positions))  # a Path is accepted too
            check_positions_file(Path(self.positions))
        for option, value in (("--l-freq", self.l_freq), ("--h-freq", self.h_freq)):
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise BrainForgeError(
                    f"{option} {value:g}: a filter edge must be a positive frequency in Hz; use {option} 0 for none."
                )
        if self.l_freq and self.l_freq < MIN_L_FREQ_HZ:
            raise BrainForgeError(
                f"--l-freq {self.l_freq:g}: a high-pass below {MIN_L_FREQ_HZ:g} Hz needs a filter "
                f"{3.3 / self.l_freq:.0f} s long, and its edge transient spans {filter_edge_s(self.l_freq):.0f} s at "
                f"each end; use --l-freq {MIN_L_FREQ_HZ:g} or more, or --l-freq 0 for none."
            )
        if self.l_freq and self.h_freq and self.l_freq >= self.h_freq:
            raise BrainForgeError(
                f"--l-freq {self.l_freq:g} is not below --h-freq {self.h_freq:g}: that would be a band-stop "
                "filter; give the high-pass edge first (e.g. --l-freq 1 --h-freq 70)."
            )
        for option, value in (("--tmin", self.tmin), ("--tmax", self.tmax)):
            if value is not None and not np.isfinite(value):
                raise BrainForgeError(f"{option} {value}: give a time in seconds.")
        if self.tmin is not None and self.tmax is not None and self.tmax <= self.tmin:
            raise BrainForgeError(f"--tmax {self.tmax:g} s must be later than --tmin {self.tmin:g} s.")
        if self.events is not None and not all(name.strip() for name in self.events):
            raise BrainForgeError("--events holds an empty name; give annotation names separated by commas.")

    @property
    def high_pass_hz(self) -> float | None:
        """The high-pass edge, None when off."""
        return self.l_freq or None

    @property
    def low_pass_hz(self) -> float | None:
        """The requested low-pass edge, None when off."""
        return self.h_freq or None

    def as_dict(self) -> dict:
        """Return the settings as JSON-ready values (for summary.json)."""
        return {
            "l_freq_hz": self.high_pass_hz,
            "h_freq_hz": self.low_pass_hz,
            "tmin_s": self.tmin,
            "tmax_s": self.tmax,
            "events": list(self.events) if self.events else None,
            "channels": list(self.channels) if self.channels else None,
            "exclude": list(self.exclude),
            "positions_file": self.positions,
        }


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
        Channels dropped (not scalp EEG, excluded, bad, flat or not finite).
    notes : list of str
        Warnings and caveats of the preparation, for the report.
    source : str
        What was read.
    preprocessing : dict
        Every setting applied (for summary.json).
    bad_spans_s : list of (float, float)
        Spans (s, the time base of ``tmin``) that annotations starting with "bad" mark
        (MNE's convention); peaks are not searched there.
    recording_s : float | None
        A continuous recording's length (s, the time base of ``tmin``), whose first
        and last :func:`filter_edge_s` the high-pass filter's edge transient
        inflates; None for epochs, evoked data and event averages.
    breaks_s : list of float
        Times (s, the time base of ``tmin``) where a continuous recording's data
        break off and resume (:func:`recording_breaks_in`): each stretch between
        them was filtered on its own, and each has edges like the recording's.
    """

    data: np.ndarray
    sfreq: float
    tmin: float
    ch_names: list[str]
    montage: object | None
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = ""
    preprocessing: dict = field(default_factory=dict)
    bad_spans_s: list[tuple[float, float]] = field(default_factory=list)
    recording_s: float | None = None
    breaks_s: list[float] = field(default_factory=list)


@dataclass
class ChannelPlan:
    """Which channels of a recording are used, under which names, at which positions.

    Attributes
    ----------
    picks : list of str
        The channels used, as named in the file.
    ch_names : list of str
        Their names for the solver (10-05 spelling where the standard
        positions are used).
    montage : mne.channels.DigMontage | None
        Electrode positions from the file, or None for the standard positions.
    dropped : dict of str to list of str
        Channels left out, by reason.
    notes : list of str
        Warnings, for the report.
    """

    picks: list[str]
    ch_names: list[str]
    montage: object | None
    dropped: dict[str, list[str]]
    notes: list[str]

    @property
    def dropped_names(self) -> list[str]:
        """Every dropped channel, once."""
        return list(dict.fromkeys(name for names in self.dropped.values() for name in names))


def _pick_evoked(evokeds: list, condition: str | int, file_name: str):
    """Return the evoked response that ``condition`` names: a comment, else an index from 0."""
    comments = [e.comment for e in evokeds]
    if str(condition) in comments:
        return evokeds[comments.index(str(condition))]
    if str(condition).lstrip("-").isdigit() and 0 <= int(condition) < len(evokeds):
        return evokeds[int(condition)]
    raise BrainForgeError(
        f"--condition {condition}: {file_name} holds no such evoked response; give one of "
        f"{', '.join(repr(c) for c in comments)} or an index from 0 to {len(evokeds) - 1}."
    )


@verbose
def read_recording(
    path: str | Path,
    preload: bool = True,
    *,
    condition: str | int | None = None,
    verbose: bool | str | int | None = None,
):
    """Read any EEG file that MNE reads (raw FIF, EDF, BDF, BrainVision, EEGLAB, EGI, ...; -epo/-ave.fif).

    Parameters
    ----------
    path : path
        The file.
    preload : bool
        Load a raw recording's data into memory (False: read it on demand, as
        chunked localization does).
    condition : str | int | None
        Which evoked response of an ``-ave.fif`` file: its comment (the
        condition's name) or its index from 0. None: the first (with a
        warning when there are several).
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.
    """
    import mne

    path = Path(path)
    if not path.exists():
        raise BrainForgeError(f"Recording not found: {path}.")
    name = path.name.lower()
    evoked_file = name.endswith(("-ave.fif", "_ave.fif", "-ave.fif.gz", "_ave.fif.gz"))
    if condition is not None and not evoked_file:
        raise BrainForgeError(
            f"--condition {condition} chooses among the evoked responses of an -ave.fif file; {path.name} is not "
            "one. Drop --condition."
        )
    try:
        if name.endswith(("-epo.fif", "_epo.fif", "-epo.fif.gz", "_epo.fif.gz")):
            return mne.read_epochs(path, preload=True)
        if evoked_file:
            evokeds = mne.read_evokeds(path)
            if condition is None and len(evokeds) > 1:
                logger.warning(
                    f"{path.name} holds {len(evokeds)} evoked responses "
                    f"({', '.join(repr(e.comment) for e in evokeds)}); localizing the first. To choose another, "
                    "give --condition NAME or INDEX."
                )
            if condition is not None:
                return _pick_evoked(evokeds, condition, path.name)
            return evokeds[0]
        try:
            raw = mne.io.read_raw(path, preload=preload)
        except (ValueError, TypeError) as err:
            if name.endswith(".set") and "number of trials" in str(err).lower():  # epoched EEGLAB: its epochs
                return mne.read_epochs_eeglab(path)
            if name.endswith((".fif", ".fif.gz")) and "no raw data" in str(err).lower():
                return _read_fif_without_raw(path)
            raise
        check_readable(raw, path.name)
        return raw
    except BrainForgeError:
        raise
    except Exception as err:  # MNE raises many types for unreadable files
        raise BrainForgeError(
            f"Cannot read {path.name} as EEG ({error_reason(err)}); BrainForge reads what MNE reads: FIF, EDF, BDF, "
            "BrainVision (.vhdr), EEGLAB (.set), EGI (.mff), ANT (.cnt), ..."
        ) from err


def _read_fif_without_raw(path: Path):
    """Read a FIF file that holds epochs or evoked responses under a name without ``-epo``/``-ave``."""
    import mne

    try:
        return mne.read_epochs(path, preload=True)
    except Exception as err:
        if not any(why in str(err).lower() for why in ("could not find epochs data", "could not find event data")):
            raise  # epochs, but damaged
    nothing = f"{path.name} holds no raw recording, epochs or evoked responses that MNE can read."
    try:
        evokeds = mne.read_evokeds(path)
    except Exception as err:
        if "could not find evoked data" not in str(err).lower():  # evoked responses, but damaged
            raise
        raise BrainForgeError(nothing) from err
    if not evokeds:  # measurement info alone (write_info), for example
        raise BrainForgeError(nothing)
    if len(evokeds) > 1:
        logger.warning(
            f"{path.name} holds {len(evokeds)} evoked responses; localizing the first. To choose another, rename "
            "the file to end in -ave.fif and give --condition NAME or INDEX."
        )
    return evokeds[0]


def check_readable(raw, file_name: str) -> None:
    """Read a raw recording's last sample, so that a file cut short stops here, on one line.

    MNE opens a truncated file from its header and fails only when it reads the
    missing samples (a ``RuntimeError`` or ``ValueError`` deep in its reader).
    """
    if raw.n_times < 2:
        raise BrainForgeError(
            f"{file_name} holds {raw.n_times} sample(s); a recording needs at least two. Check the file's export."
        )
    read_samples(raw, None, raw.n_times - 1, raw.n_times, file_name)


def read_samples(raw, picks, start: int, stop: int, file_name: str | None = None) -> np.ndarray:
    """Return ``raw.get_data(picks, start, stop)``; a file that cannot give them stops on one line."""
    import zlib

    try:
        return raw.get_data(picks=picks, start=start, stop=stop)
    except (ValueError, RuntimeError, OSError, EOFError, zlib.error) as err:
        files = [f for f in (raw.filenames or ()) if f]
        if raw.preload or not files:  # the data are in memory: no file to blame
            raise
        name = file_name or Path(files[0]).name
        raise BrainForgeError(
            f"Cannot read samples {start}-{stop} of {name}: the file is truncated or damaged ({error_reason(err)}). "
            "Copy or export it again."
        ) from err


def standard_name(name: str, known: dict[str, str]) -> str | None:
    """Return the 10-05 spelling of a channel name (``EEG Fp1-REF`` -> ``Fp1``, ``T3`` -> ``T7``), or None."""
    cleaned = _strip_decorations(name)
    cleaned = LEGACY_NAMES.get(cleaned.upper().replace("Z", "z"), cleaned)
    for candidate in (cleaned, cleaned.upper()):
        if candidate.lower() in known:
            return known[candidate.lower()]
    return None


def _strip_decorations(name: str) -> str:
    """Remove "EEG "/"POL " prefixes and reference suffixes (``-REF``, ``-A1``, ...) from a channel name."""
    cleaned = re.sub(r"^(EEG|eeg|POL|pol)[\s_-]*", "", name.strip())
    return re.sub(r"[-_ ](REF|Ref|ref|LE|AVG|Avg|avg|A1|A2|M1|M2|Cz)$", "", cleaned) or cleaned


def _unknown_channels_error(unknown: list[str], known: dict[str, str]) -> BrainForgeError:
    """Return the error for channels without positions: bipolar derivations named as such, the fixes otherwise."""
    bipolar = [
        name
        for name in unknown
        if len(parts := re.split(r"[-_ ]", _strip_decorations(name))) == 2
        and all(standard_name(part, known) for part in parts)
    ]
    others = [name for name in unknown if name not in set(bipolar)]
    if bipolar:
        return BrainForgeError(
            f"Channel(s) {', '.join(bipolar)} look like bipolar derivations, which cannot be localized; leave "
            f"them out with --exclude {','.join(bipolar)}, or export the recording against one common reference"
            + (
                f" (and {', '.join(others)} have no known positions: give them with --positions FILE)."
                if others
                else "."
            )
        )
    return BrainForgeError(
        f"Channel(s) without positions that no standard montage knows: {', '.join(unknown)}; give their "
        f"positions with --positions FILE, leave them out with --exclude {','.join(unknown)}, or rename them "
        "to 10-05 names."
    )


def is_non_scalp(name: str) -> bool:
    """Whether a channel name is a non-scalp input (ECG/EKG, EOG, EMG, PHOTIC, A1/A2/M1/M2, DC, trigger, ...)."""
    return bool(NON_SCALP_NAME.match(_strip_decorations(name)) or NON_SCALP_NAME.match(name.strip()))


def _positions_from_file(path: Path, chosen: list[str], known: dict[str, str]) -> tuple[np.ndarray, list[str]]:
    """Positions of the chosen channels from a ``--positions`` file (matched by name or 10-05 spelling), m."""
    positions, notes = read_positions(path)
    lookup = _name_lookup(list(positions), known)
    standard = [standard_name(name, known) for name in chosen]
    where = f"--positions {path.name}"
    keys = [
        _find_name(name, lookup, where) or (_find_name(spelled, lookup, where) if spelled else None)
        for name, spelled in zip(chosen, standard, strict=True)
    ]
    missing = [name for name, key in zip(chosen, keys, strict=True) if key is None]
    if missing:
        raise BrainForgeError(
            f"{where}: no position for channel(s) {', '.join(missing)} of the recording; add them "
            f"to the file, or leave them out with --exclude {','.join(missing)}."
        )
    chosen_m = np.array([positions[key] for key in keys])
    _check_axes(path, chosen_m, standard)
    return chosen_m, notes


def _check_axes(path: Path, positions_m: np.ndarray, standard: list[str | None]) -> None:
    """Refuse positions rotated (or mirrored) far from the standard positions of the same 10-05 names.

    Checked when at least :data:`MIN_CHANNELS` channels have a 10-05 name (``standard``, None where not).
    """
    named = [i for i, name in enumerate(standard) if name is not None]
    if len(named) < MIN_CHANNELS:
        return
    reference_m = standard_positions_m([standard[i] for i in named])
    ok = np.isfinite(reference_m).all(axis=1)
    angle = rotation_deg(positions_m[named][ok], reference_m[ok]) if ok.sum() >= MIN_CHANNELS else 0.0
    if angle > MAX_ROTATION_DEG:
        raise BrainForgeError(
            f"--positions {path.name}: the positions are rotated {angle:.0f} degrees from the standard positions "
            "of the same names: other axes than MNE's head frame (+x right ear, +y nasion, +z up); add the "
            "fiducials (nasion, LPA, RPA) to the file or convert the coordinates."
        )


def _name_key(name: str) -> str:
    """Compare channel names without case or spaces (``EEG 001``, ``eeg001``)."""
    return "".join(name.split()).lower()


def _name_lookup(available: list[str], known: dict[str, str]) -> dict[str, list[str]]:
    """Map the keys (:func:`_name_key`) of names and of their 10-05 spellings to the names in ``available``.

    A name's own key comes before any 10-05 spelling with the same key. A key
    shared by several names (``EEG 1`` and ``eeg1``) keeps them all, for
    :func:`_find_name` to refuse.
    """
    lookup: dict[str, list[str]] = {}
    for name in available:
        lookup.setdefault(_name_key(name), []).append(name)
    spellings: dict[str, list[str]] = {}
    for name in available:
        standard = standard_name(name, known)
        key = _name_key(standard) if standard is not None else None
        if key is not None and key not in lookup:
            spellings.setdefault(key, []).append(name)
    lookup.update(spellings)  # keys of their own: a name's own key is never a spelling's
    return lookup


def _find_name(name: str, lookup: dict[str, list[str]], where: str) -> str | None:
    """Return the name in ``lookup`` that ``name`` means: itself, else the one with its key; None if none has it.

    Raises
    ------
    BrainForgeError
        Where the key is shared by several names and none is ``name`` itself.
    """
    matches = lookup.get(_name_key(name), [])
    if name in matches:
        return name
    if len(matches) < 2:
        return matches[0] if matches else None
    raise BrainForgeError(
        f"{where}: {name} could be any of {', '.join(matches)}, which differ only in case, spaces or spelling; "
        "give the exact name, or rename them so that each name is unique."
    )


def _match_names(requested: tuple[str, ...], available: list[str], known: dict[str, str], option: str) -> list[str]:
    """Map names given by the user (file or 10-05 spelling, any case) to the file's names.

    Raises
    ------
    BrainForgeError
        For a name that no channel has, or that several have (:func:`_find_name`).
    """
    lookup = _name_lookup(available, known)
    found = [_find_name(name, lookup, option) for name in requested]
    unknown = [name for name, match in zip(requested, found, strict=True) if match is None]
    if unknown:
        raise BrainForgeError(
            f"{option}: no channel named {', '.join(unknown)} in the recording (it has: {', '.join(available)})."
        )
    return list(dict.fromkeys(found))


def scan_channels(inst, picks: list[str], start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (finite, peak-to-peak V) per channel over samples [start, stop), reading in bounded chunks.

    A raw recording's gaps (:func:`nan_gaps_in`) are left out: their values are never used.
    """
    import mne

    if not isinstance(inst, mne.io.BaseRaw):
        data = inst.get_data(picks=picks)
        finite = np.isfinite(data).all(axis=1)
        with np.errstate(invalid="ignore"):
            return finite, np.nanmax(data, axis=1) - np.nanmin(data, axis=1)
    stop = inst.n_times if stop is None else stop
    finite = np.ones(len(picks), bool)
    low = np.full(len(picks), np.inf)
    high = np.full(len(picks), -np.inf)
    gaps = nan_gaps_in(inst, picks, (start, stop))
    if sum(min(last, stop) - max(first, start) for first, last in gaps) >= stop - start:
        raise BrainForgeError(
            "Every sample of the analysed span lies in NaN within spans annotated as bad (BAD_...); choose "
            "--tmin/--tmax outside them."
        )
    for first in range(start, stop, SCAN_CHUNK_SAMPLES):
        last = min(stop, first + SCAN_CHUNK_SAMPLES)
        data = read_samples(inst, picks, first, last)
        data = data[:, ~_gap_mask(gaps, first, last)]  # a gap's values are read as zero, not used
        finite &= np.isfinite(data).all(axis=1)
        with np.errstate(invalid="ignore"):
            low = np.fmin(low, np.nanmin(data, axis=1, initial=np.inf))
            high = np.fmax(high, np.nanmax(data, axis=1, initial=-np.inf))
    return finite, high - low


def select_channels(inst, config: PreprocessingConfig, span: tuple[int, int | None] = (0, None)) -> ChannelPlan:
    """Decide which channels of a recording are used, under which names and at which positions.

    Non-EEG channel types and non-scalp names (:func:`is_non_scalp`) are
    dropped with a warning unless ``config.channels`` names them; then
    ``config.exclude``, channels marked bad, and channels that are flat or not
    finite over ``span`` (samples of a raw recording) are dropped.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Evoked
        The recording (a raw one need not be loaded).
    config : PreprocessingConfig
        The channel choice.
    span : (int, int | None)
        Samples scanned for flat and non-finite channels.

    Returns
    -------
    plan : ChannelPlan
    """
    import mne

    from ..anatomy.montage import dense_channel_names

    known = {n.lower(): n for n in dense_channel_names()}
    eeg = [inst.ch_names[i] for i in mne.pick_types(inst.info, eeg=True, exclude=[])]
    other_types = [name for name in inst.ch_names if name not in set(eeg)]
    dropped: dict[str, list[str]] = {}
    if config.channels:
        chosen = _match_names(config.channels, list(inst.ch_names), known, "--channels")
        not_eeg = [name for name in chosen if name not in set(eeg)]
        if not_eeg:
            raise BrainForgeError(
                f"--channels: {', '.join(not_eeg)} are not EEG channels in the file; leave them out of --channels."
            )
        dropped["not chosen with --channels"] = [name for name in inst.ch_names if name not in set(chosen)]
    else:
        if not eeg:
            types = sorted(set(inst.get_channel_types()))
            if {"mag", "grad"} & set(types):
                raise BrainForgeError(
                    f"The recording holds MEG but no EEG channels (types: {', '.join(types)}); BrainForge localizes "
                    "EEG only: localize MEG with MNE-Python's mne.minimum_norm or mne.beamformer."
                )
            raise BrainForgeError(
                f"The recording has no EEG channels (its channel types are {', '.join(types)}); if they hold "
                "EEG, set their type to EEG (raw.set_channel_types) and save the file again."
            )
        non_scalp = [name for name in eeg if is_non_scalp(name)]
        chosen = [name for name in eeg if name not in set(non_scalp)]
        dropped["not scalp EEG"] = other_types + non_scalp
    if config.exclude:
        excluded = _match_names(config.exclude, list(inst.ch_names), known, "--exclude")
        dropped["excluded with --exclude"] = [name for name in chosen if name in set(excluded)]
        chosen = [name for name in chosen if name not in set(excluded)]
    if not chosen:
        if not config.channels and not config.exclude:
            raise BrainForgeError(
                f"Every EEG channel has a name of a non-scalp channel ({', '.join(non_scalp[:6])}"
                f"{' ...' if len(non_scalp) > 6 else ''}: EOG, ECG, EMG, reference or unnamed); choose the scalp "
                "channels with --channels, or rename them to 10-05 names."
            )
        raise BrainForgeError("No channels left to use; check --channels and --exclude.")
    bads = [name for name in inst.info["bads"] if name in set(chosen)]
    candidates = [name for name in chosen if name not in set(bads)]
    if not candidates:
        raise BrainForgeError(
            "Every EEG channel is marked bad in the file; unmark good ones, or choose channels with --channels."
        )
    finite, ptp = scan_channels(inst, candidates, *span)
    nonfinite = [name for name, ok in zip(candidates, finite, strict=True) if not ok]
    flat = [name for name, value, ok in zip(candidates, ptp, finite, strict=True) if ok and value < FLAT_PTP_V]
    dropped["marked bad"] = bads
    dropped["flat"] = flat
    dropped["with NaN or infinite values"] = nonfinite
    chosen = [name for name in candidates if name not in set(flat) | set(nonfinite)]
    if not chosen:
        raise BrainForgeError(
            f"Every EEG channel is flat or holds NaN/infinite values ({len(flat)} flat, {len(nonfinite)} not "
            "finite); check the recording and its units, and if only part of it holds NaN, annotate that part as bad "
            "(BAD_...: it is then read as a gap) or choose --tmin/--tmax clear of it by the filter's margin (about "
            "3.3 s with the 1-Hz high-pass)."
        )
    notes = amplitude_notes(np.median(ptp[np.isin(candidates, chosen)]))
    dropped = {reason: names for reason, names in dropped.items() if names}
    for reason, names in dropped.items():
        shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
        message = f"Dropped {len(names)} channel(s) {reason}: {shown}."
        logger.warning(message)
        notes.append(message)
    if config.positions is None:
        file_pos = file_positions_m(mne.pick_info(inst.info, [inst.ch_names.index(name) for name in chosen]))
        source = "the file"
    else:
        file_pos, position_notes = _positions_from_file(Path(config.positions), chosen, known)
        notes.extend(position_notes)
        source = Path(config.positions).name
    return _place_channels(chosen, file_pos, source, known, dropped, notes)


def amplitude_notes(median_ptp_v: float) -> list[str]:
    """Check the recording's units from its median channel peak-to-peak (V); return a note when it is odd.

    Above :data:`LARGE_EEG_PTP_V` (millivolts stored as volts give 0.01-1 V; a DC-coupled
    recording's drifts can too) and below :data:`MIN_EEG_PTP_V` a note asks to check the units.

    Raises
    ------
    BrainForgeError
        When the channels swing more than :data:`MAX_EEG_PTP_V`: the data are
        in microvolts but stored as volts.
    """
    if median_ptp_v > MAX_EEG_PTP_V:
        raise BrainForgeError(
            f"The EEG channels swing {median_ptp_v:.3g} V peak to peak (median), far more than EEG's microvolts: the "
            "data are probably in µV but stored as V. Rescale them to volts (for µV: "
            "raw.apply_function(lambda x: x * 1e-6)) or set the channels' units when converting the file."
        )
    if median_ptp_v > LARGE_EEG_PTP_V:
        message = (
            f"The EEG channels swing {median_ptp_v:.3g} V peak to peak (median), more than EEG usually does: if "
            "the file holds millivolts stored as volts, rescale them (raw.apply_function(lambda x: x * 1e-3)); "
            "a DC-coupled recording's drifts can swing this far too."
        )
    elif median_ptp_v < MIN_EEG_PTP_V:
        message = (
            f"The EEG channels swing only {median_ptp_v:.3g} V peak to peak (median), far less than EEG's "
            "microvolts: check the file's units (the outputs' amplitudes are in the file's scale)."
        )
    else:
        return []
    logger.warning(message)
    return [message]


def _renamed_duplicates(names: list[str]) -> dict[str, str]:
    """Return ``{label: "Cz-0, Cz-1"}`` for labels that MNE made unique by appending ``-0``, ``-1``, ..."""
    import re

    stems: dict[str, list[str]] = {}
    for name in names:
        match = re.fullmatch(r"(.+)-(\d+)", name)
        if match:
            stems.setdefault(match.group(1), []).append(name)
    # MNE numbers the copies from 0: channels of their own named Ch-1, Ch-2, ... are not copies.
    return {
        stem: ", ".join(renamed)
        for stem, renamed in stems.items()
        if len(renamed) > 1 and sorted(int(n.rsplit("-", 1)[1]) for n in renamed) == list(range(len(renamed)))
    }


def _place_channels(
    chosen: list[str], file_pos: np.ndarray, source: str, known: dict[str, str], dropped: dict, notes: list[str]
) -> ChannelPlan:
    """Name and position the chosen channels: individual positions, else standard 10-05 ones.

    ``file_pos`` holds the individual positions (m, head frame; NaN rows where absent) and ``source`` names
    where they came from (the recording or a ``--positions`` file), for the notes.
    """
    import mne

    standard = [standard_name(n, known) for n in chosen]
    unknown = [n for n, s, p in zip(chosen, standard, file_pos, strict=True) if s is None and not np.isfinite(p).all()]
    if unknown:
        twice = _renamed_duplicates(unknown)
        if twice:
            raise BrainForgeError(
                f"The file names {', '.join(twice)} more than once (MNE renamed them "
                f"{'; '.join(twice.values())}); keep one with --exclude, or fix the labels in the file."
            )
        raise _unknown_channels_error(unknown, known)
    montage = None
    names = list(chosen)
    has_file_positions = bool(np.isfinite(file_pos).all())
    if has_file_positions:
        reference = standard_positions_m([s for s in standard if s is not None]) if all(standard) else None
        distance_mm = np.linalg.norm(reference - file_pos, axis=1) * 1e3 if reference is not None else None
        if distance_mm is None or np.nanmax(distance_mm, initial=0.0) > STANDARD_POSITION_TOLERANCE_MM:
            montage = mne.channels.make_dig_montage(dict(zip(names, file_pos, strict=True)), coord_frame="head")
            notes.append(f"Electrode positions from {source}, projected onto the template head.")
    if montage is None:
        missing = [n for n, s in zip(chosen, standard, strict=True) if s is None]
        if missing:
            raise _unknown_channels_error(missing, known)
        names = list(standard)
        # Without a montage here, file positions (if any) were within the tolerance of the standard ones.
        standard_note = FILE_POSITIONS_STANDARD_NOTE.format(source=source)
        notes.append(standard_note if has_file_positions else STANDARD_POSITIONS_NOTE)
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise BrainForgeError(
            f"Two channels map to the same standard name ({', '.join(twice)}); drop one with --exclude."
        )
    if len(names) < MIN_CHANNELS:
        lost = sum(len(v) for k, v in dropped.items() if k != "not scalp EEG" and k != "not chosen with --channels")
        fix = (
            f"{lost} were dropped as marked bad, flat, non-finite or excluded: unmark, repair or keep some of them"
            if lost
            else "the recording has too few scalp EEG channels"
        )
        raise BrainForgeError(
            f"Only {len(names)} usable EEG channel(s); localization needs at least {MIN_CHANNELS}, and {fix}."
        )
    if len(names) <= FEW_CHANNELS:
        message = f"Only {len(names)} channels: expect lower localization accuracy than with 32 or more."
        logger.warning(message)
        notes.append(message)
    return ChannelPlan(chosen, names, montage, dropped, notes)


@dataclass(frozen=True)
class FilterPlan:
    """The band-pass and rate change applied to every block of a recording.

    Attributes
    ----------
    sfreq_in, sfreq_out : float
        Rate of the file and of the solver, Hz.
    l_freq, h_freq : float | None
        Band-pass edges applied, Hz (``h_freq`` lowered below the Nyquist
        frequency of the slower rate where needed).
    up, down : int
        Polyphase resampling factors (``sfreq_out / sfreq_in ~ up / down``).
    margin_in : int
        Input samples on each side of a block that its filtered and
        resampled values depend on.
    filter_taps : int
        Length of MNE's FIR band-pass at ``sfreq_in`` (0 without one).
    """

    sfreq_in: float
    sfreq_out: float
    l_freq: float | None
    h_freq: float | None
    up: int
    down: int
    margin_in: int
    filter_taps: int = 0

    @classmethod
    def make(cls, sfreq_in: float, sfreq_out: float, config: PreprocessingConfig) -> FilterPlan:
        """Plan the filter and resampling of a recording at ``sfreq_in`` for a solver at ``sfreq_out``."""
        import mne

        if sfreq_in < MIN_SFREQ_HZ:
            raise BrainForgeError(
                f"The sampling rate is {sfreq_in:g} Hz; localization needs at least {MIN_SFREQ_HZ:g} Hz."
            )
        h_freq = config.low_pass_hz
        nyquist = min(sfreq_in, sfreq_out) / 2.0
        if h_freq is not None and h_freq >= nyquist * 0.9:
            h_freq = nyquist * 0.9
        l_freq = config.high_pass_hz
        edge = nyquist * 0.9 if h_freq is None else h_freq
        if l_freq is not None and l_freq >= edge:
            raise BrainForgeError(
                f"--l-freq {l_freq:g} Hz is not below the low-pass edge {edge:g} Hz that the sampling rate "
                "allows; lower --l-freq."
            )
        ratio = Fraction(sfreq_out / sfreq_in).limit_denominator(2048)
        up, down = ratio.numerator, ratio.denominator
        taps = 0
        if l_freq is not None or h_freq is not None:
            taps = len(mne.filter.create_filter(None, sfreq_in, l_freq, h_freq))  # logs the design, once
        resample_taps = 0 if up == down == 1 else 20 * max(up, down) // up + 2
        return cls(float(sfreq_in), float(sfreq_out), l_freq, h_freq, up, down, taps + resample_taps + 8, taps)

    @property
    def resampling(self) -> bool:
        """Whether the rate changes."""
        return not self.up == self.down == 1

    @property
    def filter_length_s(self) -> float:
        """Length of the FIR band-pass, s (0 without one)."""
        return self.filter_taps / self.sfreq_in

    def n_out(self, n_in: int) -> int:
        """Output samples of ``n_in`` input samples."""
        return math.ceil(n_in * self.up / self.down)

    def input_span(self, start: int, stop: int, n_in: int) -> tuple[int, int]:
        """Input samples [first, last) that output samples [start, stop) depend on, filter margins included.

        ``first`` lies on the resampling grid, so that the block's output samples fall where
        those of the whole recording do.
        """
        up, down = self.up, self.down
        n_out = self.n_out(n_in)
        margin_out = math.ceil(self.margin_in * up / down)
        first = max(0, (start - margin_out) // up * up)
        last = min(n_out, -(-(stop + margin_out) // up) * up)
        return first // up * down, n_in if last >= n_out else last // up * down

    def apply(self, data: np.ndarray, breaks: Sequence[int] = ()) -> np.ndarray:
        """Average-reference, band-pass and resample a block (n_channels, n_times) of EEG, V.

        ``breaks`` are the block's samples where the data break off and resume (an acquisition
        skip, the joint of concatenated recordings): each stretch between them is band-passed on
        its own, as MNE's ``raw.filter`` does by ``skip_by_annotation``, so that the step at a
        joint (channel offsets against a zero-filled gap) does not ring through the filter.
        """
        import mne
        from scipy.signal import resample_poly

        data = np.asarray(data, float)
        data = data - data.mean(axis=0)
        if self.l_freq is not None or self.h_freq is not None:
            bounds = [0, *sorted(b for b in set(breaks) if 0 < b < data.shape[1]), data.shape[1]]
            pieces = []
            for first, last in itertools.pairwise(bounds):
                piece = data[:, first:last]
                if last - first < MIN_FILTERED_SAMPLES or not piece.any():  # a sliver, or a zero-filled gap
                    pieces.append(np.zeros_like(piece))
                    continue
                with warnings.catch_warnings():
                    if len(bounds) > 2:
                        # A stretch cut by the block's read window is short by design (its values there are
                        # discarded); one between two breaks that is short is noted once per recording
                        # (short_stretches_note) instead of warned about in every block.
                        warnings.filterwarnings("ignore", message="filter_length .* is longer than the signal")
                    # Other warnings pass; the filter's description is logged once, by FilterPlan.make.
                    pieces.append(
                        mne.filter.filter_data(piece, self.sfreq_in, self.l_freq, self.h_freq, verbose=quiet_level())
                    )
            data = np.concatenate(pieces, axis=1)
        if self.resampling:
            data = resample_poly(data, self.up, self.down, axis=1)
        return data - data.mean(axis=0)

    def as_dict(self) -> dict:
        """Return the filter actually applied (for summary.json)."""
        return {
            "reference": "average",
            "high_pass_hz": self.l_freq,
            "low_pass_hz": None if self.h_freq is None else round(self.h_freq, 3),
            "filter": "MNE FIR (firwin design, zero phase, Hamming window, default transition bands)"
            if self.l_freq is not None or self.h_freq is not None
            else "none",
            "filter_length_s": round(self.filter_length_s, 4),
            "sfreq_file_hz": self.sfreq_in,
            "sfreq_hz": self.sfreq_out,
            "resampling": f"polyphase (scipy resample_poly, up {self.up}, down {self.down})"
            if self.resampling
            else "none",
        }


class RecordingStream:
    """A raw recording prepared on demand: any span of output samples, equal to preparing it whole.

    Parameters
    ----------
    raw : mne.io.Raw
        The recording (need not be loaded).
    plan : ChannelPlan
        The channels used.
    filters : FilterPlan
        Reference, band-pass and resampling.

    Notes
    -----
    :meth:`block` reads ``filters.margin_in`` extra input samples on each
    side (where the recording has them) and starts reading on the resampling
    grid, so the prepared samples do not depend on how the recording is cut
    into blocks (beyond float rounding).
    """

    def __init__(self, raw, plan: ChannelPlan, filters: FilterPlan):
        self.raw = raw
        self.plan = plan
        self.filters = filters
        self.n_in = int(raw.n_times)
        self.n_out = filters.n_out(self.n_in)
        self.gaps_in = nan_gaps_in(raw, plan.picks)
        self.breaks_in = recording_breaks_in(raw, self.gaps_in)

    @property
    def breaks_s(self) -> list[float]:
        """Times (s from the first sample) where the data break off and resume: :func:`recording_breaks_in`."""
        return [b / self.filters.sfreq_in for b in self.breaks_in]

    def block(self, start: int, stop: int) -> np.ndarray:
        """Return the prepared EEG of output samples [start, stop), shape (n_channels, stop - start), V."""
        first_in, last_in = self.filters.input_span(start, stop, self.n_in)
        first = first_in // self.filters.down * self.filters.up  # the output sample of first_in
        data = read_samples(self.raw, self.plan.picks, first_in, last_in)
        data[:, _gap_mask(self.gaps_in, first_in, last_in)] = 0.0
        prepared = self.filters.apply(data, [b - first_in for b in self.breaks_in if first_in < b < last_in])
        return prepared[:, start - first : stop - first]

    def span(self, config: PreprocessingConfig) -> tuple[int, int]:
        """Output samples [start, stop) of the span that ``config.tmin``/``tmax`` choose."""
        duration = self.n_in / self.filters.sfreq_in
        return output_span(duration, self.n_out, self.filters.sfreq_out, config)


def output_span(duration_s: float, n_out: int, sfreq_out: float, config: PreprocessingConfig) -> tuple[int, int]:
    """Check ``tmin``/``tmax`` against a recording of ``duration_s`` and return the output samples they span."""
    tolerance = 1.0 / sfreq_out
    if config.tmin is not None and config.tmin < 0:  # epoched data may start before 0 s; a recording does not
        raise BrainForgeError(
            f"--tmin {config.tmin:g} s lies before the recording starts; times count from 0 s at its start."
        )
    for option, value in (("--tmin", config.tmin), ("--tmax", config.tmax)):
        if value is not None and not 0.0 <= value <= duration_s + tolerance:
            raise BrainForgeError(
                f"{option} {value:g} s lies outside the recording (0 to {duration_s:.3f} s); choose a time inside it."
            )
    start = 0 if config.tmin is None else round(config.tmin * sfreq_out)
    stop = n_out if config.tmax is None else min(n_out, round(config.tmax * sfreq_out))
    if stop - start < 2 and config.tmin is None and config.tmax is None:
        raise BrainForgeError(
            f"The recording ({duration_s * 1000:.3g} ms) gives {n_out} sample(s) at the solver's {sfreq_out:g} Hz; "
            "a recording needs at least two."
        )
    if stop - start < 2:
        raise BrainForgeError(
            f"The analysed span, {start / sfreq_out:g} to {stop / sfreq_out:g} s, holds fewer than two samples; "
            "widen it with --tmin/--tmax."
        )
    return start, stop


def short_span_note(n_samples: int, filters: FilterPlan) -> str | None:
    """Return a warning when the filtered data are shorter than the high-pass filter (which distorts them).

    ``n_samples`` counts samples at the file's rate.
    """
    length_s = filters.filter_length_s
    span_s = n_samples / filters.sfreq_in
    if filters.l_freq is None or span_s >= length_s:
        return None
    message = (
        f"The filtered data ({span_s:.2f} s) are shorter than the {length_s:.1f}-s high-pass filter at "
        f"{filters.l_freq:g} Hz, so the filter distorts it; give a longer span or --l-freq 0 (no high-pass)."
    )
    logger.warning(message)
    return message


#: Annotations where a recording's data break off and resume (lower case): MNE's acquisition skips
#: (EGI pauses, ...), EEGLAB's "boundary" events and the joints that ``mne.concatenate_raws`` marks.
BREAK_ANNOTATIONS = ("bad_acq_skip", "boundary", "edge boundary", "bad boundary")
#: Stretches between breaks shorter than this are not band-passed but zeroed, samples.
MIN_FILTERED_SAMPLES = 8


def _annotation_samples(raw, annotation) -> tuple[int, int]:
    """Return the input samples [first, stop) from an annotation's onset to its end (the first at or after each)."""
    onset_s = annotation["onset"] - raw.first_time
    first = math.ceil(onset_s * raw.info["sfreq"] - 1e-6)
    stop = math.ceil((onset_s + annotation["duration"]) * raw.info["sfreq"] - 1e-6)
    return first, stop


def nan_gaps_in(raw, picks, span: tuple[int, int | None] = (0, None)) -> list[tuple[int, int]]:
    """Return the gaps of a recording: input samples [first, stop) of NaN or infinite EEG in spans annotated bad.

    A dropout that a file stores as NaN, once annotated bad (``BAD_...``, for all
    channels), is a gap: within each bad span (overlapping ones merged; its end
    sample included, for annotations that end on their last sample) it reaches from
    the first to the last sample where one of ``picks`` is not finite. Its values are
    read as zero (:class:`RecordingStream`), its edges are breaks
    (:func:`recording_breaks_in`), so the stretches either side are filtered on their
    own, and :func:`scan_channels` drops no channel for it. Non-finite values outside
    bad spans still drop their channel; so do those in an annotation made for some
    channels only (``mne.preprocessing.annotate_nan``'s), which mark those channels bad.

    Parameters
    ----------
    raw : mne.io.Raw
        The recording (need not be loaded).
    picks : list of str
        The channels used.
    span : (int, int | None)
        Input samples [first, stop) to look in (default: all).
    """
    first_in, stop_in = span[0], raw.n_times if span[1] is None else span[1]
    spans = []
    for annotation in raw.annotations:
        if not annotation["description"].lower().startswith("bad") or len(annotation.get("ch_names") or ()):
            continue
        first, stop = _annotation_samples(raw, annotation)
        first, stop = max(first, first_in, 0), min(stop + 1, stop_in, raw.n_times)
        if stop > first:
            spans.append((first, stop))
    gaps = []
    for first, stop in _merged(spans):
        bad_first = bad_last = None
        for start in range(first, stop, SCAN_CHUNK_SAMPLES):
            last = min(stop, start + SCAN_CHUNK_SAMPLES)
            bad = np.flatnonzero(~np.isfinite(read_samples(raw, picks, start, last)).all(axis=0))
            if len(bad):
                bad_first = start + int(bad[0]) if bad_first is None else bad_first
                bad_last = start + int(bad[-1])
        if bad_first is not None:
            gaps.append((bad_first, bad_last + 1))
    return gaps


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Return ``spans`` ([first, stop) pairs) sorted, with overlapping or touching ones merged."""
    merged: list[tuple[int, int]] = []
    for first, stop in sorted(spans):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((first, stop))
    return merged


def _gap_mask(gaps: list[tuple[int, int]], start: int, stop: int) -> np.ndarray:
    """Return the mask of input samples [start, stop) that lie in ``gaps`` (:func:`nan_gaps_in`)."""
    mask = np.zeros(stop - start, bool)
    firsts = [first for first, _ in gaps]  # sorted and disjoint
    begin = max(bisect.bisect_right(firsts, start) - 1, 0)
    for first, last in gaps[begin : bisect.bisect_left(firsts, stop)]:
        mask[max(first, start) - start : max(min(last, stop) - start, 0)] = True
    return mask


def recording_breaks_in(raw, gaps: Sequence[tuple[int, int]] = ()) -> list[int]:
    """Return the input samples (from the first) where a recording's data break off or resume.

    An acquisition skip (``BAD_ACQ_SKIP``) gives two, the first sample of the gap and
    the first after it; a joint (``boundary``, ``EDGE boundary``, ``BAD boundary``),
    one, the first sample after it (EEGLAB's joints carry the removed samples as their
    duration, which is no second break). A time between two samples (EGI's and
    EEGLAB's joints sit half a sample before a sample) goes to the sample after it.
    Each of ``gaps``, NaN in a bad span (:func:`nan_gaps_in`, which depend on the
    channels used), gives two, as an acquisition skip does. :meth:`FilterPlan.apply` filters between the
    breaks separately, as MNE's ``raw.filter`` does between the spans of
    ``skip_by_annotation``.
    """
    n_times = raw.n_times
    breaks = {edge for gap in gaps for edge in gap if 0 < edge < n_times}
    for annotation in raw.annotations:
        description = annotation["description"].lower()
        if description not in BREAK_ANNOTATIONS:
            continue
        first, stop = _annotation_samples(raw, annotation)  # the first samples at or after onset and end
        breaks.update(sample for sample in ([first, stop] if description == "bad_acq_skip" else [first]))
    return sorted(sample for sample in breaks if 0 < sample < n_times)


def _stretches_s(breaks_s, recording_s: float) -> list[tuple[float, float]]:
    """Return the stretches (start, end; s) that ``breaks_s`` cut a recording of ``recording_s`` into."""
    return list(itertools.pairwise([0.0, *sorted(breaks_s), recording_s]))


def break_edge_spans_s(
    l_freq: float | None, breaks_s, first_s: float, last_s: float, edge_s: float = 0.0, recording_s: float = np.inf
) -> list[tuple[float, float]]:
    """Return the spans (s) either side of each break where the stretches' own filter edges inflate activity.

    Each stretch between breaks (and the recording's ends, at 0 and ``recording_s``) is
    filtered on its own (:meth:`FilterPlan.apply`), so it has the edges of a recording
    (:func:`filter_edge_spans_s`), shortened as a short recording's are: :func:`filter_edge_s`,
    or ``edge_s`` (a network's window) when longer; a stretch shorter than four of those keeps
    the 1-Hz edge or the window, and one shorter than four of those, none. Only with a
    high-pass, and only where the analysed span ``first_s``-``last_s`` reaches.
    """
    if not l_freq or not len(breaks_s):
        return []
    spans = []
    for start_s, end_s in _stretches_s(breaks_s, recording_s):
        edges = filter_edge_spans_s(l_freq, end_s - start_s, 0.0, end_s - start_s, edge_s)
        if not edges:
            continue
        length = edges[0][1] - edges[0][0]
        if start_s > 0.0:  # the stretch's first edge lies by a break, not by the recording's start
            spans.append((start_s, start_s + length))
        if end_s < recording_s:
            spans.append((end_s - length, end_s))
    return sorted(span for span in spans if span[0] <= last_s and span[1] > first_s)


def short_stretches_note(
    breaks_s, recording_s: float, first_s: float, last_s: float, filter_length_s: float
) -> str | None:
    """Return a note on the stretches between breaks, within the analysed span, shorter than the band-pass filter."""
    if not len(breaks_s) or not filter_length_s:
        return None
    short = [
        (start, end)
        for start, end in _stretches_s(breaks_s, recording_s)
        if end - start < filter_length_s and start <= last_s and end > first_s
    ]
    if not short:
        return None
    return (
        f"{len(short)} stretch(es) between breaks in the analysed span are shorter than the "
        f"{filter_length_s:.3g}-s band-pass filter, which distorts them; raise --l-freq or leave them out."
    )


def bad_spans_s(raw) -> list[tuple[float, float]]:
    """Spans (s from the recording's first sample) of the annotations whose description starts with "bad".

    MNE's convention (``reject_by_annotation``) for data to leave out, any case.
    """
    return [
        (float(a["onset"] - raw.first_time), float(a["onset"] - raw.first_time + a["duration"]))
        for a in raw.annotations
        if a["description"].lower().startswith("bad")
    ]


def bad_spans_s_within(raw, first_s: float, last_s: float) -> list[tuple[float, float]]:
    """Return the bad spans (:func:`bad_spans_s`) that overlap ``first_s``-``last_s`` (s from the first sample)."""
    return [(start, end) for start, end in bad_spans_s(raw) if start <= last_s and end >= first_s]


def in_spans(times_s: np.ndarray, spans_s, tolerance_s: float = 0.0) -> np.ndarray:
    """Return the mask of the times (s) inside any of ``spans_s``.

    A span holds its start, not its end, each moved ``tolerance_s`` earlier: with half a sample,
    a span holds the samples MNE's ``reject_by_annotation`` drops (onset and end rounded to
    the nearest sample). A zero-length span holds its instant.
    """
    times_s = np.asarray(times_s, float)
    mask = np.zeros(times_s.shape, bool)
    for start, end in spans_s:
        if end <= start:
            mask |= np.abs(times_s - start) <= max(tolerance_s, 1e-12)
        else:
            mask |= (times_s >= start - tolerance_s) & (times_s < end - tolerance_s)
    return mask


#: How far the high-pass filter's edge transient reaches into a recording at 1 Hz and above, s. After
#: MNE's 1-Hz high-pass (which pads the ends by odd reflection), white noise has 1.4-2 times its middle
#: RMS over the first and last 0.3 s, 1.1 times to 0.5 s, then the middle's (20 recordings of 10 s;
#: tests/test_recordings.py checks the ends and 0.5-1 s). Lower edges reach further:
#: :func:`filter_edge_s`.
FILTER_EDGE_S = 0.5
#: The lowest high-pass edge ``localize`` takes, Hz (0.1 Hz already needs a 33-s filter).
MIN_L_FREQ_HZ = 0.1


def filter_edge_s(l_freq: float) -> float:
    """Return how far the edge transient of a high-pass at ``l_freq`` Hz reaches into a recording, s.

    MNE's automatic transition band below 2 Hz is as wide as the edge itself, and the
    transient lasts inversely to it: :data:`FILTER_EDGE_S` at 1 Hz and above, ``0.5 / l_freq``
    below (white noise stays above 1.1 times its middle RMS for 0.4, 0.8, 2.0 and 4.7 s at 1,
    0.5, 0.2 and 0.1 Hz; tests/test_recordings.py checks 0.2 Hz).
    """
    return FILTER_EDGE_S * max(1.0, 1.0 / l_freq)


def filter_edge_spans_s(
    l_freq: float | None, recording_s: float, first_s: float, last_s: float, edge_s: float = 0.0
) -> list[tuple[float, float]]:
    """Return the recording's first and last spans (s) where the high-pass edge transient inflates activity.

    Only those that the analysed span ``first_s``-``last_s`` reaches into (a crop away from the
    ends has none: the filter reads real data beyond it), and only with a high-pass. Each span
    is :func:`filter_edge_s` long, or ``edge_s`` (a network's window) when longer: a window that
    holds the transient is scaled back by its larger maximum, all of it. A recording shorter
    than four such spans gets the 1-Hz edge (:data:`FILTER_EDGE_S`) or the window instead, and
    one shorter than four of those keeps every sample.
    """
    if not l_freq:
        return []
    window_s, edge_s = edge_s, max(edge_s, filter_edge_s(l_freq))
    if recording_s < 4 * edge_s:  # too short for a low high-pass's whole transient: at least the 1-Hz edge
        edge_s = max(window_s, FILTER_EDGE_S)
    if recording_s < 4 * edge_s:
        return []
    spans = [(0.0, edge_s), (recording_s - edge_s, recording_s)]
    return [(start, end) for start, end in spans if start <= last_s and end > first_s]


def edge_spans_note(spans_s, l_freq: float | None) -> str | None:
    """Return the report's note on the recording's edges left out of the peak search, or None."""
    if not spans_s:
        return None
    which = " and ".join("first" if start <= 0 else "last" for start, _ in spans_s)
    length = spans_s[0][1] - spans_s[0][0]
    return (
        f"The recording's {which} {length:g} s were left out of the peak search: the {l_freq:g}-Hz high-pass "
        "filter's edge transient inflates activity there (--l-freq 0 searches them)."
    )


def bad_spans_note(spans_s, analysed_s: tuple[float, float] = (-np.inf, np.inf)) -> str | None:
    """Return the report's note on the spans left out of the peak search, or None without any.

    The seconds it gives are those of the spans' union within ``analysed_s`` (first, last; s).
    """
    if not spans_s:
        return None
    total, reached = 0.0, analysed_s[0]
    for start, end in sorted(spans_s):
        start, end = max(start, reached), min(end, analysed_s[1])
        if end > start:
            total, reached = total + end - start, end
    return (
        f"{len(spans_s)} span(s) annotated as bad ({total:.1f} s in all; annotations starting with 'BAD', "
        "MNE's convention) were left out of the peak search; their time courses are still written."
    )


def event_windows(
    raw, config: PreprocessingConfig, sfreq_out: float, n_out: int, breaks_in: Sequence[int] | None = None
) -> tuple[np.ndarray, int, dict]:
    """Output-sample starts of the epochs around the annotations that ``config.events`` names.

    ``breaks_in`` are the recording's breaks (:attr:`RecordingStream.breaks_in`, which
    knows the gaps of the channels used); by default those its annotations mark.

    Returns
    -------
    starts : array of int
        First output sample of each epoch that lies inside the recording.
    length : int
        Samples per epoch.
    used : dict
        The events, epochs and window used (for summary.json).
    """
    wanted = list(dict.fromkeys(name.strip() for name in config.events))
    present = sorted(set(raw.annotations.description))
    missing = [name for name in wanted if name not in set(present)]
    if missing:
        raise BrainForgeError(
            f"No annotation named {', '.join(missing)} in the recording (present: {', '.join(present) or 'none'}); "
            "check the spelling in --events."
        )
    onsets_s = np.array([a["onset"] for a in raw.annotations if a["description"] in set(wanted)]) - raw.first_time
    tmin = -0.2 if config.tmin is None else config.tmin
    tmax = 0.3 if config.tmax is None else config.tmax
    if tmax <= tmin:
        raise BrainForgeError(
            f"The epoch window around each event, {tmin:g} to {tmax:g} s (--tmin defaults to -0.2 s and --tmax to "
            "0.3 s with --events), is empty; give a --tmax later than --tmin."
        )
    length = round((tmax - tmin) * sfreq_out) + 1
    if length < 2:
        raise BrainForgeError(
            f"The epoch window around each event, {tmin:g} to {tmax:g} s, holds fewer than two samples at "
            f"{sfreq_out:g} Hz; widen it with --tmin/--tmax."
        )
    starts = np.round((onsets_s + tmin) * sfreq_out).astype(int)
    inside = (starts >= 0) & (starts + length <= n_out)
    if not inside.any():
        raise BrainForgeError(
            "Every event lies too close to the recording's edges for the epoch window; narrow --tmin/--tmax."
        )
    spans = bad_spans_s(raw)
    clean = np.array(
        [not any(start < onset + tmax and end > onset + tmin for start, end in spans) for onset in onsets_s], bool
    ).reshape(len(onsets_s))
    # An epoch that reaches a break, or a stretch's filter edge by it, holds the edge transient.
    reach_s = filter_edge_s(config.high_pass_hz) if config.high_pass_hz else 0.0
    breaks_s = np.array(recording_breaks_in(raw) if breaks_in is None else breaks_in) / raw.info["sfreq"]
    by_break = np.array(
        [bool(np.any((breaks_s > onset + tmin - reach_s) & (breaks_s < onset + tmax + reach_s))) for onset in onsets_s],
        bool,
    ).reshape(len(onsets_s))
    clean &= ~by_break
    if not (inside & clean).any():
        raise BrainForgeError(
            "Every epoch around the events overlaps a span annotated as bad (BAD_...) or a break in the recording "
            "(with the filter's edge by it); narrow --tmin/--tmax, or rename the annotations if those spans are usable."
        )
    used = {
        "events": wanted,
        "n_events": len(starts),
        "n_epochs": int((inside & clean).sum()),
        "epochs_outside_recording": int((~inside).sum()),
        "epochs_in_bad_spans": int((inside & ~clean & ~by_break).sum()),
        "epochs_at_breaks": int((inside & by_break).sum()),
        "epoch_window_s": [tmin, tmax],
    }
    return starts[inside & clean], length, used


def prepare_recording(inst, sfreq: float, config: PreprocessingConfig | None = None) -> PreparedEEG:
    """Pick, check, reference, filter and resample the EEG of an MNE object, in memory.

    A raw recording is filtered as a continuous recording: over
    ``config.tmin``-``config.tmax`` (reading past the span where the
    recording continues), or around each event of ``config.events``, whose
    epochs are then averaged. Epochs (averaged first) and evoked responses
    are prepared whole.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        The recording.
    sfreq : float
        The solver's sampling rate, Hz.
    config : PreprocessingConfig | None
        Filter, time span, events and channels.

    Returns
    -------
    prepared : PreparedEEG
    """
    import mne

    config = config or PreprocessingConfig()
    if isinstance(inst, mne.io.BaseRaw):
        filters = FilterPlan.make(inst.info["sfreq"], sfreq, config)
        n_out = filters.n_out(inst.n_times)
        if config.events:
            event_windows(inst, config, sfreq, n_out)  # the events and window checked before the channel scan
            plan = select_channels(inst, config)
            stream = RecordingStream(inst, plan, filters)
            starts, length, used = event_windows(inst, config, sfreq, n_out, stream.breaks_in)
            data = np.mean([stream.block(first, first + length) for first in starts], axis=0)
            source = f"the average of {len(starts)} epoch(s) around {', '.join(used['events'])}"
            return prepared_eeg(data, used["epoch_window_s"][0], plan, filters, config, source, used, inst.n_times)
        start, stop = output_span(inst.n_times / filters.sfreq_in, n_out, sfreq, config)
        # Scanned for NaN and flat channels: every input sample the span's filtered values depend on.
        plan = select_channels(inst, config, filters.input_span(start, stop, inst.n_times))
        stream = RecordingStream(inst, plan, filters)
        return prepared_eeg(
            stream.block(start, stop), start / sfreq, plan, filters, config, "a continuous recording", None,
            inst.n_times, bad_spans_s_within(inst, start / sfreq, (stop - 1) / sfreq), n_out / sfreq,
            breaks_s=stream.breaks_s,
        )  # fmt: skip
    if isinstance(inst, mne.BaseEpochs):
        evoked, source = inst.average(picks="all"), "the average of the epochs"
    elif isinstance(inst, mne.Evoked):
        evoked, source = inst.copy(), f"the evoked response {inst.comment!r}" if inst.comment else "an evoked response"
    else:
        raise BrainForgeError(f"Expected an mne Raw, Epochs or Evoked object, got {type(inst).__name__}.")
    if config.events:
        raise BrainForgeError("--events needs a continuous recording; these data are already epoched.")
    plan = select_channels(evoked, config)
    filters = FilterPlan.make(evoked.info["sfreq"], sfreq, config)
    data = filters.apply(evoked.get_data(picks=plan.picks))
    times = evoked.times[0] + np.arange(data.shape[1]) / sfreq
    half_sample = 0.5 / sfreq  # files store times as float32: -0.2 s reads back as -0.2000000030
    low = -np.inf if config.tmin is None else config.tmin - half_sample
    high = np.inf if config.tmax is None else config.tmax + half_sample
    keep = (times >= low) & (times <= high)
    if keep.sum() < 2:
        raise BrainForgeError(
            f"--tmin/--tmax lie outside the data ({times[0]:.3f} to {times[-1]:.3f} s); choose times inside it."
        )
    n_filtered = len(evoked.times)
    return prepared_eeg(data[:, keep], float(times[keep][0]), plan, filters, config, source, None, n_filtered)


def prepared_eeg(
    data,
    tmin,
    plan,
    filters,
    config,
    source,
    used,
    filtered_samples: int,
    bad_spans: list | None = None,
    recording_s: float | None = None,
    analysed_s: tuple[float, float] | None = None,
    breaks_s: list[float] | None = None,
) -> PreparedEEG:
    """Wrap prepared data with its channels, notes, settings, bad spans and (continuous) length and breaks.

    ``analysed_s`` (first, last; s) is the span the peak search covers, when ``data`` holds only a
    view of it (default: the times of ``data``).
    """
    notes = list(plan.notes)
    bad_spans = list(bad_spans or [])
    if analysed_s is None:
        analysed_s = (tmin, tmin + (np.shape(data)[1] - 1) / filters.sfreq_out)
    bad_note = bad_spans_note(bad_spans, analysed_s)
    if bad_note:
        notes.append(bad_note)
    if filters.resampling:
        notes.append(f"Resampled from {filters.sfreq_in:g} Hz to {filters.sfreq_out:g} Hz.")
    requested = config.low_pass_hz
    if filters.h_freq is not None and (requested is None or filters.h_freq < requested - 1e-9):
        asked = "no low-pass" if requested is None else f"the requested {requested:g} Hz"
        notes.append(
            f"Low-pass at {filters.h_freq:g} Hz instead of {asked}: 0.9 x the Nyquist frequency of "
            f"{min(filters.sfreq_in, filters.sfreq_out):g} Hz sampling."
        )
    short = short_span_note(filtered_samples, filters)
    if short:
        notes.append(short)
    if used and used.get("epochs_in_bad_spans"):
        notes.append(
            f"{used['epochs_in_bad_spans']} epoch(s) overlapping spans annotated as bad (BAD_...) were left out "
            "of the average."
        )
    if used and used.get("epochs_at_breaks"):
        notes.append(
            f"{used['epochs_at_breaks']} epoch(s) reaching a break in the recording (BAD_ACQ_SKIP, boundary), or "
            "the filter's edge by it, were left out of the average."
        )
    preprocessing = {"requested": config.as_dict(), "applied": filters.as_dict(), "events_used": used}
    preprocessing["dropped_channels"] = plan.dropped
    return PreparedEEG(
        data=data, sfreq=float(filters.sfreq_out), tmin=float(tmin), ch_names=list(plan.ch_names),
        montage=plan.montage, dropped=plan.dropped_names, notes=notes, source=source, preprocessing=preprocessing,
        bad_spans_s=bad_spans, recording_s=recording_s, breaks_s=list(breaks_s or []),
    )  # fmt: skip
