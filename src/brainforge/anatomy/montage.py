"""Electrode montages: MNE built-ins, DigMontages, channel lists and 10-10 subsets.

Positions end up in fsaverage surface RAS (mm), projected radially onto the
template scalp, which is where MNE's BEM forward model would put them too.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._errors import BrainForgeError

#: The montage that channel-name lists and the 10-10 subsets take positions from.
DENSE_MONTAGE = "fsaverage_1005"

#: Fewest channels a head model accepts.
MIN_CHANNELS = 8

# The 75 10-10 electrodes of the published robustness study (DeepSIF's
# ``eloc75``), and subsets of it with 64, 32, 21 and 16 channels. The 64-,
# 32- and 16-channel sets are the BioSemi layouts, the 21-channel set the
# 10-20 system with Fpz and Oz.
_TEN_TEN_75 = (
    "Fp1 F7 T7 T9 P7 O1 F3 C3 P3 Fpz Fz Cz Pz Fp2 F8 T8 T10 P8 O2 F4 C4 P4 Nz Iz F9 F10 TP11 TP12 P9 P10 "
    "Oz FT9 TP9 FT7 TP7 AF7 F5 FC5 C5 CP5 P5 PO7 AF3 FC3 CP3 PO3 F1 FC1 C1 CP1 P1 AFz FCz CPz POz F2 FC2 "
    "C2 CP2 P2 AF4 FC4 CP4 PO4 AF8 F6 FC6 C6 CP6 P6 PO8 FT8 TP8 FT10 TP10"
).split()
_TEN_TEN_64 = [
    name
    for name in _TEN_TEN_75
    if name not in {"T9", "T10", "Nz", "F9", "F10", "TP11", "TP12", "FT9", "TP9", "FT10", "TP10"}
]
_TEN_TEN_32 = (
    "Fp1 AF3 F7 F3 FC1 FC5 T7 C3 CP1 CP5 P7 P3 Pz PO3 O1 Oz O2 PO4 P4 P8 CP6 CP2 C4 T8 FC6 FC2 F4 F8 AF4 Fp2 Fz Cz"
).split()
_TEN_TWENTY_21 = "Fp1 Fpz Fp2 F7 F3 Fz F4 F8 T7 C3 Cz C4 T8 P7 P3 Pz P4 P8 O1 Oz O2".split()
_TEN_TEN_16 = "Fp1 Fp2 F4 Fz F3 T7 C3 Cz C4 T8 P4 Pz P3 O1 Oz O2".split()

#: Named channel subsets of the 75-electrode 10-10 set.
CHANNEL_SUBSETS: dict[str, list[str]] = {
    "1010-75": _TEN_TEN_75,
    "1010-64": _TEN_TEN_64,
    "1010-32": _TEN_TEN_32,
    "1010-21": _TEN_TWENTY_21,
    "1010-16": _TEN_TEN_16,
}

# Electrodes of the 75 set that no MNE montage lists, built from others:
# Nz is the nasion; TP11/TP12 continue the TP7 -> TP9 (TP8 -> TP10) arc one
# more equal step downwards.
_EXTRAPOLATED = {"TP11": ("TP7", "TP9"), "TP12": ("TP8", "TP10")}


@dataclass(frozen=True)
class Electrodes:
    """Named electrode positions.

    Attributes
    ----------
    names : list of str
        Channel names.
    pos : array, shape (n_channels, 3)
        Positions in fsaverage surface RAS (MRI) coordinates, mm.
    """

    names: list[str]
    pos: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def pick(self, names: Sequence[str]) -> Electrodes:
        """Return the electrodes ``names``, in that order."""
        _check_known(names, self.names, "the montage")
        index = [self.names.index(n) for n in names]
        return Electrodes(list(names), self.pos[index])


def available_montages() -> list[str]:
    """Names accepted by :func:`get_electrodes`: MNE's built-ins and our subsets."""
    import mne

    return sorted(mne.channels.get_builtin_montages()) + list(CHANNEL_SUBSETS)


def _check_known(names: Sequence[str], known: Sequence[str], where: str) -> None:
    known_set = set(known)
    missing = [n for n in names if n not in known_set]
    if missing:
        shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise BrainForgeError(
            f"{len(missing)} channel(s) not in {where}: {shown}. Check the spelling or pick another montage."
        )
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise BrainForgeError(f"Channel names repeat: {', '.join(duplicates)}.")


def _montage_positions_mri_mm(montage) -> Electrodes:
    """Positions of a DigMontage's EEG channels in fsaverage MRI coordinates (mm).

    Uses MNE's own path: :meth:`mne.Info.set_montage` (fiducial-based head
    frame) followed by the fsaverage head -> MRI transform.
    """
    import mne

    from .bem import template_trans_path

    names = list(montage.ch_names)
    if not names:
        raise BrainForgeError("The montage has no channels.")
    info = mne.create_info(names, 1000.0, "eeg")
    info.set_montage(montage, on_missing="raise")
    head_m = np.array([ch["loc"][:3] for ch in info["chs"]])
    trans = mne.read_trans(template_trans_path())
    return Electrodes(names, mne.transforms.apply_trans(trans, head_m) * 1e3)


def dense_channel_names() -> list[str]:
    """Return every channel name the template knows (the dense 10-05 montage plus Nz, TP11 and TP12)."""
    return list(_dense_electrodes().names)


def _dense_electrodes() -> Electrodes:
    """Return the dense fsaverage 10-05 montage plus Nz, TP11 and TP12."""
    import mne

    montage = mne.channels.make_standard_montage(DENSE_MONTAGE)
    dense = _montage_positions_mri_mm(montage)
    names, pos = list(dense.names), [p for p in dense.pos]
    fids = _montage_positions_mri_mm_fiducials(montage)
    names.append("Nz")
    pos.append(fids["nasion"])
    centre = _head_centre(dense.pos)
    for name, (upper, lower) in _EXTRAPOLATED.items():
        a, b = dense.pos[dense.names.index(upper)] - centre, dense.pos[dense.names.index(lower)] - centre
        names.append(name)
        pos.append(centre + _slerp(a, b, 2.0))
    return Electrodes(names, np.array(pos))


def _montage_positions_mri_mm_fiducials(montage) -> dict[str, np.ndarray]:
    import mne

    from .bem import template_trans_path

    info = mne.create_info(["Cz"], 1000.0, "eeg")
    info.set_montage(montage, on_missing="ignore")
    trans = mne.read_trans(template_trans_path())
    out = {}
    for dig in info["dig"]:
        if dig["kind"] == mne.io.constants.FIFF.FIFFV_POINT_CARDINAL:
            name = {1: "lpa", 2: "nasion", 3: "rpa"}[int(dig["ident"])]
            out[name] = mne.transforms.apply_trans(trans, dig["r"]) * 1e3
    return out


def _head_centre(pos: np.ndarray) -> np.ndarray:
    from .bem import fit_sphere

    return fit_sphere(pos)[0]


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation (t in [0, 1]) or extrapolation between vectors."""
    ra, rb = np.linalg.norm(a), np.linalg.norm(b)
    ua, ub = a / ra, b / rb
    omega = np.arccos(np.clip(ua @ ub, -1.0, 1.0))
    direction = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
    return direction * (ra + t * (rb - ra))


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, available_montages(), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def get_electrodes(montage="1010-64", channels: Sequence[str] | None = None) -> Electrodes:
    """Resolve a montage description to named positions on the template head.

    Parameters
    ----------
    montage : str | mne.channels.DigMontage | list of str
        An MNE built-in montage name (``"biosemi64"``, ``"GSN-HydroCel-129"``,
        ...), one of the 10-10 subsets (``"1010-75"``, ``"1010-64"``,
        ``"1010-32"``, ``"1010-21"``, ``"1010-16"``), a DigMontage (e.g. from
        a recording), or a list of 10-05 channel names taken from the dense
        ``fsaverage_1005`` montage.
    channels : list of str | None
        Keep only these channels, in this order.

    Returns
    -------
    electrodes : Electrodes
        Names and positions in fsaverage MRI coordinates, mm (not yet
        projected onto the scalp).
    """
    import mne

    if isinstance(montage, str):
        if montage in CHANNEL_SUBSETS:
            electrodes = _dense_electrodes().pick(CHANNEL_SUBSETS[montage])
        elif montage in mne.channels.get_builtin_montages():
            electrodes = _montage_positions_mri_mm(mne.channels.make_standard_montage(montage))
        else:
            raise BrainForgeError(f"Unknown montage {montage!r}.{_suggest(montage)} See `brainforge head montages`.")
    elif isinstance(montage, mne.channels.DigMontage):
        electrodes = _montage_positions_mri_mm(montage)
    elif isinstance(montage, Sequence) and all(isinstance(n, str) for n in montage):
        electrodes = _dense_electrodes().pick(list(montage))
    else:
        raise BrainForgeError(
            f"montage must be a montage name, a DigMontage or a list of channel names, got {type(montage).__name__}."
        )
    if channels is not None:
        electrodes = electrodes.pick(list(channels))
    if len(electrodes) < MIN_CHANNELS:
        raise BrainForgeError(
            f"Only {len(electrodes)} channel(s); at least {MIN_CHANNELS} are needed for source imaging."
        )
    if not np.isfinite(electrodes.pos).all():
        raise BrainForgeError(
            "Some electrode positions are not finite (NaN); give a montage with positions for every channel."
        )
    return electrodes


def project_to_scalp(
    pos_mm: np.ndarray, centre_mm: np.ndarray, scalp_pos: np.ndarray, scalp_tris: np.ndarray
) -> np.ndarray:
    """Move points radially (from ``centre_mm``) onto the outermost scalp hit."""
    from ._geometry import ray_mesh_distance

    radial = pos_mm - centre_mm
    directions = radial / np.linalg.norm(radial, axis=1, keepdims=True)
    distance = ray_mesh_distance(centre_mm, directions, scalp_pos, scalp_tris)
    if np.isnan(distance).any():
        raise BrainForgeError(
            "Some electrodes point away from the scalp surface; check the montage's coordinate frame."
        )
    return centre_mm + directions * distance[:, None]


def jitter_electrodes(pos_mm: np.ndarray, centre_mm: np.ndarray, jitter_mm: float, seed: int) -> np.ndarray:
    """Displace every electrode by ``jitter_mm`` along a random tangential direction.

    Parameters
    ----------
    pos_mm : array, shape (n_channels, 3)
        Electrode positions, mm.
    centre_mm : array, shape (3,)
        Head centre; "tangential" is perpendicular to the line from it.
    jitter_mm : float
        Displacement of each electrode, mm.
    seed : int
        Seed of the random directions.

    Returns
    -------
    pos : array, shape (n_channels, 3)
        Displaced positions (re-project them onto the scalp afterwards).
    """
    rng = np.random.default_rng(seed)
    radial = pos_mm - centre_mm
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    step = rng.standard_normal(pos_mm.shape)
    step -= np.einsum("ij,ij->i", step, radial)[:, None] * radial
    step /= np.linalg.norm(step, axis=1, keepdims=True)
    return pos_mm + jitter_mm * step
