"""A bank of forward models around a template head: skull conductivity, cap placement, head shape, jitter.

Real users co-register a template head to their cap with errors of 1-3 cm,
and nobody knows their skull conductivity. A network trained on one forward
model learns that model's quirks; one trained on many learns what they
share. Building thousands of BEM forward models would take days, so the bank
is made cheap:

1. For each skull conductivity of a grid, MNE computes the leadfield once
   at every scalp vertex of the template BEM (a *dense scalp leadfield*) and
   it is summed per region.
2. A *placement* moves the whole cap (shift along the scalp, twist about
   the vertex, per-axis stretch, per-electrode jitter), projects each
   electrode back onto the scalp and keeps the triangle it lands on and its
   barycentric weights.
3. A placement's leadfield is the weighted sum of three rows of the dense
   leadfield per electrode. This is exactly how MNE itself gets the
   potential at an electrode from a BEM (linear interpolation on the scalp
   triangle), so an unmoved placement reproduces the head model's leadfield
   to rounding.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .._cache import cached, get_cache_dir, hash_inputs
from .._errors import BrainForgeError
from .._logging import verbose

logger = logging.getLogger("brainforge")

_BANK_VERSION = "bank-1"


@dataclass(frozen=True)
class ForwardBankConfig:
    """How the forward models of a :class:`ForwardBank` are drawn.

    Parameters
    ----------
    skull_conductivity : tuple of float
        Skull conductivities of the dense leadfields, S/m (brain and scalp
        keep the head model's). The default grid spans 0.003-0.015 S/m and
        leaves out 0.01 S/m, a held-out test forward model.
    n_placements : int
        Forward models in the bank (each: one conductivity of the grid and one
        cap placement).
    max_shift_mm : float
        Largest displacement of the whole cap along the scalp, mm (direction
        uniform, distance uniform over the disc).
    max_rotation_deg : float
        Largest twist of the cap about the head's vertical axis, degrees.
    max_stretch : float
        Per-axis stretch of the cap about the head centre, drawn from
        ``1 +- max_stretch`` for x, y and z separately (head size and shape
        +-10 % relative to the template; see Notes).
    electrode_jitter_mm : float
        Largest tangential displacement of single electrodes, mm.
    margin_mm : float
        Scalp vertices down to this far below the lowest electrode get a
        dense leadfield.
    seed : int
        Seed of the placements.
    max_vertical_shift_mm : float
        Largest vertical displacement of the whole cap (a cap that sits lower
        or higher on the head), mm, uniform in ``+-max_vertical_shift_mm``;
        the electrodes are then projected back onto the scalp, so those near
        the vertex move least. 0 (the default, and every bank before it
        existed) draws none. A lowered cap needs dense scalp rows lower down:
        ``margin_mm`` of about 45 plus this (``brainforge train
        --bank-vertical-shift-mm`` sets it so); a margin too small fails
        before any dense leadfield is computed.

    Notes
    -----
    Scaling a whole head (cortex, skull, scalp and electrodes) by ``s``
    multiplies its leadfield by ``1 / s**2`` and changes nothing else, which
    per-segment normalization removes. What a different head size changes for
    a template user is where the electrodes sit relative to the template
    cortex; the per-axis stretch of the cap models that.
    """

    skull_conductivity: tuple[float, ...] = (0.003, 0.0045, 0.006, 0.008, 0.012, 0.015)
    n_placements: int = 4096
    max_shift_mm: float = 20.0
    max_rotation_deg: float = 10.0
    max_stretch: float = 0.1
    electrode_jitter_mm: float = 5.0
    margin_mm: float = 45.0
    seed: int = 0
    max_vertical_shift_mm: float = 0.0

    def __post_init__(self) -> None:
        if not self.skull_conductivity or min(self.skull_conductivity) <= 0:
            raise BrainForgeError(f"skull_conductivity needs positive values, got {self.skull_conductivity}.")
        if self.n_placements < 1:
            raise BrainForgeError(f"n_placements must be at least 1, got {self.n_placements}.")
        for name in (
            "max_shift_mm",
            "max_rotation_deg",
            "max_stretch",
            "max_vertical_shift_mm",
            "electrode_jitter_mm",
            "margin_mm",
        ):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise BrainForgeError(f"{name} must be a finite value >= 0, got {value}.")
        if self.max_stretch >= 0.5:
            raise BrainForgeError(f"max_stretch must be below 0.5, got {self.max_stretch}.")


@dataclass(frozen=True)
class CapPlacement:
    """One way of putting the cap on the head.

    Parameters
    ----------
    shift_mm : (float, float)
        Displacement of the vertex electrode along the scalp, mm: towards the
        right ear (x) and towards the nose (y).
    rotation_deg : float
        Twist about the vertical axis through the head centre, degrees.
    stretch : (float, float, float)
        Scale of the cap's x, y and z extent about the head centre.
    jitter_mm : array, shape (n_channels, 3) | None
        Extra displacement of each electrode (made tangential), mm.
    vertical_shift_mm : float
        Displacement of the whole cap along the head's vertical axis (negative:
        lower on the head), mm, applied last; the caller projects the result
        onto the scalp.
    """

    shift_mm: tuple[float, float] = (0.0, 0.0)
    rotation_deg: float = 0.0
    stretch: tuple[float, float, float] = (1.0, 1.0, 1.0)
    jitter_mm: np.ndarray | None = None
    vertical_shift_mm: float = 0.0


def _rotation(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rodrigues rotation matrix about a unit axis."""
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * k @ k


def place_cap(pos_mm: np.ndarray, centre_mm: np.ndarray, radius_mm: float, placement: CapPlacement) -> np.ndarray:
    """Electrode positions after a cap placement (before projection onto the scalp).

    Parameters
    ----------
    pos_mm : array, shape (n_channels, 3)
        Nominal electrode positions on the scalp, mm.
    centre_mm : array, shape (3,)
        Head centre, mm.
    radius_mm : float
        Distance from the centre to the scalp at the vertex: a shift of
        ``d`` mm is a rotation by ``d / radius_mm`` radians.
    placement : CapPlacement
        How to move the cap.

    Returns
    -------
    pos : array, shape (n_channels, 3)
        Moved positions, mm.
    """
    radial = (pos_mm - centre_mm) * np.asarray(placement.stretch, float)
    twist = _rotation(np.array([0.0, 0.0, 1.0]), np.deg2rad(placement.rotation_deg))
    shift = np.asarray(placement.shift_mm, float)
    distance = float(np.hypot(*shift))
    if distance > 0:
        # Moving the vertex by `shift` along the scalp: rotate about the horizontal axis
        # perpendicular to the shift (z x shift direction).
        direction = np.array([shift[0], shift[1], 0.0]) / distance
        tilt = _rotation(np.cross([0.0, 0.0, 1.0], direction), distance / radius_mm)
    else:
        tilt = np.eye(3)
    moved = radial @ (tilt @ twist).T
    if placement.jitter_mm is not None:
        step = np.asarray(placement.jitter_mm, float)
        unit = moved / np.linalg.norm(moved, axis=1, keepdims=True)
        moved = moved + step - np.einsum("ij,ij->i", step, unit)[:, None] * unit
    moved[:, 2] += placement.vertical_shift_mm
    return centre_mm + moved


def draw_placement(config: ForwardBankConfig, n_channels: int, rng: np.random.Generator) -> CapPlacement:
    """Draw a random cap placement within the bank's ranges."""
    angle = rng.uniform(0, 2 * np.pi)
    distance = config.max_shift_mm * np.sqrt(rng.uniform())
    rotation = rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)
    stretch = tuple(1.0 + rng.uniform(-config.max_stretch, config.max_stretch, 3))
    jitter = rng.standard_normal((n_channels, 3))
    jitter *= (config.electrode_jitter_mm * rng.uniform(size=(n_channels, 1))) / np.linalg.norm(
        jitter, axis=1, keepdims=True
    )
    # Drawn last, and only when asked for, so that banks without it keep their placements.
    vertical = (
        rng.uniform(-config.max_vertical_shift_mm, config.max_vertical_shift_mm)
        if config.max_vertical_shift_mm
        else 0.0
    )
    shift = (distance * np.cos(angle), distance * np.sin(angle))
    return CapPlacement(shift, rotation, stretch, jitter, vertical_shift_mm=float(vertical))


@dataclass
class ForwardBank:
    """Forward models around one template head model, for training across head-model variation.

    Attributes
    ----------
    config : ForwardBankConfig
        How it was drawn.
    skull_conductivity : array, shape (n_conductivities,)
        Skull conductivity of each dense leadfield, S/m.
    scalp_leadfield : array, shape (n_conductivities, n_vertices, n_regions)
        Region leadfield at each kept scalp vertex, V/(A*m), reference-free.
    scalp_vertex : array of int, shape (n_vertices,)
        Those scalp vertices (indices into the template scalp surface).
    vertex_pos : array, shape (n_vertices, 3)
        Their positions, mm.
    conductivity_index : array of int, shape (n_placements,)
        Dense leadfield of each forward model.
    vertex_index : array of int, shape (n_placements, n_channels, 3)
        Scalp vertices each electrode of each forward model interpolates.
    vertex_weight : array, shape (n_placements, n_channels, 3)
        Their barycentric weights.
    ch_pos_mm : array, shape (n_placements, n_channels, 3)
        Where each forward model puts the electrodes, mm.
    nominal_pos_mm : array, shape (n_channels, 3)
        The head model's electrode positions, mm.
    build_seconds : float
        Time to build (0 when read from the cache).
    """

    config: ForwardBankConfig
    skull_conductivity: np.ndarray
    scalp_leadfield: np.ndarray
    scalp_vertex: np.ndarray
    vertex_pos: np.ndarray
    conductivity_index: np.ndarray
    vertex_index: np.ndarray
    vertex_weight: np.ndarray
    ch_pos_mm: np.ndarray
    nominal_pos_mm: np.ndarray
    build_seconds: float = 0.0

    @property
    def n_placements(self) -> int:
        """Number of forward models."""
        return len(self.conductivity_index)

    @property
    def n_channels(self) -> int:
        """Electrodes per forward model."""
        return self.vertex_index.shape[1]

    def displacement_mm(self) -> np.ndarray:
        """Distance of every electrode of every forward model from its nominal position, mm."""
        return np.linalg.norm(self.ch_pos_mm - self.nominal_pos_mm, axis=2)

    def region_leadfield(self, index: int, channels: np.ndarray | None = None) -> np.ndarray:
        """Region leadfield (n_channels, n_regions) of forward model ``index``, reference-free."""
        rows = self.vertex_index[index] if channels is None else self.vertex_index[index][channels]
        weights = self.vertex_weight[index] if channels is None else self.vertex_weight[index][channels]
        dense = self.scalp_leadfield[self.conductivity_index[index]]
        return np.einsum("cj,cjr->cr", weights, dense[rows])

    def save(self, fname: str | Path) -> None:
        """Write to an ``.npz`` file (no pickle)."""
        arrays = {k: v for k, v in asdict(self).items() if isinstance(v, np.ndarray)}
        np.savez(fname, config=np.array(_config_json(self.config)), **arrays)


def _config_json(config: ForwardBankConfig) -> str:
    """Write the config as JSON, leaving ``max_vertical_shift_mm`` out at 0 (banks made before it keep their key)."""
    import json

    data = asdict(config)
    if not data["max_vertical_shift_mm"]:
        del data["max_vertical_shift_mm"]
    return json.dumps(data)


def read_forward_bank(fname: str | Path) -> ForwardBank:
    """Read a file written by :meth:`ForwardBank.save`."""
    import json

    with np.load(fname, allow_pickle=False) as data:
        values = json.loads(str(data["config"]))
        values["skull_conductivity"] = tuple(values["skull_conductivity"])
        arrays = {k: data[k] for k in data.files if k != "config"}
    for legacy in ("ch_pos", "nominal_pos"):  # files written before the names carried their unit
        if legacy in arrays:
            arrays[f"{legacy}_mm"] = arrays.pop(legacy)
    return ForwardBank(config=ForwardBankConfig(**values), **arrays)


def _scalp_frame(surfaces) -> tuple[np.ndarray, float]:
    """Head centre and the scalp radius straight above it, mm."""
    from ._geometry import ray_mesh_distance

    up = np.array([[0.0, 0.0, 1.0]])
    radius = float(ray_mesh_distance(surfaces.centre, up, surfaces.outer_skin, surfaces.outer_skin_tris)[0])
    return surfaces.centre, radius


def project_on_scalp(pos_mm: np.ndarray, surfaces, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project points radially onto the scalp: positions, kept-vertex indices and barycentric weights.

    Parameters
    ----------
    pos_mm : array, shape (n_points, 3)
        Points near the scalp, mm.
    surfaces : BemSurfaces
        The template surfaces.
    keep : array of int
        Scalp vertices that have a dense leadfield (their order indexes it).

    Returns
    -------
    pos : array, shape (n_points, 3)
        Points on the scalp, mm.
    vertex_index : array of int, shape (n_points, 3)
        Positions in ``keep`` of the hit triangle's vertices.
    weights : array, shape (n_points, 3)
        Barycentric weights.
    """
    radial = pos_mm - surfaces.centre
    directions = radial / np.linalg.norm(radial, axis=1, keepdims=True)
    distance, triangle, weights = _scalp_hits(surfaces, directions)
    if (triangle < 0).any():
        raise BrainForgeError("A moved electrode points away from the scalp; reduce the cap shift or stretch.")
    lookup = np.full(len(surfaces.outer_skin), -1, np.int64)
    lookup[keep] = np.arange(len(keep))
    vertex_index = lookup[surfaces.outer_skin_tris[triangle]]
    if (vertex_index < 0).any():
        raise BrainForgeError(
            "A moved electrode lands below the scalp vertices of the dense leadfield; raise margin_mm "
            "(about 45 mm plus max_vertical_shift_mm)."
        )
    return surfaces.centre + directions * distance[:, None], vertex_index, weights


def _scalp_hits(surfaces, directions: np.ndarray, n_candidates: int = 32, chunk: int = 8192):
    """:func:`~brainforge.anatomy._geometry.ray_mesh_hits` on the scalp, testing only nearby triangles.

    The rays start at the head centre, so the triangle a ray hits is among
    those whose centroid direction is closest to the ray's. Rays without a hit
    among the candidates are tested against every triangle.
    """
    from scipy.spatial import cKDTree

    from ._geometry import farthest_hits, ray_mesh_hits

    pos, tris, centre = surfaces.outer_skin, surfaces.outer_skin_tris, surfaces.centre
    centroid = pos[tris].mean(axis=1) - centre
    tree = cKDTree(centroid / np.linalg.norm(centroid, axis=1, keepdims=True))
    distance = np.empty(len(directions))
    triangle = np.empty(len(directions), np.int64)
    weights = np.empty((len(directions), 3))
    for start in range(0, len(directions), chunk):
        part = slice(start, start + chunk)
        _, candidates = tree.query(directions[part], k=min(n_candidates, len(tris)))
        corner = pos[tris[candidates, 0]]  # (rays, k, 3)
        distance[part], best, weights[part] = farthest_hits(
            directions[part, None, :], corner - centre, pos[tris[candidates, 1]] - corner,
            pos[tris[candidates, 2]] - corner,
        )  # fmt: skip
        triangle[part] = candidates[np.arange(len(best)), best]
    missed = np.flatnonzero(np.isnan(distance))
    if len(missed):
        distance[missed], triangle[missed], weights[missed] = ray_mesh_hits(centre, directions[missed], pos, tris)
    return distance, triangle, weights


def _dense_scalp_leadfield(head, surfaces, keep: np.ndarray, skull: float, n_jobs: int) -> np.ndarray:
    """Region leadfield (n_vertices, n_regions) at the kept scalp vertices for one skull conductivity."""
    from .bem import make_template_bem
    from .forward import compute_leadfield
    from .head_model import region_sum
    from .montage import Electrodes

    brain, _, scalp = head.config.conductivity
    conductor = make_template_bem((brain, skull, scalp), skull_mm=head.config.skull_mm, surfaces=surfaces)
    vertices = Electrodes([f"scalp{v}" for v in keep], surfaces.outer_skin[keep])
    leadfield = compute_leadfield(head.source_pos_mm, head.source_nn, vertices, conductor, n_jobs=n_jobs, cache=False)
    return region_sum(leadfield, head.source_region, head.n_regions)


@verbose
def make_forward_bank(
    head,
    config: ForwardBankConfig | None = None,
    *,
    n_jobs: int = 1,
    verbose: bool | str | int | None = None,
) -> ForwardBank:
    """Build (or read from the cache) a bank of forward models around a template head model.

    Parameters
    ----------
    head : HeadModel
        A template head model from :func:`make_head_model` with a BEM
        conductor (its sources, regions, electrodes, brain and scalp
        conductivity are kept).
    config : ForwardBankConfig | None
        The ranges of the variation.
    n_jobs : int
        Parallel jobs for MNE's forward computation.
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    bank : ForwardBank
        Building costs one BEM solution and one scalp leadfield per skull
        conductivity (about 75 s each on two cores); the placements take
        seconds.
    """
    import mne

    from .bem import make_template_bem_surfaces

    config = config or ForwardBankConfig()
    if head.config is None or head.config.conductor != "bem" or head.leadfield is None:
        raise BrainForgeError("A forward bank needs a template head model with a BEM (make_head_model(...)).")
    key = hash_inputs(
        _BANK_VERSION, mne.__version__, _config_json(config), head.config.to_json(), head.ch_pos_mm, head.source_pos_mm
    )
    path = get_cache_dir() / "forward_bank" / f"{key}.npz"

    def build() -> ForwardBank:
        start = time.perf_counter()
        surfaces = make_template_bem_surfaces(head.config.skull_mm)
        centre, radius = _scalp_frame(surfaces)
        lowest = float((head.ch_pos_mm - centre)[:, 2].min())
        keep = np.flatnonzero((surfaces.outer_skin - centre)[:, 2] > lowest - config.margin_mm)
        rng = np.random.default_rng(config.seed)
        n_ch = head.n_channels
        conductivity_index = rng.integers(len(config.skull_conductivity), size=config.n_placements)
        moved = np.stack([
            place_cap(head.ch_pos_mm, centre, radius, draw_placement(config, n_ch, rng))
            for _ in range(config.n_placements)
        ])  # fmt: skip
        ch_pos_mm, vertex_index, vertex_weight = (
            a.reshape(config.n_placements, n_ch, 3) for a in project_on_scalp(moved.reshape(-1, 3), surfaces, keep)
        )
        # The placements come first: a margin too small for them fails here in
        # seconds, not after minutes of dense leadfields.
        dense = []
        for skull in config.skull_conductivity:
            logger.info("Forward bank: dense scalp leadfield at skull %.4g S/m (%d vertices)", skull, len(keep))
            dense.append(_dense_scalp_leadfield(head, surfaces, keep, skull, n_jobs))
        seconds = time.perf_counter() - start
        logger.info("Forward bank: %d forward models built in %.1f s", config.n_placements, seconds)
        return ForwardBank(
            config=config,
            skull_conductivity=np.asarray(config.skull_conductivity, float),
            scalp_leadfield=np.stack(dense),
            scalp_vertex=keep,
            vertex_pos=surfaces.outer_skin[keep],
            conductivity_index=conductivity_index,
            vertex_index=vertex_index,
            vertex_weight=vertex_weight,
            ch_pos_mm=ch_pos_mm,
            nominal_pos_mm=np.asarray(head.ch_pos_mm, float),
            build_seconds=seconds,
        )

    return cached(path, build=build, save=lambda bank, tmp: bank.save(tmp), load=read_forward_bank)


def placement_leadfield(head, bank: ForwardBank, pos_mm: np.ndarray, skull_index: int) -> np.ndarray:
    """Region leadfield (n_channels, n_regions) of electrodes at ``pos_mm`` for one skull conductivity of ``bank``.

    Electrodes are projected radially onto the scalp and interpolated on their
    triangle, as every forward model of the bank is.
    """
    from .bem import make_template_bem_surfaces

    surfaces = make_template_bem_surfaces(head.config.skull_mm)
    _, index, weights = project_on_scalp(np.asarray(pos_mm, float), surfaces, bank.scalp_vertex)
    return np.einsum("cj,cjr->cr", weights, bank.scalp_leadfield[skull_index][index])
