import mne
import numpy as np
import pytest

from brainforge import BrainForgeError
from brainforge.anatomy import CHANNEL_SUBSETS, get_electrodes
from brainforge.anatomy.montage import jitter_electrodes, project_to_scalp


@pytest.mark.parametrize(
    "name,n", [("1010-75", 75), ("1010-64", 64), ("1010-32", 32), ("1010-21", 21), ("1010-16", 16)]
)
def test_named_subsets(name, n):
    electrodes = get_electrodes(name)
    assert len(electrodes) == n == len(set(electrodes.names))
    assert set(electrodes.names) <= set(CHANNEL_SUBSETS["1010-75"])
    assert np.isfinite(electrodes.pos).all()


def test_builtin_digmontage_and_name_list_agree():
    by_name = get_electrodes("fsaverage_1005", channels=["Fp1", "Cz", "O2", "T7", "T8", "Pz", "Fz", "Oz"])
    by_list = get_electrodes(["Fp1", "Cz", "O2", "T7", "T8", "Pz", "Fz", "Oz"])
    by_dig = get_electrodes(mne.channels.make_standard_montage("fsaverage_1005")).pick(by_list.names)
    np.testing.assert_allclose(by_name.pos, by_list.pos)
    np.testing.assert_allclose(by_dig.pos, by_list.pos)
    # fsaverage surface RAS: Cz on top, Fp1 in front, O2 at the back.
    cz, fp1, o2 = (by_list.pos[by_list.names.index(n)] for n in ("Cz", "Fp1", "O2"))
    assert cz[2] > 80 and fp1[1] > 60 and o2[1] < -90


def test_extrapolated_electrodes_sit_where_the_10_05_system_puts_them():
    e = get_electrodes("1010-75")
    pos = dict(zip(e.names, e.pos, strict=True))
    assert pos["TP11"][2] < pos["TP9"][2] < pos["TP7"][2]  # one more step down the same arc
    assert pos["TP11"][0] < 0 < pos["TP12"][0]
    assert pos["Nz"][1] > pos["Fpz"][1] - 20 and pos["Nz"][2] < pos["Fpz"][2]


def test_unknown_montage_suggests_close_names():
    with pytest.raises(BrainForgeError, match="Did you mean 'biosemi64'"):
        get_electrodes("biosemi65")


def test_unknown_channels_are_named():
    with pytest.raises(BrainForgeError, match="Foo, Bar"):
        get_electrodes("1010-64", channels=["Cz", "Foo", "Bar"])


def test_too_few_channels():
    with pytest.raises(BrainForgeError, match="at least 8"):
        get_electrodes(["Cz", "Pz", "Fz"])


def test_jitter_moves_each_electrode_tangentially_by_the_requested_distance(surfaces):
    e = get_electrodes("1010-32")
    moved = jitter_electrodes(e.pos, surfaces.centre, 10.0, seed=3)
    step = moved - e.pos
    np.testing.assert_allclose(np.linalg.norm(step, axis=1), 10.0)
    radial = (e.pos - surfaces.centre) / np.linalg.norm(e.pos - surfaces.centre, axis=1, keepdims=True)
    np.testing.assert_allclose(np.einsum("ij,ij->i", step, radial), 0.0, atol=1e-9)
    np.testing.assert_array_equal(moved, jitter_electrodes(e.pos, surfaces.centre, 10.0, seed=3))
    assert not np.allclose(moved, jitter_electrodes(e.pos, surfaces.centre, 10.0, seed=4))


def test_projection_lands_on_the_scalp(surfaces):
    e = get_electrodes("1010-64")
    on_scalp = project_to_scalp(e.pos, surfaces.centre, surfaces.outer_skin, surfaces.outer_skin_tris)
    # Every projected electrode is within 1 mm of a scalp vertex's surface patch.
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(surfaces.outer_skin).query(on_scalp)
    assert distance.max() < 15  # scalp vertices are ~10 mm apart
    # Template 10-05 positions already lie on the fsaverage scalp.
    assert np.median(np.linalg.norm(on_scalp - e.pos, axis=1)) < 5
