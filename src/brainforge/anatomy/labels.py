"""Anatomical names for regions: the Kötter-Wanke regional map of TVB's 76-region cortex, moved onto fsaverage5.

tvb-data ships (offline) a 16,384-vertex cortex surface with a per-vertex
map onto TVB's 76 cortical regions (38 per hemisphere, the regional map of
Kötter & Wanke 2005 that TVB's default connectome uses). That surface lies
in its own frame (x anterior, y left, z superior). :func:`vertex_labels`
turns it into RAS, fits it onto the fsaverage5 pial surface with an
iterative closest-point similarity transform (rotation, one scale,
translation), and gives every fsaverage5 vertex the label of the nearest
TVB vertex of the same hemisphere. :func:`region_labels` names each region
of a head model after the label that covers most of its vertices, with a
lobe and the share of the region that label covers.
"""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The 38 region abbreviations of TVB's 76-region map: full name and lobe.
KOTTER_WANKE = {
    "A1": ("primary auditory cortex", "temporal"),
    "A2": ("secondary auditory cortex", "temporal"),
    "AMYG": ("amygdala", "limbic"),
    "CC": ("cingulate cortex (medial wall)", "limbic"),
    "CCA": ("anterior cingulate cortex", "limbic"),
    "CCP": ("posterior cingulate cortex", "limbic"),
    "CCR": ("retrosplenial cingulate cortex", "limbic"),
    "CCS": ("subgenual cingulate cortex", "limbic"),
    "FEF": ("frontal eye field", "frontal"),
    "G": ("gustatory cortex", "insula"),
    "HC": ("hippocampal cortex", "limbic"),
    "IA": ("anterior insula", "insula"),
    "IP": ("posterior insula", "insula"),
    "M1": ("primary motor cortex", "frontal"),
    "PCI": ("inferior parietal cortex", "parietal"),
    "PCIP": ("intraparietal cortex", "parietal"),
    "PCM": ("medial parietal cortex (precuneus)", "parietal"),
    "PCS": ("superior parietal cortex", "parietal"),
    "PFCCL": ("centrolateral prefrontal cortex", "frontal"),
    "PFCDL": ("dorsolateral prefrontal cortex", "frontal"),
    "PFCDM": ("dorsomedial prefrontal cortex", "frontal"),
    "PFCM": ("medial prefrontal cortex", "frontal"),
    "PFCORB": ("orbitofrontal cortex", "frontal"),
    "PFCPOL": ("frontal pole", "frontal"),
    "PFCVL": ("ventrolateral prefrontal cortex", "frontal"),
    "PHC": ("parahippocampal cortex", "limbic"),
    "PMCDL": ("dorsolateral premotor cortex", "frontal"),
    "PMCM": ("medial premotor cortex (SMA)", "frontal"),
    "PMCVL": ("ventrolateral premotor cortex", "frontal"),
    "S1": ("primary somatosensory cortex", "parietal"),
    "S2": ("secondary somatosensory cortex", "parietal"),
    "TCC": ("central temporal cortex", "temporal"),
    "TCI": ("inferior temporal cortex", "temporal"),
    "TCPOL": ("temporal pole", "temporal"),
    "TCS": ("superior temporal cortex", "temporal"),
    "TCV": ("ventral temporal cortex", "temporal"),
    "V1": ("primary visual cortex", "occipital"),
    "V2": ("secondary visual cortex", "occipital"),
}
#: Where the labels come from (for reports and summaries).
ATLAS = "Kötter-Wanke regional map (TVB 76 regions), moved onto fsaverage5"


@dataclass(frozen=True)
class RegionLabel:
    """The anatomical name of one region.

    Attributes
    ----------
    label : str
        Atlas abbreviation with hemisphere (``"lPFCDL"``), or the deep structure's name.
    name : str
        Full name with hemisphere (``"left dorsolateral prefrontal cortex"``).
    lobe : str
        frontal, parietal, temporal, occipital, insula, limbic or subcortical.
    share : float
        Fraction of the region's vertices that carry the label (1 for deep structures).
    """

    label: str
    name: str
    lobe: str
    share: float


def _tvb_cortex() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """TVB's 16k cortex in RAS mm, its per-vertex region index and the 76 region names."""
    import tvb_data

    from .connectivity import _tvb_data_to_ras, read_connectivity

    root = Path(tvb_data.__file__).parent
    with zipfile.ZipFile(root / "surfaceData" / "cortex_16384.zip") as archive:
        vertices = np.loadtxt(archive.open("vertices.txt"))
    mapping = np.loadtxt(root / "regionMapping" / "regionMapping_16k_76.txt", dtype=int)
    return _tvb_data_to_ras(vertices), mapping, list(read_connectivity("tvb76").labels)


def _similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares scale, rotation and translation taking ``source`` onto ``target`` (Umeyama)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    a, b = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(b.T @ a / len(a))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = float(np.trace(np.diag(sigma) @ d) / a.var(axis=0).sum())
    return scale, rotation, mu_t - scale * rotation @ mu_s


def align_points(source: np.ndarray, target: np.ndarray, n_iter: int = 30, keep: float = 0.9) -> np.ndarray:
    """Fit ``source`` points onto the ``target`` surface points: moments, then trimmed ICP.

    Parameters
    ----------
    source, target : array, shape (n, 3)
        Point clouds, mm.
    n_iter : int
        ICP iterations (similarity transform each).
    keep : float
        Fraction of closest correspondences used per iteration (the rest are outliers).

    Returns
    -------
    moved : array, shape (n_source, 3)
    """
    from scipy.spatial import cKDTree

    # Start from matched centroids and per-axis spreads (both frames are RAS).
    moved = (source - source.mean(axis=0)) * (target.std(axis=0) / source.std(axis=0)) + target.mean(axis=0)
    tree = cKDTree(target)
    for _ in range(n_iter):
        distance, index = tree.query(moved)
        inliers = distance <= np.quantile(distance, keep)
        scale, rotation, shift = _similarity(moved[inliers], target[index[inliers]])
        moved = scale * moved @ rotation.T + shift
    return moved


@functools.cache
def _fsaverage5_labels() -> tuple[np.ndarray, tuple[str, ...], float]:
    """Label index of each fsaverage5 vertex, the 76 names, and the median fit distance, mm."""
    from scipy.spatial import cKDTree

    from .cortex import load_fsaverage5_cortex

    cortex = load_fsaverage5_cortex()
    tvb, mapping, names = _tvb_cortex()
    moved = align_points(tvb, cortex.pos)
    n_left = len(cortex.pos) // 2
    fs_left = np.arange(len(cortex.pos)) < n_left
    tvb_left = np.array([names[m].startswith("l") for m in mapping])
    labels = np.empty(len(cortex.pos), int)
    for fs_side, tvb_side in ((fs_left, tvb_left), (~fs_left, ~tvb_left)):
        tree = cKDTree(moved[tvb_side])
        _, index = tree.query(cortex.pos[fs_side])
        labels[fs_side] = mapping[tvb_side][index]
    fit_mm = float(np.median(cKDTree(cortex.pos).query(moved)[0]))
    return labels, tuple(names), fit_mm


def vertex_labels() -> tuple[np.ndarray, list[str]]:
    """Return the atlas label index of every fsaverage5 vertex (left then right) and the 76 label names."""
    labels, names, _ = _fsaverage5_labels()
    return labels.copy(), list(names)


def fit_distance_mm() -> float:
    """Median distance from the moved TVB cortex to the fsaverage5 pial surface, mm (how well it fits)."""
    return _fsaverage5_labels()[2]


def _describe(abbreviation: str) -> tuple[str, str]:
    side = {"l": "left", "r": "right"}[abbreviation[0]]
    name, lobe = KOTTER_WANKE[abbreviation[1:]]
    return f"{side} {name}", lobe


def region_labels(head) -> list[RegionLabel]:
    """Name every region of a head model: its majority atlas label (cortex) or its structure (deep).

    Parameters
    ----------
    head : HeadModel
        A head model on the fsaverage5 template (``source_region`` maps its
        first 20,484 sources, the fsaverage5 vertices, to regions).

    Returns
    -------
    labels : list of RegionLabel
        One per region, in the head model's region order.
    """
    labels, names, _ = _fsaverage5_labels()
    cortical = head.source_region[: len(labels)]
    # counts[region, label]: vertices of each region that carry each label, in one pass.
    counts = np.bincount(cortical * len(names) + labels, minlength=head.n_regions * len(names))
    counts = counts.reshape(head.n_regions, len(names))
    result = []
    for region, deep in enumerate(head.region_is_deep):
        total = counts[region].sum()
        if deep:
            name = head.region_names[region]
            result.append(RegionLabel(name, name.replace("-", " ").lower(), "subcortical", 1.0))
        elif total == 0:
            result.append(RegionLabel("", "", "", 0.0))
        else:
            best = int(counts[region].argmax())
            full, lobe = _describe(names[best])
            result.append(RegionLabel(names[best], full, lobe, round(float(counts[region, best] / total), 3)))
    return result
