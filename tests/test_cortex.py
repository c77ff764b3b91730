import numpy as np
import pytest

from brainforge import BrainForgeError
from brainforge.anatomy.cortex import is_contiguous, make_parcellation
from brainforge.anatomy.deep import make_deep_sources


def test_fsaverage5_cortex(cortex):
    assert cortex.pos.shape == (20484, 3) and cortex.n_left == 10242
    np.testing.assert_allclose(np.linalg.norm(cortex.nn, axis=1), 1.0)
    assert (cortex.pos[: cortex.n_left, 0] < 5).mean() > 0.99  # left hemisphere has x < 0
    # Outward normals: at the lateral convexity they point away from the midline.
    lateral = np.abs(cortex.pos[:, 0]) > 60
    assert (np.sign(cortex.nn[lateral, 0]) == np.sign(cortex.pos[lateral, 0])).mean() > 0.9


@pytest.fixture(scope="module")
def parcellation(cortex):
    return make_parcellation(cortex, 1000)


def test_parcellation_contiguous_and_within_hemispheres(cortex, parcellation):
    assert parcellation.min() == 0 and parcellation.max() == 999
    assert len(np.unique(parcellation)) == 1000
    assert is_contiguous(cortex.adjacency, parcellation).all()
    left = set(parcellation[: cortex.n_left])
    right = set(parcellation[cortex.n_left :])
    assert not left & right


def test_parcellation_regions_have_similar_area(cortex, parcellation):
    area = np.bincount(parcellation, weights=cortex.vertex_area)
    assert area.std() / area.mean() < 0.3
    assert area.max() / area.min() < 4


def test_parcellation_is_deterministic(cortex, parcellation, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINFORGE_CACHE", str(tmp_path))  # force a fresh computation
    np.testing.assert_array_equal(make_parcellation(cortex, 1000), parcellation)


def test_parcellation_size_is_configurable(cortex):
    region = make_parcellation(cortex, 200)
    assert len(np.unique(region)) == 200
    assert is_contiguous(cortex.adjacency, region).all()
    with pytest.raises(BrainForgeError, match="n_regions"):
        make_parcellation(cortex, 1)


def test_deep_structures_cover_the_required_nuclei(surfaces):
    deep = make_deep_sources()
    for side in ("Left", "Right"):
        for structure in ("Thalamus", "Caudate", "Putamen", "Hippocampus", "Amygdala"):
            assert f"{side}-{structure}" in deep.names
    counts = np.bincount(deep.region, minlength=len(deep.names))
    assert (counts > 0).all()
    assert len(np.unique(deep.pos, axis=0)) == len(deep.pos)  # no point in two structures
    # Thalamus is medial to putamen, hippocampus below both.
    centre = {n: deep.pos[deep.region == i].mean(axis=0) for i, n in enumerate(deep.names)}
    assert abs(centre["Left-Thalamus"][0]) < abs(centre["Left-Putamen"][0])
    assert centre["Left-Hippocampus"][2] < centre["Left-Putamen"][2]
    # Every deep point lies well inside the inner skull.
    directions = deep.pos - surfaces.centre
    skull_dist = np.linalg.norm(surfaces.inner_skull - surfaces.centre, axis=1)
    assert np.linalg.norm(directions, axis=1).max() < skull_dist.min()
