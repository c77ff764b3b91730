"""The fsaverage5 cortex that nilearn ships, and its default parcellation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra

from .._cache import cached, get_cache_dir, hash_inputs
from .._errors import BrainForgeError
from ._geometry import mesh_edges, vertex_areas, vertex_normals

HEMIS = ("lh", "rh")
_PARCELLATION_VERSION = "parc-1"


@dataclass(frozen=True)
class Cortex:
    """Both hemispheres of a cortical surface (left first).

    Attributes
    ----------
    pos : array, shape (n_vertices, 3)
        Vertex positions in fsaverage surface RAS, mm.
    nn : array, shape (n_vertices, 3)
        Outward unit normals of the surface.
    tris : array, shape (n_triangles, 3)
        Triangles indexing ``pos`` (right hemisphere offset by ``n_left``).
    n_left : int
        Number of left-hemisphere vertices; they come first.
    sphere : array, shape (n_vertices, 3)
        Unit vectors of each vertex on the registration sphere.
    """

    pos: np.ndarray
    nn: np.ndarray
    tris: np.ndarray
    n_left: int
    sphere: np.ndarray

    @property
    def hemisphere(self) -> np.ndarray:
        """0 for left, 1 for right, per vertex."""
        return (np.arange(len(self.pos)) >= self.n_left).astype(np.int8)

    @property
    def vertex_area(self) -> np.ndarray:
        """Area attributed to each vertex, mm^2."""
        return vertex_areas(self.pos, self.tris)

    @property
    def adjacency(self) -> sp.csr_matrix:
        """Vertex adjacency of the mesh (the hemispheres are not connected)."""
        return mesh_edges(self.tris, len(self.pos))


def load_fsaverage5_cortex() -> Cortex:
    """Load nilearn's offline fsaverage5 pial surface (2 x 10242 vertices).

    Vertex ``i`` of each hemisphere is vertex ``i`` of FreeSurfer's fsaverage
    (ico-5 subsampling), so source estimates on these vertices are valid
    :class:`mne.SourceEstimate` objects for ``subject="fsaverage"``.

    Returns
    -------
    cortex : Cortex
        Pial positions in mm with outward normals.
    """
    from nilearn import datasets

    mesh = datasets.load_fsaverage("fsaverage5")
    pos, tris, sphere = [], [], []
    offset = 0
    for part in ("left", "right"):
        pial = mesh["pial"].parts[part]
        coords = np.asarray(pial.coordinates, float)
        pos.append(coords)
        tris.append(np.asarray(pial.faces, np.int64) + offset)
        sph = np.asarray(mesh["sphere"].parts[part].coordinates, float)
        sphere.append(sph / np.linalg.norm(sph, axis=1, keepdims=True))
        offset += len(coords)
    pos_all = np.vstack(pos)
    tris_all = np.vstack(tris)
    return Cortex(
        pos=pos_all,
        nn=vertex_normals(pos_all, tris_all),
        tris=tris_all,
        n_left=len(pos[0]),
        sphere=np.vstack(sphere),
    )


def _split_regions(n_regions: int, hemi_area: np.ndarray) -> list[int]:
    """Share ``n_regions`` between hemispheres in proportion to their area."""
    left = round(n_regions * hemi_area[0] / hemi_area.sum())
    return [left, n_regions - left]


def _parcellate_hemisphere(
    sphere: np.ndarray, area: np.ndarray, graph: sp.csr_matrix, n_regions: int, seed: int
) -> np.ndarray:
    """Cluster one hemisphere into contiguous regions of similar area.

    Area-weighted k-means on the registration sphere places the region
    centres; every vertex then joins the centre it reaches by the shortest
    path along the mesh, which makes every region connected.
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    kmeans = KMeans(n_clusters=n_regions, n_init=1, random_state=seed, max_iter=100)
    # scikit-learn adds per-thread partial sums in an order that depends on the thread count
    # (last-bit differences in the centres): one OpenMP thread makes it the same everywhere.
    with threadpool_limits(limits=1, user_api="openmp"):
        kmeans.fit(sphere, sample_weight=area)
    centres = kmeans.cluster_centers_
    seeds = np.array([np.argmin(((sphere - c) ** 2).sum(axis=1)) for c in centres])
    seeds = np.unique(seeds)
    if len(seeds) < n_regions:
        raise BrainForgeError(
            f"Could not place {n_regions} distinct regions on a hemisphere of {len(sphere)} vertices."
        )
    _, _, sources = dijkstra(graph, indices=seeds, min_only=True, return_predecessors=True)
    # ``sources`` holds the seed vertex each vertex is nearest to; number the
    # regions by seed vertex so the labels do not depend on k-means' order.
    return np.searchsorted(seeds, sources)


def make_parcellation(cortex: Cortex, n_regions: int = 1000, *, seed: int = 0) -> np.ndarray:
    """Split the cortex into ``n_regions`` contiguous regions of similar area.

    Regions never cross hemispheres; left-hemisphere regions come first.
    The result is deterministic for a given surface, ``n_regions`` and
    ``seed``, and is cached on disk.

    Parameters
    ----------
    cortex : Cortex
        The surface to parcellate.
    n_regions : int
        Total number of cortical regions (both hemispheres).
    seed : int
        Seed of the k-means initialization.

    Returns
    -------
    region : array of int, shape (n_vertices,)
        Region index of every vertex, ``0 .. n_regions - 1``.
    """
    n_vertices = len(cortex.pos)
    if not 2 <= n_regions <= n_vertices // 4:
        raise BrainForgeError(f"n_regions must be between 2 and {n_vertices // 4} for this cortex, got {n_regions}.")
    key = hash_inputs(_PARCELLATION_VERSION, cortex.pos, cortex.tris, cortex.sphere, n_regions, seed)
    path = get_cache_dir() / "parcellation" / f"{key}.npy"
    return cached(
        path,
        build=lambda: _build_parcellation(cortex, n_regions, seed),
        save=lambda region, tmp: np.save(tmp, region),
        load=lambda p: _checked_parcellation(np.load(p, allow_pickle=False), n_vertices, n_regions),
    )


def _checked_parcellation(region: np.ndarray, n_vertices: int, n_regions: int) -> np.ndarray:
    if region.shape != (n_vertices,) or region.min() != 0 or region.max() != n_regions - 1:
        raise ValueError("parcellation does not match the cortex")
    return region


def _build_parcellation(cortex: Cortex, n_regions: int, seed: int) -> np.ndarray:
    area = cortex.vertex_area
    hemi = cortex.hemisphere
    hemi_area = np.array([area[hemi == h].sum() for h in (0, 1)])
    # Edge weights: distances on the pial surface, so regions follow the folds.
    adjacency = cortex.adjacency.tocoo()
    lengths = np.linalg.norm(cortex.pos[adjacency.row] - cortex.pos[adjacency.col], axis=1)
    graph = sp.csr_matrix((lengths, (adjacency.row, adjacency.col)), shape=adjacency.shape)
    region = np.empty(len(cortex.pos), np.int64)
    offset = 0
    for h, n_hemi in enumerate(_split_regions(n_regions, hemi_area)):
        idx = np.flatnonzero(hemi == h)
        sub = graph[idx][:, idx]
        region[idx] = offset + _parcellate_hemisphere(cortex.sphere[idx], area[idx], sub, n_hemi, seed)
        offset += n_hemi
    return region


def region_adjacency(vertex_adjacency: sp.spmatrix, region: np.ndarray, n_regions: int) -> sp.csr_matrix:
    """Regions that share at least one mesh edge (symmetric, no self loops)."""
    coo = vertex_adjacency.tocoo()
    a, b = region[coo.row], region[coo.col]
    keep = a != b
    adj = sp.coo_matrix((np.ones(keep.sum(), bool), (a[keep], b[keep])), shape=(n_regions, n_regions)).tocsr()
    adj.data[:] = True
    return adj


def is_contiguous(vertex_adjacency: sp.spmatrix, region: np.ndarray) -> np.ndarray:
    """For every region label, whether its vertices form one connected piece."""
    adjacency = sp.csr_matrix(vertex_adjacency)
    labels = np.unique(region)
    out = np.empty(len(labels), bool)
    for i, label in enumerate(labels):
        idx = np.flatnonzero(region == label)
        n_comp = connected_components(adjacency[idx][:, idx], directed=False)[0]
        out[i] = n_comp == 1
    return out
