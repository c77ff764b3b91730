"""Deep (subcortical) sources as labelled volume points.

Coordinates come from the Seitzman et al. (2020) 300-ROI set that nilearn
ships offline (``nilearn/datasets/data/seitzman_2018_ROIs_300inVol_MNI_allInfo.txt``
with ``seitzman_2018_ROIs_anatomicalLabels.txt``). Its subcortical ROIs are MNI
coordinates labelled hippocampus, amygdala, basal ganglia and thalamus; we
split the basal-ganglia ROIs into caudate, putamen, pallidum and accumbens by
position. fsaverage surface RAS is MNI305 space, which is within a few mm of
the MNI152 space of those coordinates, so they are used as they are.

Each structure is the union of capsules around the segments joining its ROI
centres (a sphere for a single centre), sampled on a regular grid. A grid
point joins the structure whose capsule it lies deepest in, so structures
never share points.

References
----------
Seitzman BA, et al. (2020). A set of functionally-defined brain regions with
improved representation of the subcortex and cerebellum. NeuroImage 206,
116290.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

#: Radius (mm) of the capsule around each structure's ROI centres.
STRUCTURE_RADIUS_MM: dict[str, float] = {
    "Thalamus": 6.0,
    "Caudate": 4.5,
    "Putamen": 5.0,
    "Pallidum": 4.0,
    "Accumbens-area": 4.0,
    "Hippocampus": 4.5,
    "Amygdala": 5.0,
}

_SEITZMAN_CODES = {3: "hippocampus", 4: "amygdala", 5: "basal_ganglia", 6: "thalamus"}


@dataclass(frozen=True)
class DeepSources:
    """Volume source points of subcortical structures.

    Attributes
    ----------
    pos : array, shape (n_points, 3)
        Positions in fsaverage surface RAS (~MNI305), mm.
    region : array of int, shape (n_points,)
        Index into ``names`` of each point.
    names : list of str
        FreeSurfer aseg-style names, e.g. ``"Left-Thalamus"``.
    """

    pos: np.ndarray
    region: np.ndarray
    names: list[str]


def _seitzman_files() -> tuple[Path, Path]:
    import nilearn

    folder = Path(nilearn.__file__).parent / "datasets" / "data"
    return (
        folder / "seitzman_2018_ROIs_300inVol_MNI_allInfo.txt",
        folder / "seitzman_2018_ROIs_anatomicalLabels.txt",
    )


def _structure_of(kind: str, xyz: np.ndarray) -> str:
    """Name the structure of one Seitzman subcortical ROI."""
    if kind == "basal_ganglia":
        lateral = abs(xyz[0])
        if lateral >= 24:
            return "Putamen"
        if lateral >= 17:
            return "Pallidum"
        return "Accumbens-area" if xyz[2] < 0 else "Caudate"
    return {"hippocampus": "Hippocampus", "amygdala": "Amygdala", "thalamus": "Thalamus"}[kind]


def subcortical_roi_centres() -> dict[str, np.ndarray]:
    """ROI centres (mm) of each lateralized subcortical structure.

    Returns
    -------
    centres : dict
        ``"Left-Thalamus" -> array (n_roi, 3)`` and so on, sorted by name.
    """
    info_file, label_file = _seitzman_files()
    table = np.loadtxt(info_file, skiprows=1, usecols=(0, 1, 2))
    codes = np.loadtxt(label_file, skiprows=1, dtype=int)
    out: dict[str, list[np.ndarray]] = {}
    for xyz, code in zip(table, codes, strict=True):
        kind = _SEITZMAN_CODES.get(int(code))
        if kind is None:
            continue
        side = "Left" if xyz[0] < 0 else "Right"
        out.setdefault(f"{side}-{_structure_of(kind, xyz)}", []).append(xyz)
    return {name: np.array(out[name]) for name in sorted(out)}


def _capsule_distance(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Distance from each point to the union of segments between ``centres``."""
    if len(centres) == 1:
        return np.linalg.norm(points - centres[0], axis=1)
    best = np.full(len(points), np.inf)
    for a, b in combinations(centres, 2):
        seg = b - a
        t = np.clip((points - a) @ seg / (seg @ seg), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * seg), axis=1))
    return best


def make_deep_sources(spacing_mm: float = 4.0) -> DeepSources:
    """Sample the subcortical structures on a regular grid.

    Parameters
    ----------
    spacing_mm : float
        Grid spacing in mm.

    Returns
    -------
    deep : DeepSources
        Points of 14 structures: left and right thalamus, caudate, putamen,
        pallidum, accumbens, hippocampus and amygdala.
    """
    centres = subcortical_roi_centres()
    names = list(centres)
    all_centres = np.vstack(list(centres.values()))
    margin = max(STRUCTURE_RADIUS_MM.values()) + spacing_mm
    lo = np.floor((all_centres.min(axis=0) - margin) / spacing_mm) * spacing_mm
    hi = all_centres.max(axis=0) + margin
    axes = [np.arange(lo[k], hi[k], spacing_mm) for k in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    # Depth inside each structure's capsule (positive inside).
    depth = np.stack(
        [STRUCTURE_RADIUS_MM[name.split("-", 1)[1]] - _capsule_distance(grid, centres[name]) for name in names],
        axis=1,
    )
    owner = depth.argmax(axis=1)
    inside = depth.max(axis=1) >= 0
    pos, region = grid[inside], owner[inside]
    # A structure thinner than the grid still gets its nearest grid point.
    missing = np.setdiff1d(np.arange(len(names)), region)
    if len(missing):
        extra = [grid[np.argmax(depth[:, m])] for m in missing]
        pos = np.vstack([pos, extra])
        region = np.concatenate([region, missing])
    order = np.lexsort((pos[:, 2], pos[:, 1], pos[:, 0], region))
    return DeepSources(pos=pos[order], region=region[order], names=names)
