"""An ``mne.Forward`` that carries exactly a head model's leadfield."""

from __future__ import annotations

import numpy as np

from .._errors import BrainForgeError
from .._logging import verbose


def make_info(head, sfreq: float = 500.0):
    """``mne.Info`` of a head model's EEG channels, positions in MNE's head frame (= template MRI frame), m."""
    import mne

    montage = mne.channels.make_dig_montage(
        dict(zip(head.ch_names, np.asarray(head.ch_pos_mm) * 1e-3, strict=True)), coord_frame="head"
    )
    info = mne.create_info(list(head.ch_names), sfreq, "eeg")
    info.set_montage(montage)
    return info


#: Radius of the placeholder sphere conductor, m: large enough to hold every source of any head model.
PLACEHOLDER_SPHERE_RADIUS_M = 0.5


@verbose
def make_forward(head, sfreq: float = 500.0, *, verbose: bool | str | int | None = None):
    """Build a fixed-orientation ``mne.Forward`` whose gain is exactly the head model's leadfield.

    MNE's public ``make_forward_solution`` builds the object (source space,
    channel info, coordinate frames) on a placeholder sphere conductor that
    holds every source; its gain is then set to the head model's leadfield,
    given as a free-orientation gain whose three components are the
    leadfield times each dipole's orientation. In surface orientation its
    normal component is the leadfield and the two tangential ones are zero,
    so fixed-orientation inverses see exactly the head model. Head models
    without a dipole leadfield (DeepSIF's anatomy) use one dipole per region
    at the region centre.

    Parameters
    ----------
    head : HeadModel
        Head model.
    sfreq : float
        Sampling rate stored in the info, Hz.
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    forward : mne.Forward
        Surface-oriented, free orientation (use ``fixed=True`` inverses).
    """
    import mne

    if head.leadfield is not None:
        positions, normals, gain = head.source_pos_mm, head.source_nn, head.leadfield
    else:
        positions, gain = head.region_centres_mm, head.region_leadfield
        normals = np.tile([0.0, 0.0, 1.0], (head.n_regions, 1))
    if not np.isfinite(gain).all():
        raise BrainForgeError("The head model's leadfield has NaN or infinite values; rebuild it.")
    free = (gain[:, :, None] * normals[None, :, :]).reshape(len(gain), -1)  # (C, 3S), head frame
    info = make_info(head, sfreq)
    # Silenced: a placeholder computation (source space, sphere, forward) whose gain is discarded
    # below; its messages (sphere radius, sources computed) would describe a model the user never gets.
    src = mne.setup_volume_source_space(pos=dict(rr=positions * 1e-3, nn=normals), verbose="error")
    identity = mne.transforms.Transform("head", "mri")
    sphere = mne.make_sphere_model(r0=(0.0, 0.0, 0.0), head_radius=PLACEHOLDER_SPHERE_RADIUS_M, verbose="error")
    forward = mne.make_forward_solution(info, identity, src, sphere, meg=False, eeg=True, mindist=0.0, verbose="error")
    if forward["nsource"] != gain.shape[1]:
        raise BrainForgeError("MNE dropped sources of the head model; they must lie inside the head.")
    # The gain MNE computed on the sphere is replaced by the head model's (the Forward's own
    # entries: the current solution and the original one that conversions start from).
    forward["sol"]["data"] = free.copy()
    forward["_orig_sol"] = free.copy()
    return mne.convert_forward_solution(forward, surf_ori=True)
