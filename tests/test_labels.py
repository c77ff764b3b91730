"""Anatomical region names from TVB's Kötter-Wanke map moved onto fsaverage5, checked against Brodmann areas."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from brainforge.anatomy import region_labels
from brainforge.anatomy.labels import KOTTER_WANKE, fit_distance_mm, vertex_labels

#: Brodmann areas by lobe (PALS-B12 on fsaverage5 also labels some cortex by lobe or visuotopic area).
BRODMANN_LOBES = {
    "frontal": [4, 6, 8, 9, 10, 11, 44, 45, 46, 47],
    "parietal": [1, 2, 3, 5, 7, 39, 40, 43],
    "temporal": [20, 21, 22, 37, 38, 41, 42],
    "occipital": [17, 18, 19],
    "limbic": [23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36],
}


def test_every_region_has_a_name_lobe_and_side(head64):
    labels = region_labels(head64)
    assert len(labels) == head64.n_regions
    cortical = [label for label, deep in zip(labels, head64.region_is_deep, strict=True) if not deep]
    assert all(label.name and label.lobe for label in labels)
    lobes = Counter(label.lobe for label in cortical)
    assert set(lobes) == {"frontal", "parietal", "temporal", "occipital", "limbic", "insula"}
    assert np.median([label.share for label in cortical]) > 0.75  # regions mostly fall inside one atlas area
    for name, label in zip(head64.region_names, labels, strict=True):
        if name.startswith("lh."):
            assert label.name.startswith("left ") and label.label.startswith("l")
        elif name.startswith("rh."):
            assert label.name.startswith("right ") and label.label.startswith("r")
        else:
            assert label.lobe == "subcortical"
    centres = head64.region_centres_mm
    lobe = np.array([label.lobe for label in labels])
    assert (lobe[centres[:, 1] < -80] == "occipital").mean() > 0.9  # the occipital pole
    assert (lobe[centres[:, 1] > 50] == "frontal").mean() > 0.9  # the frontal pole
    assert fit_distance_mm() < 4.0  # TVB's cortex lies on fsaverage5 after the fit


def test_lobes_agree_with_brodmann_areas_on_fsaverage5(deepsif_dir):
    """Vertex by vertex against PALS-B12 Brodmann areas (the DeepSIF reference folder; evaluation only)."""
    nibabel = pytest.importorskip("nibabel")
    labels, names = vertex_labels()
    ours = np.array([KOTTER_WANKE[names[index][1:]][1] for index in labels])
    table = {f"Brodmann.{n}": lobe for lobe, areas in BRODMANN_LOBES.items() for n in areas}
    table.update({f"LOBE.{lobe.upper()}": lobe for lobe in BRODMANN_LOBES})
    theirs = []
    for hemi in ("lh", "rh"):
        vertex, _, area_names = nibabel.freesurfer.read_annot(
            deepsif_dir / "fsaverage5" / "label" / f"{hemi}.PALS_B12_Brodmann.annot"
        )
        area_names = [n.decode() for n in area_names]
        for index in vertex:
            name = area_names[index] if index >= 0 else ""
            theirs.append("occipital" if name.startswith("Visuotopic") else table.get(name, ""))
    theirs = np.array(theirs)
    scored = (theirs != "") & (ours != "insula")  # PALS-B12 has no insula area
    assert scored.sum() > 15_000
    assert (ours[scored] == theirs[scored]).mean() > 0.78  # 0.83 measured
    for lobe in ("frontal", "temporal", "parietal"):
        assert (ours[scored & (theirs == lobe)] == lobe).mean() > 0.8  # 0.96, 0.91, 0.86 measured
