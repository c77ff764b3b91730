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

    Vectorised Moller-Trumbore intersection. Taking the farthest hit gives
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
    eps = 1e-12
    for start in range(0, len(directions), chunk):
        d = directions[start : start + chunk, None, :]
        pvec = np.cross(d, edge2[None])
        det = np.einsum("rtk,tk->rt", pvec, edge1)
        ok = np.abs(det) > eps
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        tvec = -v0[None]
        u = np.einsum("rtk,rtk->rt", np.broadcast_to(tvec, pvec.shape), pvec) * inv
        qvec = np.cross(np.broadcast_to(tvec, pvec.shape), edge1[None])
        v = np.einsum("rtk,rtk->rt", np.broadcast_to(d, qvec.shape), qvec) * inv
        t = np.einsum("tk,rtk->rt", edge2, qvec) * inv
        hit = ok & (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9) & (t > 0)
        t = np.where(hit, t, -np.inf)
        best_tri = t.argmax(axis=1)
        rows = np.arange(len(best_tri))
        best = t[rows, best_tri]
        found = np.isfinite(best)
        best[~found] = np.nan
        out[start : start + chunk] = best
        triangle[start : start + chunk] = np.where(found, best_tri, -1)
        bu = np.clip(u[rows, best_tri], 0.0, 1.0)
        bv = np.clip(v[rows, best_tri], 0.0, 1.0)
        total = np.maximum(bu + bv, 1.0)  # keep the weights inside the triangle
        bu, bv = bu / total, bv / total
        weights[start : start + chunk] = np.where(found[:, None], np.stack([1.0 - bu - bv, bu, bv], axis=1), 0.0)
    return out, triangle, weights
