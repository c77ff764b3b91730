"""The benchmark: every solver on the same stored test sets, conditions, intervals, tables and plots."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from brainforge import BrainForgeError
from brainforge.anatomy import make_head_model
from brainforge.anatomy.forward_mismatch import forward_mismatch_label, parse_forward_mismatch
from brainforge.evaluation.benchmark import (
    BenchmarkConfig,
    check_solver_names,
    check_test_set_head,
    run_benchmark,
)
from brainforge.evaluation.summary import bootstrap_interval, format_paired_difference, paired_difference
from brainforge.models import build_model, save_model
from brainforge.synthesis import SampleGenerator, SynthesisConfig
from brainforge.synthesis.store import read_test_set, write_test_set
from brainforge.topomap import Montage


@pytest.fixture(scope="module")
def test_sets(head64, spike_library, tmp_path_factory):
    """A matched test set (1-2 sources, some deep) and one made on a jittered forward model."""
    folder = tmp_path_factory.mktemp("benchmark")
    config = SynthesisConfig(n_sources=(1, 2), sensor_snr_db=(5.0, 20.0), deep_share=0.3)
    matched = write_test_set(
        SampleGenerator(head64, spike_library, config), 10, folder / "matched.zarr", progress=False
    )
    jittered_head = make_head_model("1010-64", electrode_jitter_mm=10.0, jitter_seed=1)
    mismatched = write_test_set(
        SampleGenerator(jittered_head, spike_library, config), 6, folder / "jitter.zarr", seed=1, progress=False,
        description={"forward_mismatch": {"electrode_jitter_mm": 10.0, "jitter_seed": 1}},
    )  # fmt: skip
    return matched, mismatched


@pytest.fixture(scope="module")
def model_dirs(head64, tmp_path_factory):
    """An (untrained) map-based network and a fixed-montage one, saved as model folders."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models")
    montage = Montage.from_head_model(head64)
    cnn = build_model("cnn_transformer", head64.n_regions, montage, grid_size=16, d_model=32, n_layers=1)
    gru = build_model("gru", head64.n_regions, montage)
    return (
        save_model(cnn.eval(), folder / "cnn", {"training": {"crop_samples": 64}}),
        save_model(gru.eval(), folder / "gru"),
    )


def test_benchmark_writes_every_table_and_plot(test_sets, model_dirs, tmp_path):
    out = tmp_path / "report"
    solvers = ["sloreta", "mne", "lcmv", *map(str, model_dirs)]
    config = BenchmarkConfig(channel_counts=(32,), n_bootstrap=200)
    result = run_benchmark(solvers, test_sets, out, config, progress=False)
    samples = pd.read_csv(out / "samples.csv")
    # Every solver on every sample; the fixed-montage GRU cannot run on 32 of its 64 channels.
    assert set(samples.solver) == {"sloreta", "mne", "lcmv", "cnn", "gru"}
    counts = samples.groupby(["solver", "n_channels"]).size()
    assert counts[("sloreta", 64)] == counts[("sloreta", 32)] == counts[("cnn", 32)] == 16
    assert ("gru", 32) not in counts and counts[("gru", 64)] == 16
    assert len(result.skipped) == 1 and result.skipped[0].startswith("gru on 32 channels")
    # Conditions come from the samples and the test sets.
    assert set(samples.forward) == {"matched", "jitter:10"}
    assert set(samples.snr_db) <= {5.0, 10.0, 15.0, 20.0} and set(samples.n_sources) <= {1, 2}
    assert set(samples.depth) <= {"deep", "superficial"}
    assert (samples.ms > 0).all()
    # Summaries recompute from the per-sample rows, and each interval holds its mean.
    summary = pd.read_csv(out / "summary.csv")
    row = summary[
        (summary.solver == "sloreta") & (summary.condition == "all") & (summary.metric == "peak_centre_error_mm")
    ]
    values = samples[samples.solver == "sloreta"].peak_centre_error_mm
    assert row["mean"].item() == pytest.approx(values.mean()) and row["median"].item() == pytest.approx(values.median())
    finite = summary.dropna(subset=["ci_low"])
    assert ((finite.ci_low <= finite["mean"] + 1e-9) & (finite["mean"] <= finite.ci_high + 1e-9)).all()
    report = (out / "report.md").read_text()
    for heading in ("## All samples", "## By forward", "## By n_channels", "## Time", "## Skipped"):
        assert heading in report
    assert "Failures" in report and "- sloreta: " in report
    assert {"segment_loc_error_mm", "segment_correlation", "failed", "peak_patch_error_mm"} <= set(samples.columns)
    assert (samples.peak_patch_error_mm <= samples.peak_centre_error_mm + 1e-9).all()
    for name in ("error_vs_snr.png", "error_vs_channels.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    timing = pd.read_csv(out / "timing.csv")
    assert set(timing.solver) == {"sloreta", "mne", "lcmv", "cnn", "gru"} and (timing.fit_s > 0).all()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_sloreta_beats_plain_mne_on_peak_error(test_sets, tmp_path):
    """MNE's depth bias drags its peak away from the sources; sLORETA's standardization removes it."""
    result = run_benchmark(
        ["sloreta", "mne"], test_sets[:1], tmp_path / "r", BenchmarkConfig(n_bootstrap=50), progress=False
    )
    errors = result.samples.groupby("solver").peak_centre_error_mm.mean()
    assert errors["sloreta"] < errors["mne"]


def test_bootstrap_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(0)
    values = rng.normal(10.0, 2.0, 400)
    low, high = bootstrap_interval(values, 4000, 0.95, np.random.default_rng(1))
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert low == pytest.approx(values.mean() - half, abs=0.05) and high == pytest.approx(
        values.mean() + half, abs=0.05
    )
    assert np.isnan(bootstrap_interval(np.array([np.nan]), 10, 0.95, rng)[0])


def _samples_table(errors_a, errors_b, n_channels=(64,)) -> pd.DataFrame:
    """A samples.csv-like table: solvers a and b on the same samples of two test sets."""
    rows = []
    for solver, errors in (("a", errors_a), ("b", errors_b)):
        for i, error in enumerate(errors):
            for channels in n_channels:
                test_set = f"set{i % 2}.zarr"
                rows.append({"test_set": test_set, "sample": i // 2, "n_channels": channels, "solver": solver,
                             "peak_centre_error_mm": error + (channels == 16)})  # fmt: skip
    return pd.DataFrame(rows)


def test_paired_difference_matches_samples_not_rows():
    rng = np.random.default_rng(0)
    errors_a = rng.uniform(0, 30, 80)
    errors_b = errors_a - 2.0 + rng.normal(0, 1, 80)
    table = _samples_table(errors_a, errors_b, n_channels=(64, 16))
    shuffled = table.sample(frac=1.0, random_state=1)  # pairing must follow the keys, not the row order
    result = paired_difference(shuffled, "a", "b", 64, seed=3)
    expected = errors_b - errors_a
    assert (result["n"], result["n_dropped"]) == (80, 0)
    assert result["mean"] == pytest.approx(expected.mean())
    assert result["mean_low"] < result["mean"] < result["mean_high"] < 0  # 2 mm better, +-1 mm noise
    assert result["mean_high"] - result["mean_low"] < 1.0  # far narrower than the 30 mm spread of the errors
    assert result["median"] == pytest.approx(np.median(errors_b) - np.median(errors_a))
    assert result["median_low"] <= result["median"] <= result["median_high"] < 0
    assert result["share_lower"] == pytest.approx(np.mean(expected < 0))
    assert result["sign_test_p"] < 1e-6  # nearly all 80 pairs better
    assert paired_difference(shuffled, "a", "b", 64, seed=3) == result  # seeded
    assert paired_difference(shuffled, "b", "a", 64, seed=3)["mean"] == pytest.approx(-result["mean"])
    # Unpaired, the medians' own 95 % intervals overlap widely: pairing is what resolves 2 mm.
    low_a, high_a = bootstrap_interval(errors_a, 2000, 0.95, 3, statistic=np.median)
    low_b, high_b = bootstrap_interval(errors_b, 2000, 0.95, 3, statistic=np.median)
    assert max(low_a, low_b) < min(high_a, high_b)


def test_paired_difference_drops_non_finite_pairs_and_names_bad_input():
    errors_a = np.array([10.0, 12.0, np.nan, 8.0])
    errors_b = np.array([9.0, 11.0, 5.0, 7.0])
    table = _samples_table(errors_a, errors_b)
    result = paired_difference(table, "a", "b", 64)
    assert (result["n"], result["n_dropped"]) == (3, 1)
    assert (result["mean"], result["mean_low"], result["mean_high"]) == (-1.0, -1.0, -1.0)
    assert (result["median"], result["median_low"], result["median_high"]) == (-1.0, -1.0, -1.0)
    assert (result["share_lower"], result["share_higher"]) == (1.0, 0.0)
    assert result["sign_test_p"] == pytest.approx(0.25)  # 3 of 3 lower: 2 * 0.5 ** 3
    with pytest.raises(BrainForgeError, match="No 'c' rows at 64 channels"):
        paired_difference(table, "a", "c", 64)
    with pytest.raises(BrainForgeError, match="No 'a' rows at 16 channels"):
        paired_difference(table, "a", "b", 16)
    with pytest.raises(BrainForgeError, match="repeat"):
        paired_difference(pd.concat([table, table]), "a", "b", 64)
    assert format_paired_difference(result) == (
        "mean -1.00 mm [-1.00, -1.00], medians -1.00 mm [-1.00, -1.00]; better in 100%, worse in 0% "
        "(sign test p = 0.250) of 3, 1 non-finite left out"
    )
    assert format_paired_difference(paired_difference(table.fillna(10.0), "a", "b", 64)).endswith("of 4")


def test_bad_input_is_refused(test_sets, head64, tmp_path):
    with pytest.raises(BrainForgeError, match="Unknown solver 'magic'"):
        check_solver_names(["sloreta", "magic"])
    assert check_solver_names(["sLORETA", "default"]) == ["sloreta", "default"]  # as localize takes them
    (tmp_path / "empty_model").mkdir()
    with pytest.raises(BrainForgeError, match=r"no model\.safetensors"):
        check_solver_names([str(tmp_path / "empty_model")])
    metadata = dict(read_test_set(test_sets[0]).metadata)
    metadata["region_centres_mm"] = (np.asarray(metadata["region_centres_mm"]) + 5.0).tolist()
    with pytest.raises(BrainForgeError, match="another head model"):
        check_test_set_head(metadata, head64, "other.zarr")
    with pytest.raises(BrainForgeError, match="Test set not found"):
        run_benchmark(["sloreta"], [tmp_path / "none.zarr"], tmp_path / "out", progress=False)
    # A stored held-out set on other regions than a comparison's networks is not reused.
    from brainforge.evaluation.heldout import _check_heldout_reuse

    with pytest.raises(BrainForgeError, match=r"on 1000 cortical regions, not 500; delete it"):
        _check_heldout_reuse(test_sets[0], 10, 0, None, {}, "1010-64", n_regions=500)
    # A copy cut short: its record broken, or an array folder lost.
    import shutil

    broken = shutil.copytree(test_sets[0], tmp_path / "broken.zarr")
    next(path for path in (broken / "eeg").rglob("*") if path.is_file() and path.name != "zarr.json").unlink()
    with pytest.raises(BrainForgeError, match=r"broken.zarr is damaged .*1 of its \d+ EEG chunks are missing"):
        read_test_set(broken)
    # A record of more samples than its arrays hold.
    import zarr

    short = shutil.copytree(test_sets[0], tmp_path / "short.zarr")
    root = zarr.open_group(str(short), mode="r+")
    record = dict(root.attrs["brainforge_test_set"])
    record["n_samples"] += 1
    root.attrs["brainforge_test_set"] = record
    with pytest.raises(BrainForgeError, match=r"short.zarr is damaged .*do not hold the \d+ samples it records"):
        read_test_set(short)
    shutil.rmtree(broken / "onsets")
    with pytest.raises(BrainForgeError, match=r"broken.zarr is damaged \(a copy cut short"):
        read_test_set(broken)
    (broken / "zarr.json").write_text('{"zarr_format": 3, "node_')
    with pytest.raises(BrainForgeError, match=r"broken.zarr is damaged"):
        run_benchmark(["sloreta"], [broken], tmp_path / "out", progress=False)
    with pytest.raises(BrainForgeError, match="No 10-10 subset"):
        BenchmarkConfig(channel_counts=(17,))
    with pytest.raises(BrainForgeError, match="--lambda2 must be positive"):
        BenchmarkConfig(solver_lambda2=0.0)
    assert forward_mismatch_label(None) == "matched"
    assert forward_mismatch_label({"conductivity": [0.3, 0.003, 0.3]}) == "skull:0.003"
    # One grammar: the label of the parsed text is the text (a shift is named by its distance).
    for text in ("skull:0.01", "jitter:5", "shift:25", "lower:25", "sphere"):
        assert forward_mismatch_label(parse_forward_mismatch(text)) == text
    assert parse_forward_mismatch("shift:15@0")["cap_shift_mm"] == (15.0, 0.0)
    assert parse_forward_mismatch("jitter:10") == {"electrode_jitter_mm": 10.0}  # seed 0, make_head_model's default
    assert parse_forward_mismatch("jitter:10@3") == {"electrode_jitter_mm": 10.0, "jitter_seed": 3}
    assert forward_mismatch_label(parse_forward_mismatch("jitter:10@3")) == "jitter:10"
    with pytest.raises(BrainForgeError, match="--forward-mismatch jitter seed -1: a seed must be an integer"):
        parse_forward_mismatch("jitter:10@-1")
    with pytest.raises(BrainForgeError, match=r"--forward-mismatch must be .*jitter:MM\[@SEED\]"):
        parse_forward_mismatch("jitter:10@x")
    assert parse_forward_mismatch("lower:25") == {"cap_vertical_shift_mm": -25.0}
    for bad in ("skull:thick", "bone:1", "sphere:2", "lower:deep"):
        with pytest.raises(BrainForgeError, match="--forward-mismatch must be skull"):
            parse_forward_mismatch(bad)


def test_cli_benchmark(test_sets, tmp_path, cli_in_process):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "brainforge.cli", "benchmark", *args], capture_output=True, text=True
        )  # fmt: skip

    out = tmp_path / "cli"
    result = run("--solvers", "eloreta", "--test", str(test_sets[0]), "--out", str(out), "--max-samples", "3",
                 "--bootstrap", "20", "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "eloreta: localization error" in result.stdout and (out / "report.md").is_file()
    assert len(pd.read_csv(out / "samples.csv")) == 3
    for args, message in [
        (["--solvers", "sloreta,nope"], "Unknown solver"),
        (["--solvers", "sloreta", "--channels", "sixteen"], "--channels"),
    ]:
        result = run(*args, "--test", str(test_sets[0]), "--out", str(tmp_path / "x"))
        lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    # Config errors name the options (in this process: the same entry point, no new interpreter).
    code, _, stderr = cli_in_process("benchmark", "--solvers", "sloreta", "--bootstrap", "0", "--test",
                                     str(test_sets[0]), "--out", str(tmp_path / "x"))  # fmt: skip
    assert code == 2 and "Error: --bootstrap must be >= 1" in stderr, stderr


def test_learned_solver_runs_in_overlapping_windows(model_dirs, head64):
    from brainforge.inverse import LearnedSolver
    from brainforge.synthesis import normalize_eeg

    solver = LearnedSolver(model_dirs[0]).fit(head64)
    assert solver.window_samples is None and solver.window_length == 64  # the training crop
    starts, length = solver.window_starts(200)
    # The default overlap, 0.1 of a window: steps of round(0.9 * 64) = 58, the last window ending with the data.
    assert length == 64 and starts == [0, 58, 116, 136]
    assert LearnedSolver(model_dirs[0], overlap=0.5).window_starts(200)[0] == [0, 32, 64, 96, 128, 136]
    eeg = np.random.default_rng(0).normal(size=(head64.n_channels, 200)) * 1e-5
    activity = solver.apply_regions(eeg, 500.0)
    assert activity.data.shape == (head64.n_regions, 200) and np.isfinite(activity.data).all()
    # One window: the network on the normalized window, scaled back by the normalization factor.
    window = torch.as_tensor(eeg[:, :64].T[None], dtype=torch.float32)
    centred = window - window.mean(dim=1, keepdim=True)
    centred = centred - centred.mean(dim=2, keepdim=True)
    with torch.inference_mode():
        expected = solver.model_(normalize_eeg(window), solver.montage_)[0].numpy().T * centred.abs().max().item()
    np.testing.assert_allclose(solver.apply_regions(eeg[:, :64], 500.0).data, expected, rtol=1e-4, atol=1e-9)
    with pytest.raises(BrainForgeError, match="resample"):
        solver.apply_regions(eeg, 250.0)
    # Without overlap the windows tile the recording (the last one shifted to end with it), and the
    # estimate in each is that window's own.
    tiled = LearnedSolver(model_dirs[0], overlap=0.0).fit(head64)
    starts, _ = tiled.window_starts(200)
    assert starts == [0, 64, 128, 136]
    np.testing.assert_allclose(tiled.apply_regions(eeg, 500.0).data[:, :64], expected, rtol=1e-4, atol=1e-9)
    with pytest.raises(BrainForgeError, match="overlap"):
        LearnedSolver(model_dirs[0], overlap=1.0)


def test_learned_solver_upsamples_sparse_montages(model_dirs, head64):
    """Fewer channels than the training montage: spherical splines onto it, then the network as on all."""
    from brainforge.anatomy import CHANNEL_SUBSETS
    from brainforge.inverse import LearnedSolver
    from brainforge.topomap import montage_upsampling

    head16 = head64.pick_channels(CHANNEL_SUBSETS["1010-16"])
    sparse = LearnedSolver(model_dirs[0]).fit(head16)
    full = LearnedSolver(model_dirs[0]).fit(head64)
    assert full.upsample_matrix_ is None and full.montage_.n_channels == 64
    assert sparse.upsample_matrix_.shape == (64, 16) and sparse.montage_.ch_names == full.montage_.ch_names
    assert sparse.n_channels_ == 16  # the EEG still has its own 16 channels
    np.testing.assert_array_equal(sparse.upsample_matrix_, montage_upsampling(head16.ch_pos_mm, full.model_.montage))
    # Its rows follow the network's montage and its columns the recorded channels: each recorded
    # electrode's row peaks on its own column, and a smooth field (a first-order spherical harmonic)
    # is carried to the 48 electrodes left out within 1 % of its range.
    recorded = [full.montage_.ch_names.index(name) for name in head16.ch_names]
    assert (sparse.upsample_matrix_[recorded].argmax(axis=1) == np.arange(16)).all()
    positions = full.montage_.ch_pos_mm
    directions = positions - positions.mean(axis=0)
    field = directions @ np.array([0.3, -0.5, 0.8]) / np.linalg.norm(directions, axis=1)
    others = np.setdiff1d(np.arange(64), recorded)
    assert np.abs(sparse.upsample_matrix_[others] @ field[recorded] - field[others]).max() < 0.01 * np.ptp(field)
    eeg = np.random.default_rng(1).normal(size=(16, 200)) * 1e-5
    upsampled = sparse.apply_regions(eeg, 500.0).data
    expected = full.apply_regions(sparse.upsample_matrix_ @ eeg, 500.0).data
    np.testing.assert_allclose(upsampled, expected, rtol=1e-4, atol=1e-10)
    as_is = LearnedSolver(model_dirs[0], upsample=False).fit(head16)
    assert as_is.upsample_matrix_ is None and as_is.montage_.n_channels == 16
    assert not np.allclose(as_is.apply_regions(eeg, 500.0).data, upsampled, rtol=1e-2)
    assert "upsample" in LearnedSolver(model_dirs[0]).get_params()
    with pytest.raises(BrainForgeError, match="upsample must be True or False"):
        LearnedSolver(model_dirs[0], upsample="yes")
    # A fixed-montage network keeps its one-line refusal of a montage it lacks channels of.
    fixed = LearnedSolver(model_dirs[1]).fit(head16)
    assert fixed.upsample_matrix_ is None
    with pytest.raises(BrainForgeError, match="fixed channels"):
        fixed.apply_regions(eeg, 500.0)


def test_a_router_is_routed_by_the_recorded_channel_count_then_upsampled(model_dirs, head64, tmp_path):
    """A 16-channel cap goes to the sparse member (not to the dense one through its 64 upsampled channels)."""
    from brainforge.anatomy import CHANNEL_SUBSETS
    from brainforge.inverse import LearnedSolver
    from brainforge.models import combine_by_channel_count, load_model, save_model

    dense, _ = load_model(model_dirs[0])
    torch.manual_seed(1)
    sparse = build_model("cnn_transformer", head64.n_regions, dense.montage, **dense.hyper_parameters()).eval()
    crop = {"training": {"crop_samples": 64}}
    folder = save_model(combine_by_channel_count(dense, sparse), tmp_path / "router", crop)
    head16 = head64.pick_channels(CHANNEL_SUBSETS["1010-16"])
    routed16, routed64 = LearnedSolver(folder).fit(head16), LearnedSolver(folder).fit(head64)
    assert routed16.upsample_matrix_.shape == (64, 16) and routed64.upsample_matrix_ is None
    eeg = np.random.default_rng(1).normal(size=(16, 200)) * 1e-5
    upsampled = routed16.upsample_matrix_ @ eeg
    # The sparse member on the upsampled EEG, and the dense member's 64-channel results unchanged.
    sparse_dir = save_model(sparse, tmp_path / "sparse", crop)
    expected = LearnedSolver(sparse_dir).fit(head64).apply_regions(upsampled, 500.0).data
    np.testing.assert_allclose(routed16.apply_regions(eeg, 500.0).data, expected, rtol=1e-4, atol=1e-10)
    dense_64 = LearnedSolver(model_dirs[0]).fit(head64).apply_regions(upsampled, 500.0).data
    assert not np.allclose(expected, dense_64, rtol=1e-2)  # the members differ
    np.testing.assert_array_equal(routed64.apply_regions(upsampled, 500.0).data, dense_64)


def test_failures_are_counted_not_dropped():
    from brainforge.evaluation.benchmark import failure_flags

    estimate = np.zeros((5, 10))
    assert failure_flags(estimate, {"peak_patch_error_mm": 10.0}, 40.0) == {
        "failed_nonfinite": 0.0, "failed_ghost": 0.0, "failed": 0.0,
    }  # fmt: skip
    assert failure_flags(estimate, {"peak_patch_error_mm": 55.0}, 40.0)["failed_ghost"] == 1.0
    estimate[2, 3] = np.nan
    flags = failure_flags(estimate, {"peak_patch_error_mm": np.nan}, 40.0)
    assert flags["failed_nonfinite"] == 1.0 and flags["failed"] == 1.0 and flags["failed_ghost"] == 0.0
