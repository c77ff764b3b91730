"""The published DeepSIF reference anatomy (994 regions, 75 electrodes).

The files come from the DeepSIF repository (Sun et al., PNAS 2022, Clear BSD
licence); BrainForge never ships them. Point :func:`load_deepsif_anatomy` at
a folder that holds them, or fetch them with :func:`fetch_deepsif_anatomy`.

References
----------
Sun R, Sohrabpour A, Worrell GA, He B (2022). Deep neural networks constrained
by neural mass models improve electrophysiological source imaging of spatio-
temporal brain dynamics. PNAS 119(31), e2201128119.
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .._errors import BrainForgeError
from .connectivity import read_connectivity
from .head_model import HeadModel

#: Files of the reference anatomy that the loader reads.
DEEPSIF_FILES = (
    "fs_cortex_20k.mat",
    "fs_cortex_20k_region_mapping.mat",
    "leadfield_75_20k.mat",
    "electrode_75.mat",
    "connectivity_998.zip",
)

#: Further files :func:`fetch_deepsif_anatomy` downloads (resting EEG for realistic noise).
DEEPSIF_EXTRA_FILES = ("realistic_noise.mat",)

#: Where the DeepSIF repository keeps them (for :func:`fetch_deepsif_anatomy`).
DEEPSIF_URL = "https://raw.githubusercontent.com/bfinl/DeepSIF/main/anatomy/"

#: Regions that take another node of the 998-node connectome
#: (DeepSIF's simulation script): region -> node, 0-based.
DEEPSIF_NODE_OVERRIDES = {7: 994, 325: 997, 921: 996, 949: 995}


def deepsif_region_node(n_regions: int = 994) -> np.ndarray:
    """Connectome node (of 998) that drives each of the 994 regions."""
    node = np.arange(n_regions)
    for region, source in DEEPSIF_NODE_OVERRIDES.items():
        node[region] = source
    return node


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    if not path.is_file():
        raise BrainForgeError(
            f"DeepSIF anatomy file missing: {path}. The folder needs {', '.join(DEEPSIF_FILES)}; "
            "see brainforge.anatomy.fetch_deepsif_anatomy."
        )
    try:
        return loadmat(path, squeeze_me=True)
    except Exception as err:
        raise BrainForgeError(f"Cannot read {path}: {err}.") from err


def _symmetric_neighbours(nbs, n_regions: int) -> sp.csr_matrix:
    """DeepSIF's 1-based, mixed-dtype, one-way neighbour lists as a symmetric graph."""
    rows, cols = [], []
    for region, neighbours in enumerate(nbs):
        neighbours = np.atleast_1d(np.asarray(neighbours, dtype=np.int64)) - 1
        neighbours = neighbours[(neighbours >= 0) & (neighbours != region)]
        rows.extend([region] * len(neighbours))
        cols.extend(neighbours.tolist())
    adj = sp.coo_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(n_regions, n_regions))
    adj = (adj + adj.T).tocsr()
    adj.data[:] = True
    return adj


def load_deepsif_anatomy(folder: str | Path) -> HeadModel:
    """Load DeepSIF's 994-region / 75-channel reference anatomy.

    Parameters
    ----------
    folder : path
        Folder with ``fs_cortex_20k.mat``, ``fs_cortex_20k_region_mapping.mat``,
        ``leadfield_75_20k.mat``, ``electrode_75.mat`` and
        ``connectivity_998.zip``.

    Returns
    -------
    head : HeadModel
        994 cortical regions on the fsaverage5 cortex, the published 75 x 994
        region leadfield (arbitrary units; no source-level leadfield), the
        published neighbour lists made symmetric, and the 998-node connectome
        with DeepSIF's node -> region rule in ``region_node``.

    Notes
    -----
    Source orientations are the pial surface normals computed from ``pos``
    and ``tri``; the file's ``ori`` field is rotated 90 degrees about the
    vertical axis relative to ``pos`` and is not used. Electrode positions are
    the template's 10-05 positions for the same names (the published
    ``eloc75`` coordinates are in another frame).
    """
    from ._geometry import vertex_normals
    from .montage import get_electrodes

    folder = Path(folder)
    if not folder.is_dir():
        raise BrainForgeError(f"DeepSIF anatomy folder not found: {folder}.")
    cortex = _loadmat(folder / "fs_cortex_20k.mat")
    mapping = _loadmat(folder / "fs_cortex_20k_region_mapping.mat")
    leadfield = np.asarray(_loadmat(folder / "leadfield_75_20k.mat")["fwd"], float)
    eloc = _loadmat(folder / "electrode_75.mat")["eloc75"]
    pos = np.asarray(cortex["pos"], float)
    tris = np.asarray(cortex["tri"], np.int64) - 1
    region = np.asarray(mapping["rm"], np.int64).ravel()
    n_regions = leadfield.shape[1]
    if region.shape != (len(pos),) or region.max() != n_regions - 1:
        raise BrainForgeError(
            f"Region mapping ({region.shape}) does not match the cortex or the {n_regions}-region leadfield."
        )
    ch_names = [str(name) for name in np.atleast_1d(eloc["labels"])]
    if leadfield.shape[0] != len(ch_names):
        raise BrainForgeError(
            f"The leadfield has {leadfield.shape[0]} rows but electrode_75.mat names {len(ch_names)} channels."
        )
    n_left = len(np.atleast_1d(cortex["left_ind"]))
    connectivity = read_connectivity(folder / "connectivity_998.zip")
    centres = np.array([pos[region == r].mean(axis=0) for r in range(n_regions)])
    return HeadModel(
        source_pos_mm=pos,
        source_nn=vertex_normals(pos, tris),
        source_region=region,
        region_names=[f"nmm.{r:03d}" for r in range(n_regions)],
        region_centres_mm=centres,
        region_adjacency=_symmetric_neighbours(mapping["nbs"], n_regions),
        ch_names=ch_names,
        ch_pos_mm=get_electrodes("1010-75").pick(ch_names).pos,
        leadfield=None,
        region_leadfield=leadfield,
        n_cortical_sources=len(pos),
        n_left_sources=n_left,
        cortex_tris=tris,
        description=f"DeepSIF reference anatomy ({n_regions} regions, {len(ch_names)} channels) from {folder}",
        connectivity=connectivity,
        region_node=deepsif_region_node(n_regions),
    )


def fetch_deepsif_anatomy(folder: str | Path, *, base_url: str = DEEPSIF_URL, overwrite: bool = False) -> Path:
    """Download DeepSIF's reference anatomy files into ``folder``.

    Needs internet; BrainForge never calls it by itself. Each file is written
    atomically, so an interrupted download leaves no partial file.

    Parameters
    ----------
    folder : path
        Destination folder (created if needed).
    base_url : str
        Where the files live; any URL that :func:`urllib.request.urlopen`
        accepts, including ``file://`` URLs.
    overwrite : bool
        Download files that are already there again.

    Returns
    -------
    folder : Path
    """
    from .._cache import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in DEEPSIF_FILES + DEEPSIF_EXTRA_FILES:
        dest = folder / name
        if dest.exists() and not overwrite:
            continue
        url = base_url.rstrip("/") + "/" + name
        try:
            with urllib.request.urlopen(url, timeout=60) as response, atomic_path(dest) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as err:
            raise BrainForgeError(f"Could not download {url}: {err}.") from err
    return folder
