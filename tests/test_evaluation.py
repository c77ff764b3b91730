"""Metrics on constructed cases, and the classical solvers' known properties."""

import numpy as np
import pytest

from brainforge import BrainForgeError
from brainforge.evaluation import (
    deepsif_metrics,
    esinet_metrics,
    evaluate,
    otsu_threshold,
    spatial_dispersion_mm,
    spike_window,
)


@pytest.fixture(scope="module")
def head100(head64):
    from brainforge.anatomy import make_head_model

    return make_head_model("1010-64", n_regions=100)


def _case(head, centre=10, n_times=100):
    """A one-region 'patch' with a spike waveform, on head100's regions."""
    wave = np.exp(-0.5 * ((np.arange(n_times) - 50) / 6.0) ** 2)
    truth = np.zeros((head.n_regions, n_times))
    truth[centre] = wave
    return truth, [np.array([centre])], [centre], wave


def test_otsu_threshold_splits_two_groups():
    values = np.r_[np.full(90, 0.05), np.full(10, 0.9)]
    assert 0.05 <= otsu_threshold(values) < 0.9


def test_perfect_estimate(head100):
    truth, patches, centres, _ = _case(head100)
    metrics = evaluate(truth, truth, patches, centres, head100.region_distance_mm, head100.region_adjacency)
    assert metrics["loc_error_mm"] == 0 and metrics["precision"] == 1 and metrics["recall"] == 1
    assert metrics["correlation"] == pytest.approx(1.0)
    assert metrics["peak_centre_error_mm"] == 0 and metrics["mle_mm"] == 0 and metrics["dice"] == 1
    assert metrics["peak_patch_error_mm"] == 0
    assert metrics["auc_close"] == 1 and metrics["nmse"] == pytest.approx(0)
    assert metrics["dispersion_mm"] == 0 and metrics["hd95_mm"] == 0


def test_estimate_shifted_by_one_region(head100):
    truth, patches, centres, wave = _case(head100)
    neighbour = int(head100.region_adjacency[10].indices[0])
    estimate = np.zeros_like(truth)
    estimate[neighbour] = wave
    distance = head100.region_distance_mm[10, neighbour]
    metrics = evaluate(estimate, truth, patches, centres, head100.region_distance_mm, head100.region_adjacency)
    assert metrics["loc_error_mm"] == pytest.approx(distance)
    assert metrics["peak_centre_error_mm"] == pytest.approx(distance)
    assert 0 <= metrics["peak_patch_error_mm"] <= metrics["peak_centre_error_mm"]
    assert metrics["mle_mm"] == pytest.approx(distance)
    assert metrics["precision"] == 0 and metrics["dice"] == 0


def test_blurring_raises_dispersion(head100):
    truth, patches, _, _ = _case(head100)
    adjacency = head100.region_adjacency.astype(float)
    blurred = truth.copy()
    dispersions = [spatial_dispersion_mm(blurred, patches, head100.region_distance_mm)]
    for _ in range(3):
        blurred = blurred + adjacency @ blurred
        dispersions.append(spatial_dispersion_mm(blurred, patches, head100.region_distance_mm))
    assert dispersions[0] == 0 and np.all(np.diff(dispersions) > 0)


def test_whole_window_versus_spike_window(head100):
    # Background everywhere drives Otsu's threshold down over the whole window.
    truth, patches, centres, _ = _case(head100, n_times=500)
    rng = np.random.default_rng(0)
    estimate = truth + 0.05 * rng.standard_normal(truth.shape)
    window = spike_window(truth, 500.0)
    assert window.stop - window.start == 25
    full = deepsif_metrics(estimate, truth, patches, centres, head100.region_distance_mm)
    spike = deepsif_metrics(estimate[:, window], truth[:, window], patches, centres, head100.region_distance_mm)
    assert spike["loc_error_mm"] < full["loc_error_mm"]
    assert esinet_metrics(estimate, truth, head100.region_distance_mm, head100.region_adjacency)["mle_mm"] == 0


@pytest.fixture(scope="module")
def solvers(head100):
    from brainforge.inverse import CLASSICAL_SOLVERS, ClassicalSolver

    return {name: ClassicalSolver(name).fit(head100) for name in CLASSICAL_SOLVERS}


def _dipole_errors(head, solver, sources, noise=0.0):
    rng = np.random.default_rng(1)
    wave = np.sin(np.linspace(0, 3 * np.pi, 300)) * np.hanning(300)
    errors, depths = [], []
    for source in sources:
        eeg = head.leadfield[:, [source]] * wave
        eeg = eeg + noise * np.abs(eeg).max() * rng.standard_normal(eeg.shape)
        estimate = solver.apply_regions(eeg, with_dipoles=True).vertex_data
        found = int(np.abs(estimate).max(axis=1).argmax())
        errors.append(np.linalg.norm(head.source_pos_mm[found] - head.source_pos_mm[source]))
        depths.append(np.linalg.norm(head.source_pos_mm[found]) - np.linalg.norm(head.source_pos_mm[source]))
    return np.array(errors), np.array(depths)


def test_sloreta_and_eloreta_find_noiseless_dipoles_exactly(head100, solvers):
    sources = np.random.default_rng(0).choice(head100.n_cortical_sources, 15, replace=False)
    for name in ("sloreta", "eloreta"):
        errors, _ = _dipole_errors(head100, solvers[name], sources)
        assert errors.max() == 0, name


def test_minimum_norm_depth_bias(head100, solvers):
    # Plain MNE pulls deep sources outwards: the maximum lies farther from the centre.
    centre = head100.source_pos_mm[: head100.n_cortical_sources].mean(axis=0)
    radius = np.linalg.norm(head100.source_pos_mm[: head100.n_cortical_sources] - centre, axis=1)
    deep = np.flatnonzero(radius < np.percentile(radius, 20))[::40][:15]
    errors, _ = _dipole_errors(head100, solvers["mne"], deep)
    found_radius = []
    for source in deep:
        eeg = head100.leadfield[:, [source]] * np.hanning(50)
        estimate = solvers["mne"].apply_regions(eeg, with_dipoles=True).vertex_data
        found_radius.append(np.linalg.norm(head100.source_pos_mm[np.abs(estimate).max(axis=1).argmax()] - centre))
    assert np.median(errors) > 10
    assert np.median(np.array(found_radius) - radius[deep]) > 5
    # Depth weighting (wMNE) reduces the bias.
    weighted, _ = _dipole_errors(head100, solvers["wmne"], deep)
    assert np.median(weighted) < np.median(errors)


def test_every_solver_returns_regions_by_time(head100, solvers):
    eeg = np.random.default_rng(2).standard_normal((head100.n_channels, 120))
    for name, solver in solvers.items():
        activity = solver.apply_regions(eeg)
        assert activity.data.shape == (head100.n_regions, 120) and np.isfinite(activity.data).all(), name
    lcmv_regions = solvers["lcmv"].apply_regions(eeg).data
    assert np.abs(lcmv_regions).max() > 0


def test_solver_input_errors(head100, solvers):
    from brainforge.inverse import ClassicalSolver, make_solver

    with pytest.raises(BrainForgeError, match="Unknown solver"):
        make_solver("loreta")
    with pytest.raises(BrainForgeError, match="Transpose"):
        solvers["mne"].apply_regions(np.zeros((120, head100.n_channels)))
    with pytest.raises(BrainForgeError, match="NaN"):
        solvers["mne"].apply_regions(np.full((head100.n_channels, 10), np.nan))
    with pytest.raises(BrainForgeError, match="fit"):
        ClassicalSolver("mne").apply_regions(np.zeros((64, 10)))


def test_solver_params_follow_scikit_learn_and_set_params_is_honoured(tmp_path, head100, solvers):
    from brainforge.inverse import ClassicalSolver, LearnedSolver
    from brainforge.models import build_model, save_model
    from brainforge.topomap import Montage

    solver = ClassicalSolver("sloreta", lambda2=1.0 / 9.0)
    params = solver.get_params()
    assert params == {"method": "sloreta", "lambda2": 1.0 / 9.0, "baseline": None, "reg": 0.05, "verbose": None}
    assert ClassicalSolver(**params).get_params() == params  # an unfitted copy, as sklearn.clone makes
    eeg = head100.leadfield[:, :5] @ np.random.default_rng(0).normal(size=(5, 20))
    low = solver.fit(head100).apply_regions(eeg).data  # lambda2 below: less regularization, another estimate
    high = solver.set_params(lambda2=1.0 / 900.0).fit(head100).apply_regions(eeg).data
    assert solver.lambda2 == 1.0 / 900.0 and not np.allclose(low, high)
    assert np.allclose(
        solver.set_params(method="eloreta", lambda2=1.0 / 9.0).fit(head100).apply_regions(eeg).data,
        solvers["eloreta"].apply_regions(eeg).data,
    )
    with pytest.raises(BrainForgeError, match="no parameter 'snr'"):
        solver.set_params(snr=3.0)  # an amplitude SNR is lambda2 = 1 / snr**2
    with pytest.raises(BrainForgeError, match="Unknown solver 'loreta'"):  # set_params values are checked by fit
        solver.set_params(method="loreta").fit(head100)
    folder = save_model(build_model("gru", head100.n_regions, Montage.from_head_model(head100)), tmp_path / "net")
    network = LearnedSolver(folder, batch_size=8)
    assert network.get_params() == {
        "model_dir": folder,
        "batch_size": 8,
        "overlap": 0.1,
        "window_samples": None,
        "upsample": True,
        "verbose": None,
    }
    with pytest.raises(BrainForgeError, match="fit"):
        network.apply_regions(np.zeros((head100.n_channels, 10)))


def test_make_solver_is_the_one_lookup_and_passes_every_option(tmp_path, head100):
    """``make_solver`` knows "default", methods in any case and model folders; options reach the solver or fail."""
    from brainforge.inverse import ClassicalSolver, LearnedSolver, make_solver
    from brainforge.models import build_model, default_model_dir, save_model
    from brainforge.topomap import Montage

    default = make_solver("default", overlap=0.5, batch_size=4)
    assert isinstance(default, LearnedSolver) and default.model_dir == default_model_dir()
    assert (default.overlap, default.batch_size) == (0.5, 4)
    sloreta = make_solver("sLORETA", lambda2=0.04)
    assert isinstance(sloreta, ClassicalSolver) and (sloreta.method, sloreta.lambda2) == ("sloreta", 0.04)
    folder = save_model(build_model("gru", head100.n_regions, Montage.from_head_model(head100)), tmp_path / "net")
    assert make_solver(str(folder), overlap=0.25).overlap == 0.25
    with pytest.raises(BrainForgeError, match="takes no option overlap; it takes lambda2"):
        make_solver("sloreta", overlap=0.5)
    with pytest.raises(BrainForgeError, match="takes no option lambda2; it takes batch_size, overlap"):
        make_solver(str(folder), lambda2=0.1)


def test_model_folder_without_weights(tmp_path, head100):
    from brainforge.inverse import make_solver
    from brainforge.models import build_model, save_model
    from brainforge.topomap import Montage

    folder = save_model(build_model("gru", head100.n_regions, Montage.from_head_model(head100)), tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(BrainForgeError, match="weights not found"):
        make_solver(str(folder))


def test_forward_gain_is_the_head_models_leadfield(head100):
    """``make_forward`` (public MNE API, no patching) carries exactly the head model's leadfield."""
    import mne

    from brainforge.inverse import make_forward

    forward = make_forward(head100)
    scale = np.abs(head100.leadfield).max()
    assert forward["nsource"] == head100.n_sources and forward["surf_ori"]
    free = forward["sol"]["data"].reshape(head100.n_channels, head100.n_sources, 3)
    np.testing.assert_allclose(free[:, :, 2], head100.leadfield, rtol=0, atol=1e-12 * scale)  # normal component
    assert np.abs(free[:, :, :2]).max() <= 1e-9 * scale  # no tangential gain
    fixed = mne.convert_forward_solution(forward, surf_ori=True, force_fixed=True, verbose="error")
    np.testing.assert_allclose(fixed["sol"]["data"], head100.leadfield, rtol=0, atol=1e-6 * scale)  # float32


def test_training_peak_patch_error_is_the_benchmarks(head100):
    """Training's batched ``peak_patch_error_mm`` (PyTorch) equals the benchmark's, sample by sample."""
    import torch

    from brainforge.evaluation import peak_patch_error_mm
    from brainforge.training.metrics import peak_patch_error_mm as batched

    rng = np.random.default_rng(4)
    n_regions, n_times = head100.n_regions, 40
    targets, estimates, patches = [], [], []
    for _ in range(12):
        patch = rng.choice(n_regions, rng.integers(1, 6), replace=False)
        target = np.zeros((n_regions, n_times))
        target[patch] = np.hanning(n_times) * rng.uniform(0.5, 1.0, (len(patch), 1))
        targets.append(target)
        estimates.append(target * 0.3 + rng.normal(size=target.shape) * 0.2)
        patches.append(patch)
    expected = [
        peak_patch_error_mm(e, t, [p], head100.region_distance_mm)
        for e, t, p in zip(estimates, targets, patches, strict=True)
    ]
    active = torch.zeros(len(patches), n_regions, dtype=torch.bool)
    for row, patch in enumerate(patches):
        active[row, patch] = True
    got = batched(
        torch.as_tensor(np.stack(estimates)).transpose(1, 2), torch.as_tensor(np.stack(targets)).transpose(1, 2),
        active, torch.as_tensor(head100.region_distance_mm),
    )  # fmt: skip
    np.testing.assert_allclose(got.numpy(), expected)
    assert 0 < np.count_nonzero(expected) < len(expected)  # some peaks inside a patch, some outside


def test_stored_heldout_sets_are_reused_only_when_drawn_as_asked(head64, spike_library, tmp_path, monkeypatch):
    """A held-out folder from another seed, size or recipe is refused, never silently scored again."""
    import brainforge.anatomy as anatomy
    from brainforge.evaluation.heldout import HELDOUT_FORWARDS, write_heldout_test_sets
    from brainforge.synthesis import SampleGenerator, SynthesisConfig
    from brainforge.synthesis.store import write_test_set

    config = SynthesisConfig(n_sources=(1, 2), sensor_snr_db=(5.0, 20.0), deep_share=0.15)
    description = {"forward_mismatch": HELDOUT_FORWARDS["shift15"]}
    stored = tmp_path / "shift15.zarr"  # stands in for the set (drawn on the template, which this test does not score)
    write_test_set(SampleGenerator(head64, spike_library, config), 4, stored, seed=77, description=description,
                   progress=False)  # fmt: skip

    def no_new_head(*args, **kwargs):
        raise AssertionError("a stored set was drawn again")

    monkeypatch.setattr(anatomy, "make_head_model", no_new_head)
    assert write_heldout_test_sets(tmp_path, 4, seed=77, forwards=["shift15"]) == [stored]
    changes = {  # each change, and what the one-line refusal names
        "seed 77, not 78": {"seed": 78},
        "4 samples, not 5": {"n_samples": 5},
        r"sensor_snr_db \[5.0, 20.0\], not \[0.0, 20.0\]": {"sensor_snr_db": (0.0, 20.0)},
        "deep_share 0.15, not 0.3": {"deep_share": 0.3},
        "64 other channels, not the 32 asked for": {"montage": "1010-32"},
    }
    for named, options in changes.items():
        kwargs = {"seed": 77, "forwards": ["shift15"], **options}
        n_samples = kwargs.pop("n_samples", 4)
        with pytest.raises(BrainForgeError, match=f"{named}; choose another output folder or delete it"):
            write_heldout_test_sets(tmp_path, n_samples, **kwargs)


def test_a_solvers_interval_does_not_depend_on_the_rest_of_the_table():
    import pandas as pd

    from brainforge.evaluation.benchmark_config import CONDITIONS, BenchmarkConfig
    from brainforge.evaluation.summary import summarize

    rng = np.random.default_rng(0)
    rows = []
    for solver in ("a", "b"):
        for i in range(40):
            row = {"test_set": "t", "sample": i, "sensor_snr_db": 10.0, "solver": solver, "ms": 1.0, "n_regions": 1}
            row.update({condition: "x" if i % 2 else "y" for condition in CONDITIONS})
            row.update({"error_mm": rng.gamma(2.0, 5.0), "correlation": rng.uniform()})
            rows.append(row)
    samples = pd.DataFrame(rows)
    config = BenchmarkConfig(n_bootstrap=200, seed=3)
    both = summarize(samples, config).set_index(["solver", "condition", "value", "metric"])
    alone = summarize(samples[samples.solver == "a"][[*samples.columns[:-1]]], config)
    alone = alone.set_index(["solver", "condition", "value", "metric"])
    pd.testing.assert_frame_equal(both.loc[alone.index], alone)  # without b and without one metric: same cells
    assert both.loc[("a", "all", "all", "error_mm"), "ci_low"] < both.loc[("a", "all", "all", "error_mm"), "mean"]
