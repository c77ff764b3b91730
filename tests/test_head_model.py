import numpy as np
import pytest

from brainforge import BrainForgeError
from brainforge.anatomy import make_head_model, read_head_model
from brainforge.anatomy.cortex import region_adjacency

from .conftest import correlation


def test_shapes_and_layout(head64):
    h = head64
    assert h.leadfield.shape == (64, h.n_sources)
    assert h.region_leadfield.shape == (64, h.n_regions)
    assert h.n_cortical_sources == 20484 and h.n_regions == 1000 + h.n_deep_regions
    assert h.n_deep_regions == 14
    assert np.isfinite(h.leadfield).all()
    assert h.region_is_deep.sum() == 14 and not h.region_is_deep[:1000].any()
    assert (h.source_region[: h.n_cortical_sources] < 1000).all()
    assert (h.source_region[h.n_cortical_sources :] >= 1000).all()
    adjacency = h.region_adjacency.toarray()
    np.testing.assert_array_equal(adjacency, adjacency.T)
    assert not adjacency.diagonal().any()
    assert not adjacency[:1000, 1000:].any()  # no cortical-deep edges
    distance = h.region_distance_mm
    np.testing.assert_allclose(distance, distance.T)
    # Neighbouring cortical regions are ~1 cm apart, as in the published setup.
    assert 5 < np.median(distance[:1000, :1000][adjacency[:1000, :1000]]) < 15


def test_region_leadfield_is_the_sum_of_its_columns(head64):
    h = head64
    for region in (0, 17, 503, 999, 1000, h.n_regions - 1):
        expected = h.leadfield[:, h.source_region == region].sum(axis=1)
        np.testing.assert_allclose(h.region_leadfield[:, region], expected, rtol=1e-10)


def test_region_adjacency_matches_the_mesh(head64, cortex):
    cortical = head64.region_adjacency[:1000, :1000]
    rebuilt = region_adjacency(cortex.adjacency, head64.source_region[:20484], 1000)
    assert (cortical != rebuilt).nnz == 0


def _superficial_radial_sources(h, n=200):
    """Cortical sources near the top of the head whose normal is nearly radial."""
    centre = h.ch_pos_mm.mean(axis=0) - [0, 0, 40]
    radial = h.source_pos_mm - centre
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    cosine = np.einsum("ij,ij->i", radial, h.source_nn)
    nearest_electrode = np.min(np.linalg.norm(h.source_pos_mm[:, None] - h.ch_pos_mm[None], axis=2), axis=1)
    cortical = np.arange(h.n_sources) < h.n_cortical_sources
    candidates = np.flatnonzero(cortical & (cosine > 0.95) & (nearest_electrode < 25))
    return candidates[:: max(1, len(candidates) // n)]


def test_superficial_radial_dipole_peaks_under_itself(head64):
    h = head64.average_reference()
    sources = _superficial_radial_sources(h)
    assert len(sources) > 50
    hits = 0
    for s in sources:
        peak = np.argmax(h.leadfield[:, s])  # outward dipole: positive peak
        nearest = np.argsort(np.linalg.norm(h.ch_pos_mm - h.source_pos_mm[s], axis=1))[:3]
        hits += peak in nearest
    assert hits / len(sources) > 0.9


def _spread(topographies):
    """Fraction of electrodes above half of the peak |potential|."""
    magnitude = np.abs(topographies)
    return (magnitude > 0.5 * magnitude.max(axis=0)).mean(axis=0)


def test_deep_sources_are_weaker_and_broader(head64):
    h = head64.average_reference()
    superficial = h.leadfield[:, _superficial_radial_sources(h)]
    deep = h.leadfield[:, h.n_cortical_sources :]
    # Weaker: a lower peak potential per unit moment (even at the deep sources' most visible orientation).
    assert np.median(np.abs(deep).max(axis=0)) < 0.5 * np.median(np.abs(superficial).max(axis=0))
    # Broader: more electrodes above half of the peak.
    assert np.median(_spread(deep)) > np.median(_spread(superficial))


def test_average_reference_is_consistent(head64):
    ref = head64.average_reference()
    np.testing.assert_allclose(ref.leadfield.sum(axis=0), 0, atol=1e-9 * np.abs(ref.leadfield).max())
    # Referencing commutes with summing sources into regions.
    expected = head64.region_leadfield - head64.region_leadfield.mean(axis=0)
    np.testing.assert_allclose(ref.region_leadfield, expected)
    assert ref.average_reference() is ref
    assert np.linalg.matrix_rank(ref.region_leadfield) == 63
    assert np.linalg.matrix_rank(head64.region_leadfield) == 64
    # Topographies differ only by a constant per source.
    diff = head64.leadfield - ref.leadfield
    np.testing.assert_allclose(diff, diff[:1].repeat(64, axis=0), atol=1e-9 * np.abs(diff).max())
    with pytest.raises(BrainForgeError, match="before average referencing"):
        ref.pick_channels(head64.ch_names[:10])


def test_pick_channels_matches_a_smaller_montage(head64):
    names = head64.ch_names[::4]
    picked = head64.pick_channels(names)
    assert picked.ch_names == names
    np.testing.assert_array_equal(picked.leadfield, head64.leadfield[::4])


def test_bem_agrees_with_the_sphere_model(head64):
    """Independent check of frames and units: BEM and 3-shell sphere topographies."""
    sphere = make_head_model("1010-64", conductor="sphere")
    assert sphere.leadfield.shape == head64.leadfield.shape
    rng = np.random.default_rng(0)
    sample = rng.choice(head64.n_sources, 500, replace=False)
    corr = correlation(head64.leadfield[:, sample], sphere.leadfield[:, sample])
    assert np.median(corr) > 0.8, np.median(corr)
    # Same order of magnitude: no unit error.
    ratio = np.linalg.norm(sphere.leadfield[:, sample], axis=0) / np.linalg.norm(head64.leadfield[:, sample], axis=0)
    assert 0.3 < np.median(ratio) < 3


def test_alternative_forward_models_differ_but_agree(head64):
    jittered = make_head_model("1010-64", electrode_jitter_mm=10.0, jitter_seed=1)
    moved = np.linalg.norm(jittered.ch_pos_mm - head64.ch_pos_mm, axis=1)
    assert 5 < np.median(moved) < 15
    skull = make_head_model("1010-64", conductivity=(0.3, 0.003, 0.3))
    for other in (jittered, skull):
        corr = correlation(head64.region_leadfield, other.region_leadfield)
        assert 0.8 < np.median(corr) < 0.9999
    # A less conductive skull attenuates and smears scalp potentials.
    ref, ref_skull = head64.average_reference(), skull.average_reference()
    assert np.median(np.linalg.norm(ref_skull.leadfield, axis=0) / np.linalg.norm(ref.leadfield, axis=0)) < 0.95


def test_cached_head_model_is_identical_and_corruption_is_rebuilt(head64, tmp_path, monkeypatch):
    import shutil

    from brainforge._cache import CACHE_ENV, get_cache_dir

    again = make_head_model("1010-64")
    np.testing.assert_array_equal(again.leadfield, head64.leadfield)
    np.testing.assert_array_equal(again.source_region, head64.source_region)
    # Damage the cached head models of a private copy of the cache (the shared one may have
    # readers): the other entries are linked, the head models copied, then overwritten.
    private = tmp_path / "cache"
    private.mkdir()
    for entry in get_cache_dir().iterdir():
        if entry.name == "head":
            shutil.copytree(entry, private / "head")
        else:
            (private / entry.name).symlink_to(entry)
    monkeypatch.setenv(CACHE_ENV, str(private))
    entries = sorted((get_cache_dir() / "head").glob("*.npz"))
    assert entries and get_cache_dir() == private
    for p in entries:
        p.write_bytes(b"\x00corrupt")
    # The next call must rebuild, not crash.
    rebuilt = make_head_model("1010-64")
    np.testing.assert_allclose(rebuilt.leadfield, head64.leadfield)


def test_save_and_read_round_trip(head64, tmp_path):
    path = tmp_path / "head.npz"
    head64.save(path)
    back = read_head_model(path)
    for name in ("leadfield", "region_leadfield", "source_pos_mm", "source_nn", "source_region", "ch_pos_mm"):
        np.testing.assert_array_equal(getattr(back, name), getattr(head64, name))
    assert back.ch_names == head64.ch_names and back.region_names == head64.region_names
    assert (back.region_adjacency != head64.region_adjacency).nnz == 0
    assert back.config == head64.config
    with np.load(path, allow_pickle=False) as data:  # no pickles inside
        assert "leadfield" in data.files
        arrays = {key: data[key] for key in data.files}
    # A file written before the position names carried their unit (source_pos, ch_pos, region_centres) still reads.
    legacy = tmp_path / "legacy.npz"
    np.savez(legacy, **{key.removesuffix("_mm") if key.endswith("pos_mm") or key == "region_centres_mm" else key: value
                        for key, value in arrays.items()})  # fmt: skip
    old = read_head_model(legacy)
    np.testing.assert_array_equal(old.ch_pos_mm, head64.ch_pos_mm)
    np.testing.assert_array_equal(old.region_centres_mm, head64.region_centres_mm)
    # Another program's .npz, and one that lost an array.
    np.savez(tmp_path / "number.npz", meta=np.array("3"))  # a meta record that is no object
    with pytest.raises(BrainForgeError, match=r"number.npz is damaged or from an unknown version"):
        read_head_model(tmp_path / "number.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(BrainForgeError, match=r"other.npz is not a BrainForge head model"):
        read_head_model(tmp_path / "other.npz")
    np.savez(tmp_path / "lost.npz", **{key: value for key, value in arrays.items() if key != "region_leadfield"})
    with pytest.raises(BrainForgeError, match=r"lost.npz is damaged or from an unknown version \(KeyError"):
        read_head_model(tmp_path / "lost.npz")


def test_bad_files_and_options_give_clear_errors(tmp_path):
    with pytest.raises(BrainForgeError, match="not found"):
        read_head_model(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("garbage")
    with pytest.raises(BrainForgeError, match="Cannot read head model"):
        read_head_model(bad)
    with pytest.raises(BrainForgeError, match="conductor"):
        make_head_model("1010-64", conductor="fem")
    with pytest.raises(BrainForgeError, match="conductivity"):
        make_head_model("1010-64", conductivity=(0.3, -1.0, 0.3))


def test_head_model_config_json_keeps_old_keys_and_round_trips_cap_moves():
    """Options at their defaults stay out of the JSON (older cache keys hold); set ones round-trip."""
    from brainforge.anatomy.head_model import HeadModelConfig

    plain = HeadModelConfig()
    assert "cap_vertical_shift_mm" not in plain.to_json() and "cap_shift_mm" not in plain.to_json()
    moved = HeadModelConfig(cap_shift_mm=(0.0, 15.0), cap_vertical_shift_mm=-25.0)
    assert HeadModelConfig.from_json(moved.to_json()) == moved
    assert HeadModelConfig.from_json(plain.to_json()) == plain
