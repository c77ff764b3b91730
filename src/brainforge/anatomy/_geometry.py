"""Small geometric helpers on triangle meshes (positions in mm)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def triangle_normals(pos: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Return the (non-unit) normal of every triangle, length = 2 x area."""
    return np.cross(pos[tris[:, 1]] - pos[tris[:, 0]], pos[tris[:, 2]] - pos[tris[:, 0]])


def vertex_normals(pos: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Return unit vertex normals: area-weighted mean of adjacent triangle normals.

    For a closed or open surface whose triangles are ordered
    counter-clockwise seen from outside (FreeSurfer's convention) the normals
    point outwards.
    """
    tri_nn = triangle_normals(pos, tris)
    nn = np.zeros_like(pos, dtype=float)
    for corner in range(3):
        np.add.at(nn, tris[:, corner], tri_nn)
    norms = np.linalg.norm(nn, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return nn / norms


def vertex_areas(pos: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Area attributed to each vertex: a third of each adjacent triangle (mm^2)."""
    tri_area = 0.5 * np.linalg.norm(triangle_normals(pos, tris), axis=1)
    areas = np.zeros(len(pos))
    for corner in range(3):
        np.add.at(areas, tris[:, corner], tri_area / 3.0)
    return areas


def mesh_edges(tris: np.ndarray, n_vertices: int) -> sp.csr_matrix:
    """Symmetric boolean vertex adjacency of a triangle mesh."""
    rows = np.concatenate([tris[:, 0], tris[:, 1], tris[:, 2]])
    cols = np.concatenate([tris[:, 1], tris[:, 2], tris[:, 0]])
    adj = sp.coo_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(n_vertices, n_vertices))
    adj = (adj + adj.T).tocsr()
    adj.data[:] = True
    return adj


def ray_mesh_distance(
    origin: np.ndarray, directions: np.ndarray, pos: np.ndarray, tris: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """Distance along each ray to its farthest hit of a closed mesh.

    Vectorized Moller-Trumbore intersection. Taking the farthest hit gives
    the outer envelope of the surface as seen from ``origin``, which is
    star-shaped around it.

    Parameters
    ----------
    origin : array, shape (3,)
        Common start point of the rays.
    directions : array, shape (n_rays, 3)
        Unit ray directions.
    pos, tris : arrays
        Mesh vertices and triangles.
    chunk : int
        Rays processed at once (bounds memory).

    Returns
    -------
    distance : array, shape (n_rays,)
        Distance to the hit, ``nan`` for a ray that misses the mesh.
    """
    return ray_mesh_hits(origin, directions, pos, tris, chunk)[0]


def ray_mesh_hits(
    origin: np.ndarray, directions: np.ndarray, pos: np.ndarray, tris: np.ndarray, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Farthest hit of each ray on a closed mesh: distance, triangle and barycentric weights.

    Parameters are those of :func:`ray_mesh_distance`.

    Returns
    -------
    distance : array, shape (n_rays,)
        Distance to the hit, mm; ``nan`` for a ray that misses the mesh.
    triangle : array of int, shape (n_rays,)
        Index of the hit triangle (-1 for a miss).
    weights : array, shape (n_rays, 3)
        Barycentric weights of the hit on the triangle's three vertices
        (they sum to 1); the hit point is ``weights @ pos[tris[triangle]]``.
    """
    v0 = pos[tris[:, 0]] - origin
    edge1 = pos[tris[:, 1]] - pos[tris[:, 0]]
    edge2 = pos[tris[:, 2]] - pos[tris[:, 0]]
    out = np.full(len(directions), np.nan)
    triangle = np.full(len(directions), -1, np.int64)
    weights = np.zeros((len(directions), 3))
    for start in range(0, len(directions), chunk):
        part = slice(start, start + chunk)
        out[part], best, weights[part] = farthest_hits(directions[part, None, :], v0, edge1, edge2)
        triangle[part] = np.where(np.isfinite(out[part]), best, -1)
    return out, triangle, weights


def farthest_hits(
    directions: np.ndarray, v0: np.ndarray, edge1: np.ndarray, edge2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized Moller-Trumbore: each ray's farthest hit among its candidate triangles.

    Parameters
    ----------
    directions : array, shape (n_rays, 1, 3) or (n_rays, k, 3)
        Unit ray directions (all rays start at the origin of ``v0``).
    v0, edge1, edge2 : array, shape (n_triangles, 3) or (n_rays, k, 3)
        First vertex relative to the rays' origin, and the two edges from it,
        of every candidate triangle: shared by all rays, or k per ray.

    Returns
    -------
    distance : array, shape (n_rays,)
        Distance to the farthest hit, ``nan`` for a ray with none.
    candidate : array of int, shape (n_rays,)
        Index of the hit among the candidates (meaningless without a hit).
    weights : array, shape (n_rays, 3)
        Barycentric weights of the hit (zero without a hit).
    """
    pvec = np.cross(directions, edge2)
    det = np.einsum("...c,...c->...", pvec, edge1)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    u = np.einsum("...c,...c->...", -v0, pvec) * inv
    qvec = np.cross(-v0, edge1)
    v = np.einsum("...c,...c->...", directions, qvec) * inv
    t = np.einsum("...c,...c->...", edge2, qvec) * inv
    hit = ok & (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9) & (t > 0)
    t = np.where(hit, t, -np.inf)
    best = t.argmax(axis=1)
    rows = np.arange(len(best))
    distance = t[rows, best]
    found = np.isfinite(distance)
    distance[~found] = np.nan
    bu = np.clip(u[rows, best], 0.0, 1.0)
    bv = np.clip(v[rows, best], 0.0, 1.0)
    total = np.maximum(bu + bv, 1.0)  # keep the weights inside the triangle
    bu, bv = bu / total, bv / total
    weights = np.where(found[:, None], np.stack([1.0 - bu - bv, bu, bv], axis=1), 0.0)
    return distance, best, weights
