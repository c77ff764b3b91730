"""Scalp maps on a grid: azimuthal equidistant projection, then linear, cubic or RBF interpolation.

Every method is linear in the data, so each montage's interpolation is
computed once as a matrix (n_pixels x n_channels) and applied to whole
batches as one matrix product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from scipy.interpolate import CloughTocher2DInterpolator, LinearNDInterpolator, RBFInterpolator
from scipy.spatial import Delaunay, QhullError

from .._errors import BrainForgeError

#: Interpolation methods: linear on a Delaunay triangulation ("bilinear"),
#: Clough-Tocher ("bicubic") and radial basis functions (thin-plate spline by default).
INTERPOLATION_METHODS = ("linear", "cubic", "rbf")

#: RBF kernels scipy offers that need no shape parameter.
RBF_KERNELS = ("thin_plate_spline", "cubic", "quintic", "linear")

#: Grid half-width as a multiple of the largest electrode angle of the 64-channel 10-10 set.
_GRID_MARGIN = 1.05


def check_interpolation(method: str) -> None:
    """Refuse an unknown interpolation method with a one-line error."""
    if method not in INTERPOLATION_METHODS:
        raise BrainForgeError(f"Unknown interpolation {method!r}; use one of {', '.join(INTERPOLATION_METHODS)}.")


@dataclass(frozen=True, eq=False)
class Montage:
    """Channel names and 3D positions, the montage a network is applied to.

    Parameters
    ----------
    ch_names : tuple of str
        Channel names, in the order of the EEG's channel axis.
    ch_pos_mm : array, shape (n_channels, 3)
        Positions in the template frame (fsaverage surface RAS), mm, as in
        :class:`brainforge.anatomy.HeadModel`.
    """

    ch_names: tuple[str, ...]
    ch_pos_mm: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        pos = np.asarray(self.ch_pos_mm, float)
        names = tuple(str(n) for n in self.ch_names)
        if pos.shape != (len(names), 3):
            raise BrainForgeError(f"ch_pos_mm must have shape ({len(names)}, 3), got {pos.shape}.")
        if not np.isfinite(pos).all():
            raise BrainForgeError("Some channel positions are NaN or infinite; set a montage with positions.")
        if len(set(names)) != len(names):
            raise BrainForgeError("Channel names must be unique.")
        object.__setattr__(self, "ch_names", names)
        object.__setattr__(self, "ch_pos_mm", pos)

    @classmethod
    def from_head_model(cls, head) -> Montage:
        """Return the montage of a :class:`~brainforge.anatomy.HeadModel`."""
        return cls(tuple(head.ch_names), head.ch_pos_mm)

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return len(self.ch_names)

    @property
    def key(self) -> tuple:
        """Hashable identity: names and positions rounded to 1 µm."""
        return self.ch_names, np.round(self.ch_pos_mm, 3).tobytes()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Montage) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def pick(self, index: Sequence[int]) -> Montage:
        """Return the montage of the channels at ``index``."""
        index = np.asarray(index, int)
        return Montage(tuple(self.ch_names[i] for i in index), self.ch_pos_mm[index])

    def __len__(self) -> int:
        return self.n_channels


@lru_cache(maxsize=1)
def projection_frame() -> tuple[np.ndarray, float]:
    """Centre of the projection and half-width of the grid.

    Fixed for every montage, so an electrode lands on the same pixel whatever
    the other channels are: the centre is the sphere fitted to the dense 10-05
    montage on the template scalp (mm); the grid spans +-1.05 times the largest
    angle from the vertex of the 64-electrode 10-10 set (radians). Lower
    electrodes (T9, TP11, ...) fall outside the grid but still shape the map.

    Returns
    -------
    centre_mm : array, shape (3,)
    half_width_rad : float
    """
    from ..anatomy.montage import CHANNEL_SUBSETS, _dense_electrodes, _head_centre

    dense = _dense_electrodes()
    centre = _head_centre(dense.pos)
    ten_ten = dense.pick(CHANNEL_SUBSETS["1010-64"]).pos
    angles = np.linalg.norm(azimuthal_equidistant(ten_ten, centre), axis=1)
    return centre, float(_GRID_MARGIN * angles.max())


def azimuthal_equidistant(pos_mm: np.ndarray, centre_mm: np.ndarray | None = None) -> np.ndarray:
    """Azimuthal equidistant projection around the vertex (+z).

    A point at angle ``theta`` from the vertex, seen from ``centre_mm``, and
    azimuth ``phi`` maps to ``theta * (cos phi, sin phi)``: distances from the
    vertex are preserved along great circles. x points right, y to the nose.

    Parameters
    ----------
    pos_mm : array, shape (n, 3)
        Positions, mm (RAS).
    centre_mm : array, shape (3,) | None
        Projection centre; the template's by default (:func:`projection_frame`).

    Returns
    -------
    xy : array, shape (n, 2)
        Planar coordinates, radians of arc.
    """
    if centre_mm is None:
        centre_mm = projection_frame()[0]
    rel = np.asarray(pos_mm, float) - centre_mm
    norm = np.linalg.norm(rel, axis=1)
    if (norm == 0).any():
        raise BrainForgeError("An electrode sits at the projection centre; are the positions in mm?")
    unit = rel / norm[:, None]
    theta = np.arccos(np.clip(unit[:, 2], -1.0, 1.0))
    phi = np.arctan2(unit[:, 1], unit[:, 0])
    return np.column_stack([theta * np.cos(phi), theta * np.sin(phi)])


def grid_points(size: int, half_width: float | None = None) -> np.ndarray:
    """Pixel centres of a ``size`` x ``size`` grid, row-major, row 0 at the front (nose up).

    Returns
    -------
    points : array, shape (size * size, 2)
        Planar coordinates of every pixel, radians of arc.
    """
    if half_width is None:
        half_width = projection_frame()[1]
    axis = np.linspace(-half_width, half_width, size)
    xx, yy = np.meshgrid(axis, axis[::-1])
    return np.column_stack([xx.ravel(), yy.ravel()])


def interpolation_matrix(
    points: np.ndarray, grid: np.ndarray, method: str = "linear", *, rbf_kernel: str = "thin_plate_spline"
) -> tuple[np.ndarray, np.ndarray]:
    """Matrix that maps channel values to pixel values.

    Parameters
    ----------
    points : array, shape (n_channels, 2)
        Projected electrode positions.
    grid : array, shape (n_pixels, 2)
        Pixel positions.
    method : ``"linear"`` | ``"cubic"`` | ``"rbf"``
        Linear on the Delaunay triangulation (as ``griddata(method="linear")``),
        Clough-Tocher (as ``griddata(method="cubic")``) or radial basis
        functions (``scipy.interpolate.RBFInterpolator``).
    rbf_kernel : str
        RBF kernel (thin-plate spline by default, with a linear polynomial).

    Returns
    -------
    matrix : array, shape (n_pixels, n_channels)
        Pixel values are ``matrix @ channel_values``; zero outside the mask.
    mask : array of bool, shape (n_pixels,)
        Pixels inside the electrodes' convex hull (the head mask).
    """
    check_interpolation(method)
    if rbf_kernel not in RBF_KERNELS:
        raise BrainForgeError(f"Unknown RBF kernel {rbf_kernel!r}; use one of {', '.join(RBF_KERNELS)}.")
    n_channels = len(points)
    if n_channels < 4:
        raise BrainForgeError(f"Only {n_channels} channel(s) with positions; a scalp map needs at least 4.")
    rounded = np.round(points, 9)
    if len(np.unique(rounded, axis=0)) < n_channels:
        raise BrainForgeError("Two channels share one position; drop duplicates or fix the montage.")
    try:
        tri = Delaunay(points)
    except QhullError as err:
        raise BrainForgeError("The electrodes are collinear after projection; a scalp map needs a 2D spread.") from err
    simplex = tri.find_simplex(grid)
    mask = simplex >= 0
    matrix = np.zeros((len(grid), n_channels))
    if method == "linear":
        # Interpolating the identity gives each pixel's barycentric weights on its triangle.
        matrix[mask] = LinearNDInterpolator(tri, np.eye(n_channels))(grid[mask])
    elif method == "cubic":
        # Clough-Tocher estimates gradients with a global iterative solve; run it
        # to a tight tolerance so the matrix equals per-map interpolation.
        interp = CloughTocher2DInterpolator(tri, np.eye(n_channels), tol=1e-10, maxiter=2000)
        matrix[mask] = interp(grid[mask])
    else:
        interp = RBFInterpolator(points, np.eye(n_channels), kernel=rbf_kernel, degree=1)
        matrix[mask] = interp(grid[mask])
    return matrix, mask


class Topomap:
    """Scalp maps of one montage on a square grid, applied as one matrix product.

    Parameters
    ----------
    montage : Montage
        Channels and positions.
    method : ``"linear"`` | ``"cubic"`` | ``"rbf"``
        Interpolation.
    size : int
        Grid side, pixels.
    rbf_kernel : str
        Kernel of the RBF method.

    Attributes
    ----------
    matrix : torch.Tensor, shape (size * size, n_channels)
        Interpolation matrix, float32.
    mask : torch.Tensor of bool, shape (size, size)
        Pixels inside the head mask (the electrodes' convex hull).
    """

    def __init__(self, montage: Montage, method: str = "linear", size: int = 64, rbf_kernel: str = "thin_plate_spline"):
        if size < 4:
            raise BrainForgeError(f"Topomap size must be at least 4 pixels, got {size}.")
        self.montage = montage
        self.method = method
        self.size = int(size)
        points = azimuthal_equidistant(montage.ch_pos_mm)
        matrix, mask = interpolation_matrix(points, grid_points(self.size), method, rbf_kernel=rbf_kernel)
        self.points = points
        self.matrix = torch.from_numpy(matrix.astype(np.float32))
        self.mask = torch.from_numpy(mask.reshape(self.size, self.size))
        self._transposed = {}

    def __call__(self, eeg: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Interpolate ``eeg`` (..., n_channels) -> (..., size, size)."""
        eeg = torch.as_tensor(eeg)
        if eeg.shape[-1] != self.montage.n_channels:
            raise BrainForgeError(f"EEG has {eeg.shape[-1]} channels but the montage has {self.montage.n_channels}.")
        key = (eeg.device, eeg.dtype)
        if key not in self._transposed:
            self._transposed[key] = self.matrix.T.to(device=eeg.device, dtype=eeg.dtype).contiguous()
        maps = eeg @ self._transposed[key]
        return maps.reshape(*eeg.shape[:-1], self.size, self.size)


def make_topomap(montage: Montage, method: str = "linear", size: int = 64, rbf_kernel: str = "thin_plate_spline"):
    """Return the (cached) :class:`Topomap` of a montage; repeated calls cost a dictionary lookup.

    Montages with the same names and positions (to 1 µm) share one topomap;
    the 512 most recently used are kept (``functools.lru_cache``).
    """
    return _cached_topomap(montage, method, int(size), rbf_kernel)


@lru_cache(maxsize=512)
def _cached_topomap(montage: Montage, method: str, size: int, rbf_kernel: str) -> Topomap:
    return Topomap(montage, method, size, rbf_kernel)


#: Regularization of the spherical splines that fill a sparse montage in. MNE's ``interpolate_bads``
#: uses 1e-5; of 1e-8 to 1e-4, 1e-6 gave the default network its lowest mean error at 16 channels
#: (0.36 mm below 1e-8), 0.16 mm more than 1e-8 at 21 and 32 (validation drawn through the
#: training forward bank; docs/models.md, "Sparse montages").
SPLINE_ALPHA = 1e-6


#: Stiffness (order m) and number of Legendre terms of the spline kernel; MNE-Python's values.
SPLINE_STIFFNESS = 4
SPLINE_LEGENDRE_TERMS = 50


def spherical_spline_kernel(cos_angle: np.ndarray, stiffness: int = SPLINE_STIFFNESS) -> np.ndarray:
    """Perrin's spherical-spline function g of the cosine of the angle between two electrodes.

    ``g(x) = 1 / (4 pi) * sum_n (2n + 1) / (n (n + 1))^m P_n(x)`` over the first
    ``SPLINE_LEGENDRE_TERMS`` Legendre polynomials ``P_n`` (Perrin et al. 1989, eq. 3).

    Parameters
    ----------
    cos_angle : array
        Cosines of the angles between electrode directions.
    stiffness : int
        The spline's order m (4: MNE-Python's and Perrin's choice).

    Returns
    -------
    g : array, same shape as ``cos_angle``
    """
    degrees = np.arange(1, SPLINE_LEGENDRE_TERMS + 1, dtype=float)
    coefficients = (2 * degrees + 1) / (degrees**stiffness * (degrees + 1) ** stiffness * 4 * np.pi)
    return np.polynomial.legendre.legval(cos_angle, np.concatenate([[0.0], coefficients]))


def spherical_spline_matrix(
    from_pos_mm: np.ndarray, to_pos_mm: np.ndarray, origin_mm: np.ndarray, alpha: float = SPLINE_ALPHA
) -> np.ndarray:
    """Spherical-spline interpolation (Perrin et al. 1989) from one set of electrodes to another.

    The matrix MNE-Python's ``interpolate_bads`` applies to EEG (there with
    ``alpha=1e-5``; written out here, since MNE keeps it private, and tested
    against ``interpolate_bads``): electrode directions from ``origin_mm`` are
    projected on the unit sphere, so only angles matter.

    Parameters
    ----------
    from_pos_mm : array, shape (n_from, 3)
        Positions of the electrodes that hold data, mm.
    to_pos_mm : array, shape (n_to, 3)
        Positions to interpolate to, mm.
    origin_mm : array, shape (3,)
        Centre of the sphere, mm.
    alpha : float
        Regularization added to the spline system's diagonal (0: exact at the electrodes).

    Returns
    -------
    matrix : array, shape (n_to, n_from)
        Interpolated values are ``matrix @ values``.
    """
    from scipy.linalg import pinv

    origin = np.asarray(origin_mm, float)
    from_dir = _unit_directions(np.asarray(from_pos_mm, float) - origin)
    to_dir = _unit_directions(np.asarray(to_pos_mm, float) - origin)
    n_from = len(from_dir)
    if n_from < 3:
        raise BrainForgeError(f"Spherical splines need 3 or more electrodes, got {n_from}.")
    kernel_from = spherical_spline_kernel(from_dir @ from_dir.T)
    kernel_from.flat[:: n_from + 1] += alpha
    # The spline's constant term is a Lagrange multiplier: values = kernel @ weights + c, sum(weights) = 0.
    system = np.block([[kernel_from, np.ones((n_from, 1))], [np.ones((1, n_from)), np.zeros((1, 1))]])
    kernel_to = np.hstack([spherical_spline_kernel(to_dir @ from_dir.T), np.ones((len(to_dir), 1))])
    return kernel_to @ pinv(system)[:, :-1]


def _unit_directions(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def montage_upsampling(ch_pos_mm: np.ndarray, montage: Montage) -> np.ndarray:
    """Spherical-spline matrix (montage channels, channels) from electrodes at ``ch_pos_mm`` onto ``montage``'s.

    How a map-based network sees a cap sparser than its training montage
    (``LearnedSolver(upsample=True)``, ``brainforge train --subset-upsampling``).
    The sphere is centred on the centroid of ``montage``'s electrodes (for the
    64-channel 10-10 template 31 mm above the centre of the sphere fitted to
    them; against that centre, 0.3 mm lower mean error at 16 channels, 0.15 at
    21 and 0.27 higher at 32 on validation data: docs/models.md, "Sparse montages").

    Parameters
    ----------
    ch_pos_mm : array, shape (n_channels, 3)
        Positions of the recorded electrodes, mm, in the frame of ``montage``.
    montage : Montage
        The montage to interpolate onto.

    Returns
    -------
    matrix : array, shape (montage.n_channels, n_channels)
    """
    return spherical_spline_matrix(ch_pos_mm, montage.ch_pos_mm, montage.ch_pos_mm.mean(axis=0))
