"""The HeadModel: sources, regions, electrodes and leadfields in one object."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.spatial.distance import cdist

from .._cache import cached, get_cache_dir, hash_inputs
from .._errors import BrainForgeError
from .._logging import verbose
from .connectivity import Connectivity

logger = logging.getLogger("brainforge")

_HEAD_MODEL_VERSION = "head-1"


@dataclass(frozen=True)
class HeadModelConfig:
    """Everything that defines a template head model.

    Parameters
    ----------
    montage : str
        Montage name, ``"custom"`` for a DigMontage, or ``"names"`` for a
        list of channel names (the positions enter the cache key).
    channels : tuple of str | None
        Channel subset, in order.
    n_regions : int
        Number of cortical regions of the parcellation.
    deep : bool
        Whether to include the subcortical structures.
    deep_spacing_mm : float
        Grid spacing of the deep sources, mm.
    conductor : ``"bem"`` | ``"sphere"``
        3-layer BEM or 3-shell sphere.
    conductivity : tuple of 3 float
        Brain, skull and scalp conductivity, S/m.
    skull_mm : float
        Radial skull thickness of the template BEM, mm.
    electrode_jitter_mm : float
        Tangential displacement of every electrode, mm (0 = none).
    jitter_seed : int
        Seed of the jitter directions.
    seed : int
        Seed of the parcellation's k-means.
    cap_shift_mm : (float, float)
        The whole cap moved along the scalp, mm: towards the right ear (x)
        and towards the nose (y); (0, 0) = none.
    cap_vertical_shift_mm : float
        The whole cap moved along the head's vertical axis, then projected
        back onto the scalp, mm (negative: lower on the head; 0 = none).
    """

    montage: str = "1010-64"
    channels: tuple[str, ...] | None = None
    n_regions: int = 1000
    deep: bool = True
    deep_spacing_mm: float = 4.0
    conductor: str = "bem"
    conductivity: tuple[float, float, float] = (0.3, 0.006, 0.3)
    skull_mm: float = 7.0
    electrode_jitter_mm: float = 0.0
    jitter_seed: int = 0
    seed: int = 0
    cap_shift_mm: tuple[float, float] = (0.0, 0.0)
    cap_vertical_shift_mm: float = 0.0

    def to_json(self) -> str:
        """Serialize to a JSON string.

        ``cap_shift_mm`` and ``cap_vertical_shift_mm`` are left out when they
        are 0, the value of head models made before they existed, so their
        cache entries stay valid.
        """
        data = asdict(self)
        if not any(data["cap_shift_mm"]):
            del data["cap_shift_mm"]
        if not data["cap_vertical_shift_mm"]:
            del data["cap_vertical_shift_mm"]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> HeadModelConfig:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        for key in ("channels", "conductivity", "cap_shift_mm"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass
class HeadModel:
    """Geometry and forward model of one head.

    Sources are ordered cortical first (left hemisphere, then right), then
    deep; regions likewise (cortical regions, then deep regions). Positions
    are in fsaverage surface RAS coordinates (MRI frame), in mm.

    Attributes
    ----------
    source_pos_mm : array, shape (n_sources, 3)
        Dipole positions, mm.
    source_nn : array, shape (n_sources, 3)
        Unit dipole orientations (cortex: surface normals).
    source_region : array of int, shape (n_sources,)
        Region index of every source.
    region_names : list of str
        One name per region.
    region_centres_mm : array, shape (n_regions, 3)
        Mean position of each region's sources, mm.
    region_adjacency : scipy.sparse.csr_matrix, shape (n_regions, n_regions)
        Symmetric boolean graph of neighbouring regions.
    ch_names : list of str
        Electrode names.
    ch_pos_mm : array, shape (n_channels, 3)
        Electrode positions on the scalp, mm.
    leadfield : array, shape (n_channels, n_sources) | None
        Source leadfield in V/(A*m), reference-free unless
        :meth:`average_reference` was applied. None where only a region
        leadfield is published (the DeepSIF anatomy).
    region_leadfield : array, shape (n_channels, n_regions)
        Sum of the leadfield columns of each region.
    n_cortical_sources : int
        Number of cortical sources (the first ones).
    n_left_sources : int
        Number of left-hemisphere cortical sources.
    n_deep_regions : int
        Number of deep regions (the last ones).
    cortex_tris : array, shape (n_triangles, 3) | None
        Triangles of the cortical sources, for plotting.
    description : str
        One line that says what this head model is.
    config : HeadModelConfig | None
        Configuration of a template head model.
    connectivity : Connectivity | None
        Structural connectome for the neural-mass stage.
    region_node : array of int, shape (n_regions,) | None
        Connectome node that drives each region.
    """

    source_pos_mm: np.ndarray
    source_nn: np.ndarray
    source_region: np.ndarray
    region_names: list[str]
    region_centres_mm: np.ndarray
    region_adjacency: sp.csr_matrix
    ch_names: list[str]
    ch_pos_mm: np.ndarray
    leadfield: np.ndarray | None
    region_leadfield: np.ndarray
    n_cortical_sources: int
    n_left_sources: int
    n_deep_regions: int = 0
    cortex_tris: np.ndarray | None = None
    description: str = ""
    config: HeadModelConfig | None = None
    connectivity: Connectivity | None = None
    region_node: np.ndarray | None = None
    average_referenced: bool = False
    build_seconds: float = field(default=0.0, compare=False)

    # ------------------------------------------------------------------ shape
    @property
    def n_channels(self) -> int:
        """Number of electrodes."""
        return len(self.ch_names)

    @property
    def n_sources(self) -> int:
        """Number of dipoles."""
        return len(self.source_pos_mm)

    @property
    def n_regions(self) -> int:
        """Number of regions (cortical and deep)."""
        return len(self.region_names)

    @property
    def region_is_deep(self) -> np.ndarray:
        """Boolean mask of the deep regions."""
        mask = np.zeros(self.n_regions, bool)
        mask[self.n_regions - self.n_deep_regions :] = True
        return mask

    @property
    def region_distance_mm(self) -> np.ndarray:
        """Euclidean distance between region centres, mm, shape (n_regions, n_regions)."""
        return cdist(self.region_centres_mm, self.region_centres_mm)

    def __repr__(self) -> str:
        return (
            f"<HeadModel | {self.n_channels} channels, {self.n_sources} sources, {self.n_regions} regions "
            f"({self.n_deep_regions} deep) | {self.description}>"
        )

    # -------------------------------------------------------------- transforms
    def average_reference(self) -> HeadModel:
        """Return a copy whose leadfields are re-referenced to the channel average."""
        if self.average_referenced:
            return self
        leadfield = None if self.leadfield is None else self.leadfield - self.leadfield.mean(axis=0)
        region_leadfield = self.region_leadfield - self.region_leadfield.mean(axis=0)
        return replace(self, leadfield=leadfield, region_leadfield=region_leadfield, average_referenced=True)

    def pick_channels(self, names: Sequence[str]) -> HeadModel:
        """Return a copy restricted to ``names`` (in that order).

        Picking from an average-referenced model is refused: the reference
        depends on the channel set, so pick first, then re-reference.
        """
        from .montage import MIN_CHANNELS, _check_known

        names = list(names)
        _check_known(names, self.ch_names, "the head model")
        if len(names) < MIN_CHANNELS:
            raise BrainForgeError(f"Only {len(names)} channel(s); at least {MIN_CHANNELS} are needed.")
        if self.average_referenced:
            raise BrainForgeError("Pick channels before average referencing: the reference depends on the channel set.")
        index = [self.ch_names.index(n) for n in names]
        description = self.description
        if names != self.ch_names:
            description += f"; {len(names)} of its {self.n_channels} channels picked"
        return replace(
            self,
            description=description,
            ch_names=names,
            ch_pos_mm=self.ch_pos_mm[index],
            leadfield=None if self.leadfield is None else self.leadfield[index],
            region_leadfield=self.region_leadfield[index],
        )

    # ---------------------------------------------------------------------- io
    def to_arrays(self) -> dict[str, np.ndarray]:
        """All fields as arrays (positions in mm), the content of :meth:`save`."""
        adjacency = sp.coo_matrix(self.region_adjacency)
        arrays: dict[str, np.ndarray] = {
            "source_pos_mm": self.source_pos_mm,
            "source_nn": self.source_nn,
            "source_region": self.source_region,
            "region_names": np.array(self.region_names),
            "region_centres_mm": self.region_centres_mm,
            "region_adjacency_ij": np.vstack([adjacency.row, adjacency.col]),
            "ch_names": np.array(self.ch_names),
            "ch_pos_mm": self.ch_pos_mm,
            "region_leadfield": self.region_leadfield,
            "meta": np.array(
                json.dumps(
                    {
                        "n_cortical_sources": self.n_cortical_sources,
                        "n_left_sources": self.n_left_sources,
                        "n_deep_regions": self.n_deep_regions,
                        "description": self.description,
                        "average_referenced": self.average_referenced,
                        "build_seconds": self.build_seconds,
                        "config": None if self.config is None else asdict(self.config),
                    }
                )
            ),
        }
        if self.leadfield is not None:
            arrays["leadfield"] = self.leadfield
        if self.cortex_tris is not None:
            arrays["cortex_tris"] = self.cortex_tris
        if self.region_node is not None:
            arrays["region_node"] = self.region_node
        if self.connectivity is not None:
            arrays.update({f"connectivity_{k}": v for k, v in self.connectivity.to_arrays().items()})
        return arrays

    def save(self, fname: str | Path) -> None:
        """Write the head model to an ``.npz`` file (no pickles), atomically."""
        from .._cache import atomic_path

        with atomic_path(Path(fname)) as tmp, open(tmp, "wb") as fid:
            np.savez(fid, **self.to_arrays())


def read_head_model(fname: str | Path) -> HeadModel:
    """Read a head model written by :meth:`HeadModel.save`.

    Parameters
    ----------
    fname : path
        The ``.npz`` file.

    Returns
    -------
    head : HeadModel
    """
    fname = Path(fname)
    if not fname.is_file():
        raise BrainForgeError(f"Head model file not found: {fname}.")
    try:
        with np.load(fname, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:
        raise BrainForgeError(
            f"Cannot read head model {fname}: {err}. Rebuild it with `brainforge head export`."
        ) from err
    if "meta" not in arrays:
        raise BrainForgeError(
            f"{fname} is not a BrainForge head model (no 'meta' record); make one with `brainforge head export`."
        )
    try:
        return _head_model_from_arrays(arrays)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        raise BrainForgeError(
            f"Head model {fname} is damaged or from an unknown version ({type(err).__name__}: {err}); rebuild it "
            "with `brainforge head export`."
        ) from err


def _head_model_from_arrays(arrays: dict) -> HeadModel:
    """Build a :class:`HeadModel` from the arrays of its ``.npz`` file (:func:`read_head_model`)."""
    meta = json.loads(str(arrays.pop("meta")))
    for legacy in ("source_pos", "region_centres", "ch_pos"):  # files written before the names carried units
        if legacy in arrays:
            arrays[f"{legacy}_mm"] = arrays.pop(legacy)
    n_regions = len(arrays["region_names"])
    ij = arrays["region_adjacency_ij"]
    adjacency = sp.csr_matrix((np.ones(ij.shape[1], bool), (ij[0], ij[1])), shape=(n_regions, n_regions))
    conn = {k[len("connectivity_") :]: v for k, v in arrays.items() if k.startswith("connectivity_")}
    config = meta.pop("config")
    return HeadModel(
        source_pos_mm=arrays["source_pos_mm"],
        source_nn=arrays["source_nn"],
        source_region=arrays["source_region"],
        region_names=[str(n) for n in arrays["region_names"]],
        region_centres_mm=arrays["region_centres_mm"],
        region_adjacency=adjacency,
        ch_names=[str(n) for n in arrays["ch_names"]],
        ch_pos_mm=arrays["ch_pos_mm"],
        leadfield=arrays.get("leadfield"),
        region_leadfield=arrays["region_leadfield"],
        cortex_tris=arrays.get("cortex_tris"),
        region_node=arrays.get("region_node"),
        connectivity=Connectivity.from_arrays(conn) if conn else None,
        config=None if config is None else HeadModelConfig.from_json(json.dumps(config)),
        **meta,
    )


# --------------------------------------------------------------------------- build
def region_sum(leadfield: np.ndarray, source_region: np.ndarray, n_regions: int) -> np.ndarray:
    """Sum leadfield columns by region: (n_channels, n_sources) -> (n_channels, n_regions)."""
    membership = sp.csr_matrix(
        (np.ones(len(source_region)), (np.arange(len(source_region)), source_region)),
        shape=(len(source_region), n_regions),
    )
    return np.asarray((membership.T @ leadfield.T).T)


def _deep_orientations(deep, conductor) -> np.ndarray:
    """Per deep structure, the orientation of maximal scalp power.

    Computed once on the dense 10-05 montage (so it does not depend on the
    montage in use): the first right singular vector of the structure's
    summed, average-referenced free-orientation leadfield.
    """
    from .forward import compute_leadfield
    from .montage import DENSE_MONTAGE, get_electrodes

    dense = get_electrodes(DENSE_MONTAGE)
    free = compute_leadfield(deep.pos, None, dense, conductor)  # (C, S, 3)
    free = free - free.mean(axis=0)
    nn = np.empty((len(deep.pos), 3))
    for r in range(len(deep.names)):
        summed = free[:, deep.region == r].sum(axis=1)
        direction = np.linalg.svd(summed, full_matrices=False)[2][0]
        direction *= np.sign(direction[np.argmax(np.abs(direction))])
        nn[deep.region == r] = direction
    return nn


def _deep_adjacency(deep, spacing_mm: float) -> sp.csr_matrix:
    """Deep structures whose grid points touch (face neighbours)."""
    close = cdist(deep.pos, deep.pos) <= spacing_mm * 1.01
    a, b = np.nonzero(close)
    keep = deep.region[a] != deep.region[b]
    n = len(deep.names)
    adj = sp.coo_matrix((np.ones(keep.sum(), bool), (deep.region[a][keep], deep.region[b][keep])), shape=(n, n))
    adj = adj.tocsr()
    adj.data[:] = True
    return adj


def _conductor_for(config: HeadModelConfig, surfaces, source_pos_mm: np.ndarray):
    from .bem import make_template_bem, make_template_sphere

    if config.conductor == "bem":
        return make_template_bem(config.conductivity, surfaces=surfaces)
    return make_template_sphere(config.conductivity, surfaces=surfaces, enclose_mm=source_pos_mm)


def _build_template(config: HeadModelConfig, electrodes, n_jobs: int) -> HeadModel:
    from .bem import make_template_bem_surfaces
    from .cortex import load_fsaverage5_cortex, make_parcellation, region_adjacency
    from .deep import make_deep_sources
    from .forward import compute_leadfield
    from .montage import jitter_electrodes, project_to_scalp

    start = time.perf_counter()
    surfaces = make_template_bem_surfaces(config.skull_mm)
    cortex = load_fsaverage5_cortex()
    cortical_region = make_parcellation(cortex, config.n_regions, seed=config.seed)
    n_cortical = len(cortex.pos)
    pos, nn, region = [cortex.pos], [cortex.nn], [cortical_region]
    names = [
        f"{'lh' if r < _n_left_regions(cortical_region, cortex.n_left) else 'rh'}.{r:04d}"
        for r in range(config.n_regions)
    ]
    cortical_adj = region_adjacency(cortex.adjacency, cortical_region, config.n_regions)
    blocks = [cortical_adj]
    n_deep = 0
    deep = make_deep_sources(config.deep_spacing_mm) if config.deep else None
    all_pos = np.vstack([cortex.pos] + ([deep.pos] if deep is not None else []))
    conductor = _conductor_for(config, surfaces, all_pos)
    if deep is not None:
        n_deep = len(deep.names)
        pos.append(deep.pos)
        nn.append(_deep_orientations(deep, conductor))
        region.append(deep.region + config.n_regions)
        names += deep.names
        blocks.append(_deep_adjacency(deep, config.deep_spacing_mm))
    source_pos_mm, source_nn, source_region = np.vstack(pos), np.vstack(nn), np.concatenate(region)

    ch_pos_mm = electrodes.pos
    if any(config.cap_shift_mm) or config.cap_vertical_shift_mm:
        from .forward_bank import CapPlacement, _scalp_frame, place_cap

        centre, radius = _scalp_frame(surfaces)
        start_pos = project_to_scalp(ch_pos_mm, surfaces.centre, surfaces.outer_skin, surfaces.outer_skin_tris)
        placement = CapPlacement(shift_mm=tuple(config.cap_shift_mm), vertical_shift_mm=config.cap_vertical_shift_mm)
        ch_pos_mm = place_cap(start_pos, centre, radius, placement)
    if config.electrode_jitter_mm:
        ch_pos_mm = jitter_electrodes(ch_pos_mm, surfaces.centre, config.electrode_jitter_mm, config.jitter_seed)
    ch_pos_mm = project_to_scalp(ch_pos_mm, surfaces.centre, surfaces.outer_skin, surfaces.outer_skin_tris)
    from .montage import Electrodes

    on_scalp = Electrodes(electrodes.names, ch_pos_mm)
    leadfield = compute_leadfield(source_pos_mm, source_nn, on_scalp, conductor, n_jobs=n_jobs)
    n_regions = len(names)
    centres = np.array([source_pos_mm[source_region == r].mean(axis=0) for r in range(n_regions)])
    conductor_text = (
        f"{'3-layer BEM' if config.conductor == 'bem' else '3-shell sphere'} "
        f"{'/'.join(f'{c:g}' for c in config.conductivity)} S/m"
    )
    jitter_text = f", electrodes jittered {config.electrode_jitter_mm:g} mm" if config.electrode_jitter_mm else ""
    if any(config.cap_shift_mm):
        jitter_text += ", cap shifted ({:g}, {:g}) mm".format(*config.cap_shift_mm)
    if config.cap_vertical_shift_mm:
        jitter_text += f", cap moved {config.cap_vertical_shift_mm:+g} mm vertically"
    return HeadModel(
        source_pos_mm=source_pos_mm,
        source_nn=source_nn,
        source_region=source_region,
        region_names=names,
        region_centres_mm=centres,
        region_adjacency=sp.block_diag(blocks, format="csr").astype(bool),
        ch_names=list(electrodes.names),
        ch_pos_mm=ch_pos_mm,
        leadfield=leadfield,
        region_leadfield=region_sum(leadfield, source_region, n_regions),
        n_cortical_sources=n_cortical,
        n_left_sources=cortex.n_left,
        n_deep_regions=n_deep,
        cortex_tris=cortex.tris,
        description=f"template fsaverage, {config.montage}, {conductor_text}{jitter_text}",
        config=config,
        build_seconds=time.perf_counter() - start,
    )


def _n_left_regions(cortical_region: np.ndarray, n_left: int) -> int:
    return int(cortical_region[:n_left].max()) + 1


@verbose
def make_head_model(
    montage="1010-64",
    *,
    channels: Sequence[str] | None = None,
    n_regions: int = 1000,
    deep: bool = True,
    conductor: str = "bem",
    conductivity: tuple[float, float, float] = (0.3, 0.006, 0.3),
    electrode_jitter_mm: float = 0.0,
    jitter_seed: int = 0,
    cap_shift_mm: tuple[float, float] = (0.0, 0.0),
    cap_vertical_shift_mm: float = 0.0,
    seed: int = 0,
    deep_spacing_mm: float = 4.0,
    skull_mm: float = 7.0,
    n_jobs: int = 1,
    verbose: bool | str | int | None = None,
) -> HeadModel:
    """Build (or load from the cache) the offline fsaverage template head model.

    Parameters
    ----------
    montage : str | mne.channels.DigMontage | list of str
        Electrodes: an MNE built-in montage name, a 10-10 subset
        (``"1010-75"``, ``"1010-64"``, ``"1010-32"``, ``"1010-21"``,
        ``"1010-16"``), a DigMontage, or channel names of the dense 10-05
        montage.
    channels : list of str | None
        Keep only these channels of the montage.
    n_regions : int
        Cortical regions of the parcellation (about 1000 matches the
        published 994-region setup in scale).
    deep : bool
        Include 14 subcortical structures as volume sources.
    conductor : ``"bem"`` | ``"sphere"``
        The 3-layer BEM (default) or a 3-shell sphere fitted to it, an
        alternative forward model for evaluation.
    conductivity : tuple of 3 float
        Brain, skull and scalp conductivity in S/m. Changing the skull value
        gives another alternative forward model.
    electrode_jitter_mm : float
        Displace every electrode tangentially by this many mm (random
        directions from ``jitter_seed``): the third alternative forward
        model.
    jitter_seed : int
        Seed of the jitter directions.
    cap_shift_mm : (float, float)
        Move the whole cap along the scalp by this much, mm (towards the
        right ear, towards the nose): a co-registration error, another
        alternative forward model.
    cap_vertical_shift_mm : float
        Move the whole cap up (positive) or down along the head's vertical
        axis by this much, then back onto the scalp, mm: a cap that sits
        higher or lower on the head than the template's.
    seed : int
        Seed of the parcellation's k-means (changing it changes the regions).
    deep_spacing_mm : float
        Grid spacing of the deep sources, mm.
    skull_mm : float
        Radial skull thickness of the template BEM, mm.
    n_jobs : int
        Parallel jobs for MNE's forward computation.
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    head : HeadModel
        With reference-free leadfields in V/(A*m); see
        :meth:`HeadModel.average_reference`.
    """
    from importlib.metadata import version

    import mne

    from .bem import _check_conductivity
    from .montage import get_electrodes

    if conductor not in ("bem", "sphere"):
        raise BrainForgeError(f"conductor must be 'bem' or 'sphere', got {conductor!r}.")
    if electrode_jitter_mm < 0 or not np.isfinite(electrode_jitter_mm):
        raise BrainForgeError(f"electrode_jitter_mm must be >= 0, got {electrode_jitter_mm}.")
    conductivity = _check_conductivity(conductivity)
    electrodes = get_electrodes(montage, channels)
    if isinstance(montage, str):
        montage_text = montage
    elif isinstance(montage, mne.channels.DigMontage):
        montage_text = "custom"
    else:
        montage_text = "names"
    config = HeadModelConfig(
        montage=montage_text,
        channels=None if channels is None else tuple(channels),
        n_regions=int(n_regions),
        deep=bool(deep),
        deep_spacing_mm=float(deep_spacing_mm),
        conductor=conductor,
        conductivity=tuple(float(c) for c in conductivity),
        skull_mm=float(skull_mm),
        electrode_jitter_mm=float(electrode_jitter_mm),
        jitter_seed=int(jitter_seed),
        seed=int(seed),
        cap_shift_mm=(float(cap_shift_mm[0]), float(cap_shift_mm[1])),
        cap_vertical_shift_mm=float(cap_vertical_shift_mm),
    )
    from .. import __version__

    key = hash_inputs(
        _HEAD_MODEL_VERSION,
        __version__,
        mne.__version__,
        version("nilearn"),
        config.to_json(),
        electrodes.names,
        electrodes.pos,
    )
    path = get_cache_dir() / "head" / f"{key}.npz"
    return cached(
        path,
        build=lambda: _build_template(config, electrodes, n_jobs),
        save=lambda head, tmp: head.save(tmp),
        load=read_head_model,
    )
