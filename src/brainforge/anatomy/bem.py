"""Template conductor models on fsaverage, built offline with MNE-Python.

The inner skull comes from the ``mne`` wheel
(``mne/data/fsaverage/fsaverage-inner_skull-bem.fif``, an ico-5 mesh, used
decimated to ico-4: 2562 vertices) and the scalp is the wheel's
``fsaverage-head.fif`` (2033 vertices). The outer skull is the inner skull
pushed radially outwards from its centroid by ``skull_mm`` (7 mm), never by
more than half of the inner-skull-to-scalp gap along the same ray, so the
three surfaces are nested by construction (pushing along the vertex normals
fails MNE's nesting check). :func:`mne.make_bem_model` and
:func:`mne.make_bem_solution` do the rest.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._cache import cached, get_cache_dir, hash_inputs
from .._errors import BrainForgeError
from ._geometry import ray_mesh_distance

logger = logging.getLogger("brainforge")

#: Default conductivities (S/m) of brain, skull and scalp.
DEFAULT_CONDUCTIVITY: tuple[float, float, float] = (0.3, 0.006, 0.3)

_BEM_LAYERS = ("inner_skull", "outer_skull", "outer_skin")
_BUILD_VERSION = "bem-1"


def mne_fsaverage_dir() -> Path:
    """Return the folder of fsaverage files that the ``mne`` wheel ships."""
    import mne

    return Path(mne.__file__).parent / "data" / "fsaverage"


def template_trans_path() -> Path:
    """Path of the fsaverage head -> MRI transform shipped with ``mne``."""
    return mne_fsaverage_dir() / "fsaverage-trans.fif"


@dataclass(frozen=True)
class BemSurfaces:
    """Three nested surfaces of a BEM (positions in mm).

    Attributes
    ----------
    inner_skull, outer_skull : array, shape (n_vertices, 3)
        Skull vertex positions in fsaverage surface RAS, mm.
    inner_tris : array, shape (n_triangles, 3)
        Triangles shared by the two skull surfaces.
    outer_skin : array, shape (n_scalp_vertices, 3)
        Scalp vertex positions, mm.
    outer_skin_tris : array, shape (n_scalp_triangles, 3)
        Scalp triangles.
    centre : array, shape (3,)
        Origin of the radial construction, mm.
    """

    inner_skull: np.ndarray
    outer_skull: np.ndarray
    inner_tris: np.ndarray
    outer_skin: np.ndarray
    outer_skin_tris: np.ndarray
    centre: np.ndarray

    @property
    def triangles(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Triangles of the inner skull, outer skull and scalp, in that order."""
        return self.inner_tris, self.inner_tris, self.outer_skin_tris


def _ico4_from_ico5(rr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decimate an ico-5 mesh to ico-4: keep its first 2562 vertices, retriangulate.

    MNE's ico meshes list the vertices of coarser grades first. The ico-4
    triangulation is recovered as the convex hull of the vertex directions
    from the centroid, oriented outwards.
    """
    from scipy.spatial import ConvexHull

    n_ico4 = 2562
    if len(rr) < n_ico4:
        raise BrainForgeError(f"Expected an ico-5 inner skull, got {len(rr)} vertices.")
    rr = rr[:n_ico4]
    directions = rr - rr.mean(axis=0)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    tris = ConvexHull(directions).simplices.copy()
    normals = np.cross(directions[tris[:, 1]] - directions[tris[:, 0]], directions[tris[:, 2]] - directions[tris[:, 0]])
    inward = np.einsum("ij,ij->i", normals, directions[tris].mean(axis=1)) < 0
    tris[inward] = tris[inward][:, ::-1]
    return rr, tris


def make_template_bem_surfaces(skull_mm: float = 7.0) -> BemSurfaces:
    """Build the three template BEM surfaces from the files in the ``mne`` wheel.

    Parameters
    ----------
    skull_mm : float
        Radial skull thickness in mm, capped at half the local gap between
        the inner skull and the scalp along the same ray.

    Returns
    -------
    surfaces : BemSurfaces
        Inner skull (ico-4), outer skull (the inner skull pushed outwards)
        and the wheel's scalp surface, in mm.
    """
    import mne

    if not skull_mm > 0:
        raise BrainForgeError(f"skull_mm must be positive, got {skull_mm}.")
    folder = mne_fsaverage_dir()
    inner = mne.read_bem_surfaces(folder / "fsaverage-inner_skull-bem.fif")[0]
    head = mne.read_bem_surfaces(folder / "fsaverage-head.fif")[0]
    inner_rr, inner_tris = _ico4_from_ico5(inner["rr"] * 1e3)
    centre = inner_rr.mean(axis=0)
    radial = inner_rr - centre
    inner_r = np.linalg.norm(radial, axis=1)
    directions = radial / inner_r[:, None]
    scalp_r = ray_mesh_distance(centre, directions, head["rr"] * 1e3, head["tris"])
    if np.isnan(scalp_r).any() or (scalp_r <= inner_r).any():
        raise BrainForgeError("The template scalp does not enclose the inner skull; the mne data files look damaged.")
    skull = np.minimum(skull_mm, 0.5 * (scalp_r - inner_r))
    return BemSurfaces(
        inner_skull=inner_rr,
        inner_tris=inner_tris,
        outer_skull=centre + directions * (inner_r + skull)[:, None],
        outer_skin=head["rr"] * 1e3,
        outer_skin_tris=head["tris"].copy(),
        centre=centre,
    )


def _check_conductivity(conductivity: tuple[float, ...]) -> tuple[float, float, float]:
    values = tuple(float(c) for c in conductivity)
    if len(values) != 3 or not all(np.isfinite(values)) or min(values) <= 0:
        raise BrainForgeError(
            f"conductivity must be three positive values (brain, skull, scalp) in S/m, got {conductivity}."
        )
    return values  # type: ignore[return-value]


def bem_key(surfaces: BemSurfaces, conductivity: tuple[float, float, float]) -> str:
    """Cache key of a BEM solution: every surface and the conductivities."""
    import mne

    return hash_inputs(
        _BUILD_VERSION,
        mne.__version__,
        surfaces.inner_skull,
        surfaces.outer_skull,
        surfaces.inner_tris,
        surfaces.outer_skin,
        surfaces.outer_skin_tris,
        list(conductivity),
    )


def _solve_bem(surfaces: BemSurfaces, conductivity: tuple[float, float, float]):
    import mne

    with tempfile.TemporaryDirectory(prefix="brainforge-bem-") as subjects_dir:
        bem_dir = Path(subjects_dir) / "template" / "bem"
        bem_dir.mkdir(parents=True)
        for layer, tris in zip(_BEM_LAYERS, surfaces.triangles, strict=True):
            mne.write_surface(bem_dir / f"{layer}.surf", getattr(surfaces, layer), tris, overwrite=True)
        model = mne.make_bem_model("template", ico=None, conductivity=conductivity, subjects_dir=subjects_dir)
    return mne.make_bem_solution(model)


def make_template_bem(
    conductivity: tuple[float, float, float] = DEFAULT_CONDUCTIVITY,
    *,
    skull_mm: float = 7.0,
    surfaces: BemSurfaces | None = None,
):
    """Return the 3-layer BEM solution of the fsaverage template, cached on disk.

    Parameters
    ----------
    conductivity : tuple of 3 float
        Brain, skull and scalp conductivity in S/m.
    skull_mm : float
        Radial skull thickness in mm (see :func:`make_template_bem_surfaces`).
    surfaces : BemSurfaces | None
        Precomputed surfaces, to avoid building them twice.

    Returns
    -------
    bem : mne.bem.ConductorModel
        The BEM solution, loaded from the cache when one exists.
    """
    import mne

    conductivity = _check_conductivity(conductivity)
    surfaces = surfaces or make_template_bem_surfaces(skull_mm)
    key = bem_key(surfaces, conductivity)
    path = get_cache_dir() / "bem" / f"{key}-bem-sol.fif"
    return cached(
        path,
        build=lambda: _solve_bem(surfaces, conductivity),
        save=lambda bem, tmp: mne.write_bem_solution(tmp, bem, overwrite=True),
        load=lambda p: mne.read_bem_solution(p),
    )


def make_template_sphere(
    conductivity: tuple[float, float, float] = DEFAULT_CONDUCTIVITY,
    *,
    surfaces: BemSurfaces | None = None,
    enclose_mm: np.ndarray | None = None,
):
    """Return a 3-shell spherical conductor fitted to the template head.

    The centre and scalp radius are the least-squares sphere fit to the
    scalp above the lowest point of the inner skull (the neck would bias
    it), as MNE fits spheres to head shapes. The centre is in MRI
    coordinates, the frame :func:`~brainforge.anatomy.forward.compute_leadfield`
    uses as MNE's head frame. The brain radius is the mean
    inner-skull distance from that centre, enlarged where needed so that
    every point of ``enclose_mm`` lies at least 1 mm inside it (MNE drops
    sources outside the inner sphere). The skull keeps the template's mean
    radial thickness; the scalp radius is at least 2 mm beyond the skull.

    Parameters
    ----------
    conductivity : tuple of 3 float
        Brain, skull and scalp conductivity in S/m.
    surfaces : BemSurfaces | None
        Precomputed surfaces.
    enclose_mm : array, shape (n_points, 3) | None
        Source positions (mm, fsaverage surface RAS) the brain sphere must
        contain.

    Returns
    -------
    sphere : mne.bem.ConductorModel
        A spherical model usable as ``bem`` in :func:`mne.make_forward_solution`.
    """
    import mne

    conductivity = _check_conductivity(conductivity)
    surfaces = surfaces or make_template_bem_surfaces()
    scalp = surfaces.outer_skin[surfaces.outer_skin[:, 2] > surfaces.inner_skull[:, 2].min()]
    centre_mm, scalp_radius_mm = fit_sphere(scalp)
    brain_radius_mm = np.linalg.norm(surfaces.inner_skull - centre_mm, axis=1).mean()
    if enclose_mm is not None and len(enclose_mm):
        brain_radius_mm = max(brain_radius_mm, np.linalg.norm(enclose_mm - centre_mm, axis=1).max() + 1.0)
    skull_mm = np.linalg.norm(surfaces.outer_skull - surfaces.inner_skull, axis=1).mean()
    radii_mm = [brain_radius_mm, brain_radius_mm + skull_mm]
    radii_mm.append(max(scalp_radius_mm, radii_mm[1] + 2.0))
    return mne.make_sphere_model(
        r0=centre_mm * 1e-3,
        head_radius=radii_mm[-1] * 1e-3,
        relative_radii=tuple(r / radii_mm[-1] for r in radii_mm),
        sigmas=conductivity,
    )


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through ``points``; returns (centre, radius)."""
    design = np.c_[2 * points, np.ones(len(points))]
    target = (points**2).sum(axis=1)
    sol = np.linalg.lstsq(design, target, rcond=None)[0]
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))
