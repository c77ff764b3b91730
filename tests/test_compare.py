"""A tiny version of the network comparison: two networks, a few hundred samples, a finite table."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from brainforge import BrainForgeError
from brainforge.anatomy import ForwardBankConfig, make_head_model
from brainforge.evaluation.compare import (
    Candidate,
    ComparisonConfig,
    median_interval,
    run_comparison,
    write_comparison,
)
from brainforge.synthesis import SampleGenerator, SynthesisConfig
from brainforge.synthesis.store import write_test_set
from brainforge.training import TrainingConfig


def test_tiny_comparison_trains_scores_and_writes_a_finite_table(spike_library, tmp_path):
    recipe = SynthesisConfig(n_sources=(1, 2), sensor_snr_db=(5.0, 20.0), deep_share=0.2)
    # Scored on EEG from a forward model the networks never trained on (electrodes moved 10 mm).
    jittered = make_head_model("1010-64", electrode_jitter_mm=10.0, jitter_seed=1)
    test_set = write_test_set(
        SampleGenerator(jittered, spike_library, recipe), 8, tmp_path / "jitter.zarr", seed=5, progress=False,
        description={"forward_mismatch": {"electrode_jitter_mm": 10.0, "jitter_seed": 1}},
    )  # fmt: skip
    small = {"grid_size": 16, "d_model": 32, "n_heads": 2, "n_layers": 1, "dim_feedforward": 64,
             "samples_per_token": 10}  # fmt: skip
    training = TrainingConfig(
        loss="relative_mse_cosine", learning_rate=1e-3, batch_size=16, samples_per_epoch=96, val_samples=16,
        max_epochs=2, patience=5, seed=14, montage_subsets=(16, 64), num_workers=0,
    )  # fmt: skip
    config = ComparisonConfig(
        candidates=(Candidate("gru", "gru"), Candidate("cnn_transformer_linear", "cnn_transformer", small)),
        cpu_budget_s=600.0,
        recipe=recipe,
        training=training,
        forward_bank=None,
        classical=("sloreta",),
        test_sets=(str(test_set),),
        channel_counts=(16,),
        n_bootstrap=100,
    )
    result = run_comparison(config, tmp_path / "comparison")
    table = result.table
    rows = {(row.solver, row.n_channels) for row in table.itertuples()}
    # Fixed-montage networks are scored at 64 channels only; map-based ones and sLORETA at 64 and 16.
    assert rows == {
        ("sloreta", 64), ("sloreta", 16), ("gru", 64), ("cnn_transformer_linear", 64), ("cnn_transformer_linear", 16)
    }  # fmt: skip
    for column in ("peak_centre_error_mm", "correlation", "loc_error_mm", "segment_loc_error_mm", "ms_per_segment"):
        assert np.isfinite(table[column].to_numpy(float)).all(), column
    networks = table[table.solver != "sloreta"]
    assert (networks.n_parameters > 0).all() and (networks.samples_seen == 2 * 96).all()
    for label in ("gru", "cnn_transformer_linear"):
        budget = json.loads((tmp_path / "comparison" / "runs" / label / "budget.json").read_text())
        assert budget["epochs"] == 2 and budget["cpu_s"] > 0 and len(budget["curve"]) == 2
    text = (tmp_path / "comparison" / "comparison.md").read_text()
    assert "## 64 channels" in text and "## 16 channels" in text and "Training budgets" in text
    # The tables can be rebuilt from the stored samples without scoring again.
    stored = tmp_path / "comparison" / "benchmark"
    samples, timing = pd.read_csv(stored / "samples.csv"), pd.read_csv(stored / "timing.csv")
    write_comparison(config, tmp_path / "rebuilt", [test_set.name], samples, timing, result.budgets)
    assert (tmp_path / "rebuilt" / "comparison.md").read_text() == text
    # The trained runs are never reused (or resumed) for another budget or seed; the refusal names each difference.
    for changed, named in (
        (replace(config, training=replace(training, seed=15)), "training seed 14, not 15"),
        (replace(config, cpu_budget_s=1200.0), "CPU budget 10 min, not 20 min"),
        (replace(config, recipe=replace(recipe, noise_bank_seed=3)), "noise-bank seed 0, not 3"),
        (replace(config, forward_bank=ForwardBankConfig(seed=2)), "forward-bank seed none \\(no bank\\), not 2"),
        (
            replace(config, cpu_budget_s=1200.0, recipe=replace(recipe, noise_bank_seed=3)),
            "CPU budget 10 min, not 20 min; noise-bank seed 0, not 3",
        ),
    ):
        with pytest.raises(BrainForgeError, match=rf"trained with other settings \({named}\); choose another"):
            run_comparison(changed, tmp_path / "comparison", train_only=True)
    # A run stopped before its first epoch ended (run.json alone) is neither reused nor resumed: not refused.
    from brainforge.evaluation.compare import _check_comparison_run

    started = tmp_path / "started"
    started.mkdir()
    (started / "run.json").write_text((tmp_path / "comparison" / "runs" / "gru" / "run.json").read_text())
    _check_comparison_run(started, replace(config, cpu_budget_s=1200.0))
    # A run recorded before the bank seeds were options (its data has no noise_bank_seed) counts as seed 0.
    old = json.loads((tmp_path / "comparison" / "runs" / "gru" / "run.json").read_text())
    del old["data"]["synthesis"]["noise_bank_seed"]
    (started / "budget.json").write_text("{}")
    (started / "run.json").write_text(json.dumps(old))
    _check_comparison_run(started, config)
    with pytest.raises(BrainForgeError, match=r"noise-bank seed 0, not 1\); choose"):
        _check_comparison_run(started, replace(config, recipe=replace(recipe, noise_bank_seed=1)))
    # An older run trained on a bank whose record has no seed used seed 0.
    old["data"]["forward_bank"] = {"n_placements": 4096}
    (started / "run.json").write_text(json.dumps(old))
    _check_comparison_run(started, replace(config, forward_bank=ForwardBankConfig()))
    with pytest.raises(BrainForgeError, match=r"forward-bank seed 0, not 2\); choose"):
        _check_comparison_run(started, replace(config, forward_bank=ForwardBankConfig(seed=2)))


def test_the_cli_defaults_are_the_comparisons():
    import inspect

    from brainforge.cli import compare_command
    from brainforge.evaluation.compare import DEFAULT_RECIPE, DEFAULT_TRAINING

    parameters = inspect.signature(compare_command).parameters
    assert parameters["seed"].default == DEFAULT_TRAINING.seed
    assert parameters["bank_seed"].default == ForwardBankConfig().seed
    assert parameters["noise_bank_seed"].default == DEFAULT_RECIPE.noise_bank_seed
    assert parameters["test_seed"].default == ComparisonConfig.test_seed
    assert parameters["cpu_minutes"].default * 60 == ComparisonConfig.cpu_budget_s


def test_median_interval_brackets_the_median():
    values = np.random.default_rng(0).normal(10.0, 2.0, 200)
    median, low, high = median_interval(values, 500, seed=0)
    assert low < median < high and median == np.median(values)
    assert median_interval(np.array([np.nan, 3.0, 3.0]), 100, 0) == (3.0, 3.0, 3.0)


def test_still_falling_needs_a_new_best_in_the_last_two_epochs():
    from brainforge.evaluation.compare import _still_falling

    def curve(values):
        return [{"val_peak_patch_error_mm": v} for v in values]

    assert not _still_falling(curve([36.6, 36.6]))  # flat: a network that has not started to learn
    assert not _still_falling(curve([20.0, 12.0, 13.0, 14.0]))
    assert _still_falling(curve([20.0, 12.0, 13.0, 11.0]))
    assert _still_falling(curve([20.0, 15.0]))
    assert not _still_falling(curve([20.0]))


def test_damaged_comparison_records_stop_on_one_line(tmp_path):
    from brainforge.evaluation.compare import train_candidate

    run_dir = tmp_path / "runs" / "gru"
    run_dir.mkdir(parents=True)
    (run_dir / "budget.json").write_text('{"cpu_seconds": 12')  # a write cut short
    with pytest.raises(BrainForgeError, match=r"budget.json is damaged .*delete it"):
        train_candidate(None, None, None, run_dir, progress=False)
    from brainforge.evaluation.compare import _check_comparison_run

    (run_dir / "run.json").write_text("{")
    with pytest.raises(BrainForgeError, match=r"run.json is damaged .*delete .*gru to train that network again"):
        _check_comparison_run(run_dir, None)
