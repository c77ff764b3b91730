import numpy as np
import pytest
import torch
from scipy.interpolate import RBFInterpolator, griddata

from brainforge import BrainForgeError
from brainforge.anatomy import get_electrodes
from brainforge.topomap import INTERPOLATION_METHODS, Montage, Topomap, azimuthal_equidistant, make_topomap
from brainforge.topomap.interpolation import grid_points


@pytest.fixture(scope="module")
def montage64():
    electrodes = get_electrodes("1010-64")
    return Montage(tuple(electrodes.names), electrodes.pos)


def test_projection_preserves_angle_from_vertex():
    centre = np.zeros(3)
    # A point at 90 degrees from the vertex, towards the nose, lands at (0, pi/2).
    xy = azimuthal_equidistant(np.array([[0.0, 0.0, 80.0], [0.0, 95.0, 0.0], [-70.0, 0.0, 0.0]]), centre)
    np.testing.assert_allclose(xy, [[0, 0], [0, np.pi / 2], [-np.pi / 2, 0]], atol=1e-12)


@pytest.mark.parametrize("method", INTERPOLATION_METHODS)
def test_exact_at_electrodes(montage64, method):
    topomap = Topomap(montage64, method, size=32)
    points = topomap.points
    values = np.random.default_rng(0).standard_normal(montage64.n_channels)
    # Interpolate at the electrodes themselves with the same matrix builder.
    from brainforge.topomap import interpolation_matrix

    inside = interpolation_matrix(points, grid_points(32), method)[1]
    assert inside.mean() > 0.3
    matrix, mask = interpolation_matrix(points, points, method)
    assert mask.all()
    np.testing.assert_allclose(matrix @ values, values, atol=1e-6)


@pytest.mark.parametrize("method", INTERPOLATION_METHODS)
def test_linear_field_is_reproduced(montage64, method):
    topomap = Topomap(montage64, method, size=48)
    grid = grid_points(48)
    a, b, c = 0.3, -1.2, 0.7
    values = a + b * topomap.points[:, 0] + c * topomap.points[:, 1]
    expected = a + b * grid[:, 0] + c * grid[:, 1]
    maps = topomap(torch.as_tensor(values[None], dtype=torch.float64)).reshape(-1).numpy()
    mask = topomap.mask.numpy().ravel()
    np.testing.assert_allclose(maps[mask], expected[mask], atol=1e-4)
    assert not maps[~mask].any()


@pytest.mark.parametrize("method", INTERPOLATION_METHODS)
def test_agrees_with_scipy_on_random_maps(montage64, method):
    topomap = Topomap(montage64, method, size=64)
    grid = grid_points(64)
    values = np.random.default_rng(1).standard_normal((5, montage64.n_channels))
    maps = topomap(torch.as_tensor(values)).reshape(5, -1).numpy()
    mask = topomap.mask.numpy().ravel()
    for row, map_ in zip(values, maps, strict=True):
        if method == "rbf":
            reference = RBFInterpolator(topomap.points, row, kernel="thin_plate_spline")(grid)
        else:
            reference = griddata(topomap.points, row, grid, method=method)
        assert not np.isnan(reference[mask]).any()
        np.testing.assert_allclose(map_[mask], reference[mask], atol=1e-5 * np.abs(row).max())


def test_batches_and_cache(montage64):
    topomap = make_topomap(montage64, "linear", 32)
    assert make_topomap(Montage(montage64.ch_names, montage64.ch_pos_mm.copy()), "linear", 32) is topomap
    eeg = torch.randn(3, 7, montage64.n_channels)
    maps = topomap(eeg)
    assert maps.shape == (3, 7, 32, 32)
    torch.testing.assert_close(maps[2, 5], topomap(eeg[2, 5]))


def test_electrodes_land_on_the_same_pixels_in_any_montage(montage64):
    # The projection frame is fixed: a subset's electrodes keep their positions.
    subset = montage64.pick(range(0, 64, 3))
    np.testing.assert_allclose(azimuthal_equidistant(subset.ch_pos_mm), azimuthal_equidistant(montage64.ch_pos_mm)[::3])


def test_bad_montages_give_clear_errors(montage64):
    with pytest.raises(BrainForgeError, match="shape"):
        Montage(("A", "B"), np.zeros((3, 3)))
    with pytest.raises(BrainForgeError, match="NaN"):
        Montage(("A",), np.full((1, 3), np.nan))
    with pytest.raises(BrainForgeError, match="at least 4"):
        Topomap(montage64.pick([0, 1, 2]))
    with pytest.raises(BrainForgeError, match="share one position"):
        Topomap(Montage(("A", "B", "C", "D", "E"), montage64.ch_pos_mm[[0, 1, 2, 3, 3]]))
    with pytest.raises(BrainForgeError, match="Unknown interpolation"):
        Topomap(montage64, "nearest")
    with pytest.raises(BrainForgeError, match="channels"):
        make_topomap(montage64)(torch.zeros(2, 10))


def test_spherical_splines_match_mne_interpolate_bads(montage64):
    """Our spline matrix is the one MNE-Python's public ``interpolate_bads`` applies (alpha 1e-5)."""
    import mne

    from brainforge.anatomy import CHANNEL_SUBSETS
    from brainforge.topomap import spherical_spline_matrix

    positions, names = montage64.ch_pos_mm, list(montage64.ch_names)
    recorded = [names.index(c) for c in CHANNEL_SUBSETS["1010-16"]]
    left_out = np.setdiff1d(np.arange(len(names)), recorded)
    origin = positions.mean(axis=0)
    info = mne.create_info(names, 500.0, "eeg")
    dig = mne.channels.make_dig_montage(dict(zip(names, positions / 1000.0, strict=True)), coord_frame="head")
    info.set_montage(dig)
    data = np.random.default_rng(0).normal(size=(len(names), 7))
    evoked = mne.EvokedArray(data.copy(), info, verbose="error")
    evoked.info["bads"] = [names[i] for i in left_out]
    evoked.interpolate_bads(reset_bads=True, origin=origin / 1000.0, verbose="error")
    matrix = spherical_spline_matrix(positions[recorded], positions[left_out], origin, alpha=1e-5)
    np.testing.assert_allclose(matrix @ data[recorded], evoked.data[left_out], rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(evoked.data[recorded], data[recorded])


def test_spherical_splines_are_exact_at_electrodes_and_keep_smooth_fields(montage64):
    from brainforge.anatomy import CHANNEL_SUBSETS
    from brainforge.topomap import spherical_spline_matrix

    positions = montage64.ch_pos_mm
    recorded = [montage64.ch_names.index(c) for c in CHANNEL_SUBSETS["1010-16"]]
    others = np.setdiff1d(np.arange(montage64.n_channels), recorded)
    origin = positions.mean(axis=0)
    exact = spherical_spline_matrix(positions[recorded], positions, origin, alpha=0.0)
    assert exact.shape == (64, 16)
    np.testing.assert_allclose(exact[recorded], np.eye(16), atol=1e-8)
    # With the default regularization a smooth field (a first-order spherical harmonic, what a
    # distant dipole gives) is still reproduced at the 48 electrodes left out, to 0.5 % of its
    # range; the nearest recorded electrode's value misses by about a third of it.
    matrix = spherical_spline_matrix(positions[recorded], positions, origin)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-9)  # a constant stays constant
    directions = (positions - origin) / np.linalg.norm(positions - origin, axis=1, keepdims=True)
    nearest = np.linalg.norm(positions[others, None] - positions[None, recorded], axis=2).argmin(axis=1)
    for axis in ([0, 0, 1], [1, 0, 0], [0.3, -0.5, 0.8]):
        field = directions @ np.asarray(axis, float) + 0.2
        spread = np.ptp(field)
        assert np.abs(matrix[others] @ field[recorded] - field[others]).max() < 0.005 * spread
        assert np.abs(field[recorded][nearest] - field[others]).max() > 0.2 * spread
    with pytest.raises(BrainForgeError, match="3 or more"):
        spherical_spline_matrix(positions[:2], positions, origin)
