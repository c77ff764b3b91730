"""EEG leadfields computed by MNE-Python for arbitrary dipoles and electrodes."""

from __future__ import annotations

import logging

import numpy as np

from .._cache import cached, get_cache_dir, hash_inputs
from .._errors import BrainForgeError
from .montage import Electrodes

logger = logging.getLogger("brainforge")

_LEADFIELD_VERSION = "lf-2"


def conductor_key(conductor) -> str:
    """Hash a BEM solution or sphere model by its content."""
    if conductor["is_sphere"]:
        layers = [(float(layer["rad"]), float(layer["sigma"])) for layer in conductor["layers"]]
        return hash_inputs("sphere", np.asarray(conductor["r0"], float), layers)
    surfs = [(s["rr"], s["tris"], float(s["sigma"])) for s in conductor["surfs"]]
    return hash_inputs("bem", surfs, np.asarray(conductor["solution"]).shape)


def _forward_free(source_pos_mm: np.ndarray, electrodes: Electrodes, conductor, n_jobs: int):
    """Free-orientation MNE forward for discrete dipoles.

    Electrodes are already in MRI coordinates, so MNE's head frame is made
    identical to the MRI frame (identity transform). This also sidesteps
    MNE checking sphere-model sources in MRI coordinates against a centre
    given in head coordinates.
    """
    import mne

    identity = mne.transforms.Transform("head", "mri")
    montage = mne.channels.make_dig_montage(
        dict(zip(electrodes.names, electrodes.pos * 1e-3, strict=True)), coord_frame="head"
    )
    info = mne.create_info(electrodes.names, 1000.0, "eeg")
    info.set_montage(montage)
    dummy_nn = np.tile([0.0, 0.0, 1.0], (len(source_pos_mm), 1))
    src = mne.setup_volume_source_space(pos=dict(rr=source_pos_mm * 1e-3, nn=dummy_nn))
    fwd = mne.make_forward_solution(info, identity, src, conductor, meg=False, eeg=True, mindist=0.0, n_jobs=n_jobs)
    if fwd["nsource"] != len(source_pos_mm):
        kept = fwd["src"][0]["vertno"]
        dropped = np.setdiff1d(np.arange(len(source_pos_mm)), kept)
        raise BrainForgeError(
            f"{len(dropped)} source(s) lie outside the conductor's inner compartment (first: index {dropped[0]}, "
            f"{np.round(source_pos_mm[dropped[0]], 1).tolist()} mm); move them inside the inner skull."
        )
    return fwd


def compute_leadfield(
    source_pos_mm: np.ndarray,
    source_nn: np.ndarray | None,
    electrodes: Electrodes,
    conductor,
    *,
    n_jobs: int = 1,
    cache: bool = True,
) -> np.ndarray:
    """Leadfield of fixed-orientation dipoles, computed by MNE and cached.

    MNE computes the free-orientation forward solution
    (:func:`mne.make_forward_solution`, EEG only, electrodes on the scalp);
    each source's three columns are then combined along its orientation.

    Parameters
    ----------
    source_pos_mm : array, shape (n_sources, 3)
        Dipole positions in fsaverage surface RAS, mm.
    source_nn : array, shape (n_sources, 3) | None
        Unit dipole orientations in the same frame; None for free
        orientation (three dipoles along the x, y and z axes of that frame).
    electrodes : Electrodes
        Electrode names and positions (mm, same frame).
    conductor : mne.bem.ConductorModel
        BEM solution or sphere model.
    n_jobs : int
        Parallel jobs for MNE.
    cache : bool
        Keep the result in the cache folder (False for large intermediate
        leadfields that the caller reduces and caches itself).

    Returns
    -------
    leadfield : array, shape (n_channels, n_sources) or (n_channels, n_sources, 3)
        Potential at each electrode, in V per A*m of dipole moment,
        reference-free (not average-referenced). Free orientation adds a
        last axis for x, y and z.
    """
    import mne

    source_pos_mm = np.asarray(source_pos_mm, float)
    free = source_nn is None
    source_nn = np.eye(3)[None].repeat(len(source_pos_mm), 0) if free else np.asarray(source_nn, float)
    if source_pos_mm.ndim != 2 or source_pos_mm.shape[1] != 3 or len(source_nn) != len(source_pos_mm):
        raise BrainForgeError("source positions must have shape (n_sources, 3), with one orientation per source.")
    key = hash_inputs(
        _LEADFIELD_VERSION,
        mne.__version__,
        conductor_key(conductor),
        source_pos_mm,
        source_nn,
        electrodes.names,
        electrodes.pos,
    )
    path = get_cache_dir() / "leadfield" / f"{key}.npy"
    expected = (len(electrodes), len(source_pos_mm)) + ((3,) if free else ())

    def load(p):
        leadfield = np.load(p, allow_pickle=False)
        if leadfield.shape != expected or not np.isfinite(leadfield).all():
            raise ValueError("leadfield entry has the wrong shape or non-finite values")
        return leadfield

    def build():
        fwd = _forward_free(source_pos_mm, electrodes, conductor, n_jobs)
        gain = fwd["sol"]["data"].reshape(len(electrodes), -1, 3)
        # Orientation of each of a source's three columns (MRI = head frame here).
        ori = fwd["source_nn"].reshape(-1, 3, 3)
        nn = source_nn.reshape(-1, 3)
        weights = np.einsum("skj,sj->sk", ori.repeat(len(nn) // len(ori), 0), nn)
        weights = weights.reshape(len(ori), -1, 3) if free else weights
        if free:
            return np.einsum("csk,sok->cso", gain, weights)
        return np.einsum("csk,sk->cs", gain, weights)

    if not cache:
        return build()
    return cached(path, build=build, save=lambda lf, tmp: np.save(tmp, lf), load=load)
