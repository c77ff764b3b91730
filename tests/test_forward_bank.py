"""The forward-model bank: exact at the nominal cap, placements in range, samples drawn through it."""

import dataclasses

import numpy as np
import pytest

from brainforge import BrainForgeError
from brainforge.anatomy import ForwardBankConfig, make_forward_bank
from brainforge.anatomy.bem import make_template_bem_surfaces
from brainforge.anatomy.forward_bank import CapPlacement, place_cap, placement_leadfield, project_on_scalp
from brainforge.synthesis import SampleGenerator, SynthesisConfig

CONFIG = ForwardBankConfig(skull_conductivity=(0.006,), n_placements=64, seed=3)


@pytest.fixture(scope="module")
def bank(head64):
    # One skull conductivity, the head model's own: its BEM is already cached by head64.
    return make_forward_bank(head64, CONFIG)


@pytest.fixture(scope="module")
def nominal_bank(head64, bank):
    """The same dense leadfield with every forward model at the unmoved cap."""
    surfaces = make_template_bem_surfaces()
    pos, index, weights = project_on_scalp(head64.ch_pos_mm, surfaces, bank.scalp_vertex)
    n = bank.n_placements
    return dataclasses.replace(
        bank,
        vertex_index=np.repeat(index[None], n, 0),
        vertex_weight=np.repeat(weights[None], n, 0),
        ch_pos_mm=np.repeat(pos[None], n, 0),
    )


def test_unmoved_cap_reproduces_the_head_models_leadfield(head64, bank):
    """MNE interpolates BEM potentials on the scalp triangle; the bank does the same, so they agree to rounding."""
    leadfield = placement_leadfield(head64, bank, head64.ch_pos_mm, 0)
    scale = np.abs(head64.region_leadfield).max()
    assert np.abs(leadfield - head64.region_leadfield).max() < 1e-9 * scale


def test_placements_move_the_cap_within_the_configured_ranges(head64, bank):
    moved = bank.displacement_mm()
    assert moved.shape == (64, head64.n_channels)
    # Shift up to 20 mm, twist 10 deg (about 15 mm at the rim), stretch 10 %, jitter 5 mm.
    assert 5.0 < np.median(moved) < 25.0 and moved.max() < 60.0
    assert np.ptp(bank.ch_pos_mm.mean(axis=1), axis=0).max() > 10.0  # whole-cap shifts differ between models
    # Every forward model's leadfield is the interpolation at its own electrode positions.
    for index in (0, 17):
        expected = placement_leadfield(head64, bank, bank.ch_pos_mm[index], 0)
        np.testing.assert_allclose(bank.region_leadfield(index), expected, rtol=1e-9, atol=0)
    # A moved cap changes the topographies; correlation with the nominal stays high but below 1.
    nominal = head64.region_leadfield - head64.region_leadfield.mean(axis=0)
    shifted = bank.region_leadfield(0) - bank.region_leadfield(0).mean(axis=0)
    r = np.sum(nominal * shifted, axis=0) / np.linalg.norm(nominal, axis=0) / np.linalg.norm(shifted, axis=0)
    assert 0.3 < np.median(r) < 0.999


def test_a_pure_shift_moves_the_vertex_by_that_distance(head64):
    surfaces = make_template_bem_surfaces()
    up = np.array([[0.0, 0.0, 90.0]]) + surfaces.centre
    radius = 90.0
    moved = place_cap(up, surfaces.centre, radius, CapPlacement(shift_mm=(12.0, 0.0)))
    arc = radius * np.arccos(np.clip((up - surfaces.centre)[0] @ (moved - surfaces.centre)[0] / radius**2, -1, 1))
    assert arc == pytest.approx(12.0, rel=1e-6) and moved[0, 0] > up[0, 0]


def test_a_vertical_shift_lowers_the_cap_most_at_the_rim(head64):
    """A cap pulled down the head: projected back onto the scalp, rim electrodes move most, the vertex least."""
    from brainforge.anatomy.forward_bank import _scalp_frame

    surfaces = make_template_bem_surfaces()
    centre, radius = _scalp_frame(surfaces)
    nominal = project_on_scalp(head64.ch_pos_mm, surfaces, np.arange(len(surfaces.outer_skin)))[0]
    lowered = place_cap(nominal, centre, radius, CapPlacement(vertical_shift_mm=-20.0))
    on_scalp = project_on_scalp(lowered, surfaces, np.arange(len(surfaces.outer_skin)))[0]
    drop_mm = nominal[:, 2] - on_scalp[:, 2]
    assert (drop_mm > -1.0).all() and np.median(drop_mm) > 15.0 and drop_mm.max() < 20.5
    moved_mm = np.linalg.norm(on_scalp - nominal, axis=1)
    names = list(head64.ch_names)
    assert moved_mm[names.index("Cz")] < 3.0 < 12.0 < moved_mm[names.index("T7")] < 21.0


def test_vertical_range_is_drawn_last_and_only_when_asked_for():
    from brainforge.anatomy.forward_bank import _config_json, draw_placement

    without = draw_placement(ForwardBankConfig(), 8, np.random.default_rng(1))
    with_range = draw_placement(ForwardBankConfig(max_vertical_shift_mm=20.0), 8, np.random.default_rng(1))
    assert without.vertical_shift_mm == 0.0 and with_range.vertical_shift_mm != 0.0
    # The other parameters of a placement are those of a bank without the vertical range.
    assert with_range.shift_mm == without.shift_mm and with_range.stretch == without.stretch
    assert with_range.rotation_deg == without.rotation_deg
    np.testing.assert_array_equal(with_range.jitter_mm, without.jitter_mm)
    # Banks made before the option existed keep their cache key (the config JSON is hashed into it).
    assert _config_json(ForwardBankConfig()) == (
        '{"skull_conductivity": [0.003, 0.0045, 0.006, 0.008, 0.012, 0.015], "n_placements": 4096, '
        '"max_shift_mm": 20.0, "max_rotation_deg": 10.0, "max_stretch": 0.1, "electrode_jitter_mm": 5.0, '
        '"margin_mm": 45.0, "seed": 0}'
    )
    assert "max_vertical_shift_mm" in _config_json(ForwardBankConfig(max_vertical_shift_mm=20.0))
    rng = np.random.default_rng(2)
    vertical = [
        draw_placement(ForwardBankConfig(max_vertical_shift_mm=20.0), 8, rng).vertical_shift_mm for _ in range(400)
    ]
    assert -20.0 <= min(vertical) < -15.0 and 15.0 < max(vertical) <= 20.0
    with pytest.raises(BrainForgeError, match="max_vertical_shift_mm"):
        ForwardBankConfig(max_vertical_shift_mm=-5.0)


def test_bank_is_cached_and_checked(head64, bank, monkeypatch):
    from brainforge.anatomy import forward_bank

    def no_dense_leadfield(*args, **kwargs):
        raise AssertionError("the cached bank was computed again")

    monkeypatch.setattr(forward_bank, "_dense_scalp_leadfield", no_dense_leadfield)
    again = make_forward_bank(head64, CONFIG)
    np.testing.assert_array_equal(again.vertex_index, bank.vertex_index)
    np.testing.assert_array_equal(again.scalp_leadfield, bank.scalp_leadfield)
    with pytest.raises(BrainForgeError, match="n_placements"):
        ForwardBankConfig(n_placements=0)
    with pytest.raises(BrainForgeError, match="skull_conductivity"):
        ForwardBankConfig(skull_conductivity=(0.0,))


def test_a_margin_too_small_for_the_vertical_range_fails_before_any_dense_leadfield(head64, monkeypatch):
    from brainforge.anatomy import forward_bank

    def no_dense_leadfield(*args, **kwargs):
        raise AssertionError("the dense leadfield was computed before the placements were checked")

    monkeypatch.setattr(forward_bank, "_dense_scalp_leadfield", no_dense_leadfield)
    config = ForwardBankConfig(skull_conductivity=(0.006,), n_placements=64, max_vertical_shift_mm=30.0, margin_mm=0.0)
    with pytest.raises(BrainForgeError, match="raise margin_mm"):
        make_forward_bank(head64, config)


def test_generator_draws_each_sample_through_the_bank(head64, spike_library, bank, nominal_bank):
    config = SynthesisConfig(n_sources=(1, 2))
    banked = SampleGenerator(head64, spike_library, config, forward_bank=bank)
    first, again = banked.sample(5), banked.sample(5)
    assert np.array_equal(first.eeg, again.eeg) and 0 <= first.forward_index < bank.n_placements
    assert len({banked.sample(seed).forward_index for seed in range(20)}) > 5
    plain = SampleGenerator(head64, spike_library, config)
    assert plain.sample(5).forward_index == -1
    # At the unmoved cap, background and patch EEG are those of the head model's own leadfield.
    nominal = SampleGenerator(head64, spike_library, config, forward_bank=nominal_bank)
    channels = np.arange(head64.n_channels)
    for clip in (0, 3):
        eeg, cumulative = nominal._bank_background(clip, 0, channels)
        eeg_ref, cumulative_ref = plain._background(clip, channels)
        np.testing.assert_allclose(eeg, eeg_ref, rtol=1e-4, atol=1e-5 * np.abs(eeg_ref).max())
        np.testing.assert_allclose(cumulative, cumulative_ref, rtol=1e-4)
    patch, weights = np.array([10, 11, 12]), np.array([1.0, 0.5, 0.25])
    subset = np.arange(0, head64.n_channels, 3)
    np.testing.assert_allclose(
        nominal._topography(patch, weights, subset, 0), plain._topography(patch, weights, subset, -1), rtol=1e-9
    )


def test_bank_must_match_the_head_model(head64, spike_library, bank):
    small = head64.pick_channels(head64.ch_names[:32])
    with pytest.raises(BrainForgeError, match="build the bank for this head"):
        SampleGenerator(small, spike_library, forward_bank=bank)


def test_shifted_cap_head_model_matches_the_bank_interpolation(head64, bank):
    """An exact MNE forward at a shifted cap (a held-out test forward model) equals the bank's interpolation there."""
    from brainforge.anatomy import make_head_model

    shifted = make_head_model("1010-16", cap_shift_mm=(0.0, 15.0))
    nominal = make_head_model("1010-16")
    moved = np.linalg.norm(shifted.ch_pos_mm - nominal.ch_pos_mm, axis=1)
    assert 10.0 < np.median(moved) < 20.0 and "cap shifted" in shifted.description
    assert (shifted.ch_pos_mm[:, 1] - nominal.ch_pos_mm[:, 1]).mean() > 5.0  # towards the nose
    interpolated = placement_leadfield(head64, bank, shifted.ch_pos_mm, 0)
    scale = np.abs(shifted.region_leadfield).max()
    assert np.abs(interpolated - shifted.region_leadfield).max() < 1e-9 * scale


def test_save_and_read_round_trip_including_files_written_before_the_unit_names(bank, tmp_path):
    from brainforge.anatomy.forward_bank import read_forward_bank

    bank.save(tmp_path / "bank.npz")
    back = read_forward_bank(tmp_path / "bank.npz")
    np.testing.assert_array_equal(back.ch_pos_mm, bank.ch_pos_mm)
    np.testing.assert_array_equal(back.nominal_pos_mm, bank.nominal_pos_mm)
    with np.load(tmp_path / "bank.npz") as data:
        arrays = {key.replace("pos_mm", "pos"): data[key] for key in data.files}  # ch_pos, nominal_pos
    np.savez(tmp_path / "legacy.npz", **arrays)
    old = read_forward_bank(tmp_path / "legacy.npz")
    np.testing.assert_array_equal(old.ch_pos_mm, bank.ch_pos_mm)
    np.testing.assert_array_equal(old.nominal_pos_mm, bank.nominal_pos_mm)
