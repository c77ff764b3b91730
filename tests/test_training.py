"""Tiny training runs: the networks learn, runs resume, the CLI trains."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from brainforge import BrainForgeError
from brainforge.anatomy import CHANNEL_SUBSETS, make_head_model
from brainforge.models import build_model
from brainforge.synthesis import SampleGenerator, SynthesisConfig
from brainforge.topomap import Montage
from brainforge.training import (
    SyntheticDataModule,
    TrainingConfig,
    evaluate_peak_error,
    load_training_state,
    random_region_error_mm,
    save_training_state,
    train,
)

from ._ddp_training import BUDGETED_EPOCHS

CROP = 16


@pytest.fixture(scope="module")
def head100(head64):
    # 100 cortical regions + 14 deep ones, sharing head64's cached leadfield.
    return make_head_model("1010-64", n_regions=100)


@pytest.fixture(scope="module")
def generator(head100, spike_library):
    return SampleGenerator(head100, spike_library, SynthesisConfig(n_sources=(1, 1), sensor_snr_db=(15, 20)))


@pytest.fixture(scope="module")
def held_out(generator):
    """128 samples from a seed no training run uses, cut around the spike peak."""
    arrays = SyntheticDataModule(generator, TrainingConfig(val_samples=128, seed=12345)).validation_arrays()
    peaks = np.abs(arrays["sources"]).max(axis=2).argmax(axis=1)
    starts = np.clip(peaks - CROP // 2, 0, arrays["eeg"].shape[1] - CROP)
    window = starts[:, None] + np.arange(CROP)
    rows = np.arange(len(peaks))[:, None]
    eeg = arrays["eeg"][rows, window]
    eeg = eeg - eeg.mean(axis=1, keepdims=True)
    return {"eeg": eeg, "sources": arrays["sources"][rows, window], "active": arrays["active"]}


def _renormalize(eeg):
    eeg = eeg - eeg.mean(axis=2, keepdims=True)
    return (eeg / np.abs(eeg).max(axis=(1, 2), keepdims=True)).astype(np.float32)


def _chance(held_out, head):
    distance = torch.as_tensor(head.region_distance_mm, dtype=torch.float32)
    return float(random_region_error_mm(torch.as_tensor(held_out["active"]), distance).mean())


TINY = TrainingConfig(
    samples_per_epoch=1024, val_samples=64, batch_size=32, max_epochs=6, crop_samples=CROP,
    num_workers=0, learning_rate=3e-3, seed=3,
)  # fmt: skip

CNN = {"grid_size": 16, "conv_channels": (16,), "reduce_channels": 8, "d_model": 64, "n_layers": 1,
       "dim_feedforward": 128, "dropout": 0.0}  # fmt: skip


def _check_learns(name, params, config, generator, head, held_out, tmp_path):
    torch.manual_seed(config.seed)
    untrained = build_model(name, head.n_regions, Montage.from_head_model(head), **params)
    result = train(name, generator, tmp_path / name, config, model_params=params, progress=False)
    distance = head.region_distance_mm
    arrays = dict(held_out, eeg=_renormalize(held_out["eeg"]))
    with torch.inference_mode():
        trained_error = _peak_error(result.model, arrays, distance, None)
        untrained_error = _peak_error(untrained, arrays, distance, None)
    chance = _chance(held_out, head)
    print(f"{name}: held-out peak error {trained_error:.1f} mm, untrained {untrained_error:.1f}, chance {chance:.1f}")
    assert trained_error < 0.5 * untrained_error
    assert trained_error < 0.5 * chance
    return result, trained_error


def _peak_error(model, arrays, distance, montage):
    return float(evaluate_peak_error(model, arrays, distance, montage).mean())


def test_cnn_transformer_on_montage_subsets_works_on_unseen_montages(generator, head100, held_out, tmp_path):
    # Trained on random 20-48 channel subsets of the 64: neither the full 64
    # nor the 16-channel 10-10 montage is a training montage exactly.
    config = TrainingConfig(**{**TINY.to_dict(), "montage_subsets": (20, 48), "max_epochs": 8})
    montage = Montage.from_head_model(head100)
    result, full = _check_learns("cnn_transformer", CNN, config, generator, head100, held_out, tmp_path)
    picks = [head100.ch_names.index(n) for n in CHANNEL_SUBSETS["1010-16"]]
    arrays = dict(held_out, eeg=_renormalize(held_out["eeg"][..., picks]))
    with torch.inference_mode():
        sixteen = _peak_error(result.model, arrays, head100.region_distance_mm, montage.pick(picks))
    chance = _chance(held_out, head100)
    print(f"16 channels: {sixteen:.1f} mm, 64 channels: {full:.1f} mm, chance {chance:.1f} mm")
    assert sixteen < 0.6 * chance
    assert result.best_metrics["val_peak_patch_error_mm"] < 0.5 * chance


@pytest.mark.parametrize("name", ["gru", "convdip", "deepsif"])
def test_published_networks_learn(name, generator, head100, held_out, tmp_path):
    params = {"deepsif": {"hidden": 200}}.get(name, {})
    _check_learns(name, params, TINY, generator, head100, held_out, tmp_path)


def test_compact_batches_crop_as_dense_ones(generator, head100):
    """Training crops factored targets before making them dense; the result equals cropping dense targets."""
    from brainforge.synthesis import SyntheticEEGDataset
    from brainforge.synthesis.dataset import densify_sources
    from brainforge.training.metrics import peak_times
    from brainforge.training.module import SourceLocalizer

    overlapping = SampleGenerator(
        generator.head, generator.library, SynthesisConfig(n_sources=(1, 3), overlap=True, max_onset_delay_ms=100)
    )
    model = build_model("cnn_transformer", head100.n_regions, Montage.from_head_model(head100), **CNN)
    module = SourceLocalizer(model, TINY, head100.region_distance_mm, head100.region_leadfield)
    for gen in (generator, overlapping):
        compact = next(iter(SyntheticEEGDataset(gen, n_samples=16, seed=2, batch_size=16).loader()))
        dense = densify_sources(compact)
        torch.testing.assert_close(compact["peak_time"], peak_times(dense["sources"]), rtol=0, atol=0)
        for random in (True, False):
            eeg, sources = module._crop(compact, random=random)
            dense_eeg, dense_sources = module._crop(dense, random=random)
            assert sources.shape == (16, CROP, head100.n_regions)
            assert torch.equal(eeg, dense_eeg) and torch.equal(sources, dense_sources)


def _group_is_gone(pgid: int) -> bool:
    """Whether no live process is left in process group ``pgid`` (zombies that await their adopter do not count)."""
    from pathlib import Path

    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
        except OSError:  # ended while listed
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return False
    return True


def _run_ddp_script(folder, *args: str, timeout_s: float = 300.0) -> list[dict]:
    """Run tests/_ddp_training.py (2 CPU ranks) into ``folder/run``; return what each rank wrote.

    Output goes to a file and the run to a session of its own: the test waits
    for every process of the run (rank 1 may still be writing its file after
    rank 0 exits), and kills them all after ``timeout_s`` or on any error,
    instead of waiting forever on an output pipe that a hung worker holds open.
    """
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = Path(__file__).with_name("_ddp_training.py")
    with open(folder / "output.txt", "w+") as output:
        process = subprocess.Popen([sys.executable, str(script), str(folder / "run"), *args], stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout_s
        try:
            returncode = process.wait(timeout=timeout_s)
            while not _group_is_gone(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            finished = _group_is_gone(process.pid)
        except subprocess.TimeoutExpired:
            returncode, finished = None, False
        finally:
            if not _group_is_gone(process.pid):
                with contextlib.suppress(ProcessLookupError):  # it may end between the check and the kill
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        output.seek(0)
        log = output.read()[-3000:]
    assert returncode is not None and finished, f"the two-process run hung for {timeout_s:.0f} s:\n{log}"
    assert returncode == 0, log
    return [json.loads((folder / "run" / f"seen_rank{r}.json").read_text()) for r in (0, 1)]


def test_process_cpu_seconds_counts_descendants_and_leaves_out_excluded_ones():
    """A busy child counts (it is a data worker's share); excluded, as another rank is, it and its subtree do not."""
    import subprocess
    import sys
    import time

    from brainforge.training.train import process_cpu_seconds

    busy = "import time\nend = time.monotonic() + 1.0\nwhile time.monotonic() < end: pass\ntime.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", busy])
    try:
        import psutil

        deadline = time.monotonic() + 60
        while sum(psutil.Process(child.pid).cpu_times()[:2]) < 0.8:  # until the child has burnt most of its second
            assert time.monotonic() < deadline, "the busy child never got 0.8 s of CPU"
            time.sleep(0.05)
        counted, excluded = process_cpu_seconds(), process_cpu_seconds(exclude_pids={child.pid})
        assert counted - excluded > 0.7
    finally:
        child.kill()
        child.wait()


def test_cpu_budget_checks_about_once_per_interval_and_stops_past_the_budget(monkeypatch):
    """The check (about 2 ms) runs about once per ``check_interval_s`` of wall time, not at every step.

    Steps of 10 ms of CPU each on a wall clock that moves 1/64 s a step (exact in binary): with a 1/8-s
    interval the checks fall at the start, after the first step (to learn a step's length), then every 8
    steps, and the run stops at the first check past the 0.6-s budget, at most 8 steps (plus the checks'
    own time) late.
    """
    import importlib
    import time
    from types import SimpleNamespace

    from brainforge.training.train import CpuTimeBudget

    train_module = importlib.import_module("brainforge.training.train")  # the package's ``train`` is the function

    wall = [0.0]
    monkeypatch.setattr(train_module, "time", SimpleNamespace(perf_counter=lambda: wall[0]))
    trainer = SimpleNamespace(world_size=1, global_step=0, should_stop=False, strategy=SimpleNamespace(launcher=None))
    budget = CpuTimeBudget(0.6, check_interval_s=0.125)
    checks = []
    check = budget._check
    budget._check = lambda trainer: (checks.append(trainer.global_step), check(trainer))
    budget.on_train_start(trainer, None)
    while not trainer.should_stop:
        end = time.process_time() + 0.01
        while time.process_time() < end:
            pass  # a step that burns 10 ms of CPU
        wall[0] += 1 / 64
        trainer.global_step += 1
        budget.on_train_batch_end(trainer, None, None, None, trainer.global_step - 1)
        assert trainer.global_step < 1000, "the budget never stopped the run"
    assert checks == [0, 1, *range(9, trainer.global_step + 1, 8)], checks
    assert budget.exhausted and 0.6 <= budget.used < 0.6 + 0.15, budget.used
    assert 40 <= trainer.global_step <= 73, trainer.global_step


def test_validation_shares_under_ddp_cover_the_set_once_and_refuse_empty_ranks(generator):
    """Each rank validates every n-th sample, without the repeats Lightning's sampler pads odd sets with."""
    from types import SimpleNamespace

    data = SyntheticDataModule(generator, TrainingConfig(val_samples=9, batch_size=4, seed=5))
    shares = []
    for rank in range(2):
        data.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        shares.append([int(i) for batch in data.val_dataloader() for i in batch["index"]])
    assert shares == [[0, 2, 4, 6, 8], [1, 3, 5, 7]]
    data.trainer = SimpleNamespace(world_size=1, global_rank=0)
    assert [int(i) for batch in data.val_dataloader() for i in batch["index"]] == list(range(9))
    data.trainer = SimpleNamespace(world_size=16, global_rank=0)
    with pytest.raises(BrainForgeError, match="--val-samples 9 is fewer than the 16 training processes"):
        data.val_dataloader()


def test_ddp_on_two_cpu_processes_splits_the_batches(spike_library, tmp_path):
    """Lightning DDP (gloo, 2 CPU processes): the ranks train on disjoint equal shares and split the validation set.

    Only rank 1's validation batch holds a sample without a source; both ranks still log (and sum) the same
    metrics, so neither waits for a collective the other never joins.
    """
    ranks = _run_ddp_script(tmp_path)
    assert all(rank["epochs"] == 2 and rank["best_metrics"] for rank in ranks)
    assert ranks[0]["best_metrics"] == ranks[1]["best_metrics"]
    assert {"val_peak_centre_error_mm", "val_background_amplitude"} <= set(ranks[0]["best_metrics"])
    assert all(np.isfinite(value) for value in ranks[0]["best_metrics"].values()), ranks[0]["best_metrics"]
    # The ranks' summed means are the whole set's: the exported model, validated by one process alone, scores the same
    # (Lightning's sync_dist mean floored the ranks' summed counts: 31 errors counted as 30, +3 %).
    for name, value in ranks[0]["validated_alone"].items():
        assert ranks[0]["best_metrics"][name] == pytest.approx(value, rel=1e-4), name
    # The ranks split the whole validation set between them, each sample once (each once held half of it, then
    # validated half of that; Lightning's default sampler would also pad an odd set with repeats of its first): 33
    # samples, two batches of 32 and 1, on rank 0 and one batch of 32 on rank 1. As this test needs, one spike-free
    # sample lies on rank 1 and none on rank 0.
    for first, second in zip(ranks[0]["validated"], ranks[1]["validated"], strict=True):
        indices = sorted(i for i, _ in first + second)
        assert (len(first), len(second)) == (33, 32) and indices == list(range(65)), indices
        assert all(has_source for _, has_source in first) and [s for _, s in second].count(False) == 1
    for epoch in range(2):
        first, second = (set(rank["seen"][epoch]) for rank in ranks)
        # 9 batches of 32: 4 per rank, the ninth left out so that neither rank waits for the other.
        assert len(first) == len(second) == 4 * 32 and not first & second
        assert first | second == set(range(8 * 32))


def test_ddp_run_resumes_from_its_last_epoch(spike_library, tmp_path):
    """--resume under DDP: both ranks restore the last epoch's checkpoint and train the next epoch, split as before."""

    def trained(rank: dict) -> tuple:
        """Whole epochs, global step, and the epochs whose loaders were iterated (Lightning also makes, and
        drops unused, the loader of epoch 0 before it restores the loop's state)."""
        iterated = [epoch for epoch, seen in zip(rank["seen_epochs"], rank["seen"], strict=True) if seen]
        return rank["epochs"], rank["global_step"], iterated

    first = _run_ddp_script(tmp_path, "epochs:1")
    assert [trained(rank) for rank in first] == [(1, 4, [0])] * 2
    resumed = _run_ddp_script(tmp_path, "resume:2")
    # Epoch 1 only (its own samples: the epoch index seeds them), and the step count goes on from the checkpoint's.
    assert [trained(rank) for rank in resumed] == [(2, 8, [1])] * 2
    assert resumed[0]["best_metrics"] == resumed[1]["best_metrics"]
    first_share, second_share = (set(next(seen for seen in rank["seen"] if seen)) for rank in resumed)
    assert len(first_share) == len(second_share) == 4 * 32 and not first_share & second_share
    assert load_training_state(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 8


def test_ddp_ranks_share_one_cpu_budget_and_stop_at_the_same_step(spike_library, tmp_path):
    """--max-cpu-time under DDP: the ranks' CPU times (workers included) are summed and all stop together.

    Each rank once judged its own CPU time (rank 0's with rank 1 inside it,
    the forkserver's ended workers left out): rank 0 stopped while rank 1
    went on, and their collectives no longer matched (gloo: "Received data
    size doesn't match expected size").
    """
    # 100 epochs of 32 steps per rank: about 900 CPU-s on this machine's two cores (two epochs took 18.6), so 10 s
    # cuts the run on any machine less than about 90 times faster.
    budget_s = 10.0
    ranks = _run_ddp_script(tmp_path, f"cpu:{budget_s:.0f}")
    assert ranks[0]["global_step"] == ranks[1]["global_step"]
    assert 0 < ranks[0]["global_step"] < BUDGETED_EPOCHS * 32
    assert all(rank["stopped_by"] == "max_cpu_time" for rank in ranks)
    assert ranks[0]["cpu_seconds"] == ranks[1]["cpu_seconds"] >= budget_s


def test_ddp_ranks_stop_at_the_same_step_on_the_wall_clock_budget(spike_library, tmp_path):
    """--max-time under DDP: the ranks average their clocks at each check, so all of them stop at the same step.

    (Lightning's timer broadcast rank 0's decision at every step; the budget now checks about once a second.)
    """
    ranks = _run_ddp_script(tmp_path, "wall:4")
    assert ranks[0]["global_step"] == ranks[1]["global_step"]
    assert 0 < ranks[0]["global_step"] < BUDGETED_EPOCHS * 32
    assert all(rank["stopped_by"] == "max_time" for rank in ranks)


def test_resume_continues_where_it_stopped(generator, tmp_path):
    config = TrainingConfig(
        samples_per_epoch=64, val_samples=16, batch_size=16, max_epochs=1, crop_samples=8, num_workers=0
    )
    params = {"dense_units": 16, "gru_units": 4}
    first = train("gru", generator, tmp_path, config, model_params=params, progress=False)
    assert first.epochs == 1 and (tmp_path / "model.safetensors").is_file()
    state = load_training_state(tmp_path / "checkpoints" / "last.ckpt")
    assert state["global_step"] == 4
    with pytest.raises(BrainForgeError, match="already holds a training run"):
        train("gru", generator, tmp_path, config, model_params=params, progress=False)
    replaced = train("gru", generator, tmp_path / "again", config, model_params=params, progress=False)
    assert replaced.epochs == 1
    again = train("gru", generator, tmp_path / "again", config, model_params=params, overwrite=True, progress=False)
    assert (
        again.epochs == 1 and load_training_state(tmp_path / "again" / "checkpoints" / "last.ckpt")["global_step"] == 4
    )
    longer = TrainingConfig(**{**config.to_dict(), "max_epochs": 2})
    second = train("gru", generator, tmp_path, longer, model_params=params, resume=True, progress=False)
    assert second.epochs == 2
    state = load_training_state(tmp_path / "checkpoints" / "last.ckpt")
    assert state["global_step"] == 8
    # Stopped and resumed, the run ends where one uninterrupted run ends, bit for bit: the data,
    # the optimizer and dropout (the GRU's 0.2) all continue, none restarts from step 0.
    straight = train("gru", generator, tmp_path / "straight", longer, model_params=params, progress=False)
    assert straight.epochs == 2
    resumed_state = load_training_state(tmp_path / "checkpoints" / "last.ckpt")["state_dict"]
    straight_state = load_training_state(tmp_path / "straight" / "checkpoints" / "last.ckpt")["state_dict"]
    assert resumed_state.keys() == straight_state.keys()
    for name, value in straight_state.items():
        torch.testing.assert_close(resumed_state[name], value, rtol=0, atol=0, msg=name)
    with pytest.raises(BrainForgeError, match="Nothing to resume"):
        train("gru", generator, tmp_path / "new", config, resume=True, progress=False)
    # Another network or other parameters than the run's: one line, before any training.
    other = {**params, "gru_units": 8}
    with pytest.raises(BrainForgeError, match=r"resume it with its own model and parameters"):
        train("gru", generator, tmp_path, longer, model_params=other, resume=True, progress=False)
    with pytest.raises(BrainForgeError, match="trains gru"):
        train("cnn_transformer", generator, tmp_path, longer, model_params=CNN, resume=True, progress=False)


def test_kill_9_then_resume_continues_from_the_last_epoch(tmp_path):
    """A run killed with SIGKILL keeps its last whole epoch; --resume goes on from there, never from scratch."""
    import csv
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    common = [
        "--head", "1010-16", "--n-regions", "50", "--samples-per-epoch", "32", "--val-samples", "8",
        "--batch-size", "8", "--crop", "8", "--workers", "0", "--no-progress",
    ]  # fmt: skip
    command = [sys.executable, "-c", "from brainforge.cli import main; main()", "train", "--model", "gru"]
    process = subprocess.Popen(
        [*command, "--out", str(out), "--max-epochs", "500", *common],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if last.is_file() and load_training_state(last)["epoch"] >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read()[-2000:]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    saved = load_training_state(last)  # whole and readable despite the kill
    epochs_done = saved["epoch"] + 1
    assert saved["global_step"] == 4 * epochs_done
    rerun = subprocess.run([*command, "--out", str(out), "--max-epochs", "1", *common], capture_output=True, text=True)
    assert rerun.returncode != 0 and "already holds a training run" in rerun.stderr + rerun.stdout
    target = epochs_done + 2
    resumed = subprocess.run(
        [*command, "--out", str(out), "--resume", "--max-epochs", str(target), "--no-progress"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_training_state(last)["global_step"] == 4 * target
    newest = max((out / "logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    with open(newest / "metrics.csv") as handle:
        epochs = {int(row["epoch"]) for row in csv.DictReader(handle) if row.get("epoch")}
    assert epochs == set(range(epochs_done, target)), epochs


def test_max_time_is_a_budget_per_invocation_checked_about_once_per_interval(monkeypatch):
    """--max-time: a resumed run gets its whole budget again, checked about once per interval, not every step.

    Lightning's timer restored the time already spent from the checkpoint (a run resumed with
    ``--max-time 01:20`` after 80 minutes stopped at once) and broadcast its decision at every step. On a
    fake wall clock that moves 1/64 s a step, a 1-s budget checked every 1/8 s stops at the first check past
    it: step 65 (checks at steps 0, 1, then every 8).
    """
    import importlib
    from types import SimpleNamespace

    from lightning.pytorch.trainer.call import _call_callbacks_load_state_dict

    from brainforge.training.train import CpuTimeBudget, WallTimeBudget, parse_cpu_time, parse_max_time

    train_module = importlib.import_module("brainforge.training.train")  # the package's ``train`` is the function

    assert parse_max_time("01:20") == parse_max_time("00:01:20:00") == 4800.0
    for text in ("1:2:3", "00:00", "ab:10", "-1:30"):
        with pytest.raises(BrainForgeError, match="--max-time takes HH:MM"):
            parse_max_time(text)
    # --max-cpu-time takes HH:MM only, by the same rules.
    assert parse_cpu_time("01:20") == 4800.0
    for text in ("00:01:20:00", "1:2:3", "00:00", "ab:10", "-1:30", "01:-30"):
        with pytest.raises(BrainForgeError, match="--max-cpu-time takes HH:MM"):
            parse_cpu_time(text)
    # A checkpoint of the code before (Lightning's timer at 5,000 s spent, the CPU budget at 123 s), loaded as a
    # resume does: the CPU budget takes up its seconds, the wall-time budget starts from nothing.
    budget, cpu_budget = WallTimeBudget(1.0, check_interval_s=0.125), CpuTimeBudget(3600.0)
    spent = {"time_elapsed": {"train": 5000.0, "sanity_check": 0.0, "validate": 0.0, "test": 0.0, "predict": 0.0}}
    old_checkpoint = {"callbacks": {"Timer": spent, "CpuTimeBudget": {"cpu_seconds": 123.0}}}
    _call_callbacks_load_state_dict(SimpleNamespace(callbacks=[budget, cpu_budget]), old_checkpoint)
    assert cpu_budget.used == 123.0 and budget.used == 0.0

    wall = [100.0]
    monkeypatch.setattr(train_module, "time", SimpleNamespace(perf_counter=lambda: wall[0]))
    trainer = SimpleNamespace(world_size=1, global_step=0, should_stop=False, strategy=SimpleNamespace(launcher=None))
    checks = []
    check = budget._check
    budget._check = lambda trainer: (checks.append(trainer.global_step), check(trainer))
    budget.on_train_start(trainer, None)
    while not trainer.should_stop:
        wall[0] += 1 / 64
        trainer.global_step += 1
        budget.on_train_batch_end(trainer, None, None, None, trainer.global_step - 1)
        assert trainer.global_step < 1000, "the budget never stopped the run"
    assert checks == [0, 1, *range(9, 66, 8)], checks
    assert budget.exhausted and trainer.global_step == 65 and budget.used == pytest.approx(65 / 64)


def test_a_time_limit_inside_an_epoch_is_reported_as_a_partial_epoch(tmp_path, monkeypatch):
    """--max-time that runs out part-way through an epoch: "N whole epochs and k of m steps", not N + 1 epochs."""
    import importlib

    from brainforge.cli import app

    train_module = importlib.import_module("brainforge.training.train")  # the package's `train` is the function

    class RunsOutAtStepSix(train_module.WallTimeBudget):
        """--max-time's budget, running out after 6 steps (4 steps per epoch: 2 steps into the 2nd epoch)."""

        def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
            if trainer.global_step >= 6:
                self.exhausted = True
                trainer.should_stop = True

    monkeypatch.setattr(train_module, "WallTimeBudget", RunsOutAtStepSix)
    common = [
        "--head", "1010-16", "--n-regions", "50", "--samples-per-epoch", "32", "--val-samples", "8",
        "--batch-size", "8", "--max-epochs", "3", "--crop", "8", "--workers", "0", "--no-progress",
        "--max-time", "00:00:01:00",
    ]  # fmt: skip
    result = CliRunner().invoke(app, ["train", "--model", "gru", "--out", str(tmp_path / "run"), *common])
    assert result.exit_code == 0, result.output
    assert "Trained 1 whole epoch(s) and 2 of 4 steps of one more (stopped by max_time)" in result.output
    assert load_training_state(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 6
    monkeypatch.undo()
    # Resumed in a new session: the cut epoch is still not counted as whole, and is named.
    resumed = [arg for arg in common if arg not in ("--max-time", "00:00:01:00")]
    result = CliRunner().invoke(app, ["train", "--model", "gru", "--out", str(tmp_path / "run"), "--resume", *resumed])
    assert result.exit_code == 0, result.output
    assert load_training_state(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 10
    assert (
        "Trained 2 whole epoch(s); besides, earlier sessions' budgets cut 1 epoch(s) short (epoch 1: 2 of 4 steps)"
        in result.output
    ), result.output
    # A session that takes no step (the run is complete) does not claim the earlier cut as its own.
    result = CliRunner().invoke(app, ["train", "--model", "gru", "--out", str(tmp_path / "run"), "--resume", *resumed])
    assert result.exit_code == 0 and "steps of one more" not in result.output, result.output
    assert "Trained 2 whole epoch(s); besides" in result.output, result.output
    # Whole epochs only: the same run without the cut says so plainly.
    result = CliRunner().invoke(app, ["train", "--model", "gru", "--out", str(tmp_path / "whole"), *resumed])
    assert result.exit_code == 0 and "Trained 3 epoch(s)" in result.output, result.output


def test_training_state_round_trips_without_pickle(tmp_path):
    state = {
        "epoch": 3, "name": "x", "values": [1.5, None, True], "pair": (0.9, 0.999),
        "optimizer": {"state": {0: {"step": torch.tensor(4.0), "exp_avg": torch.randn(3, 2)}}},
        "nested": {"best": torch.tensor(float("inf"))},
    }  # fmt: skip
    save_training_state(state, tmp_path / "s.ckpt")
    back = load_training_state(tmp_path / "s.ckpt")
    assert back["pair"] == (0.9, 0.999) and back["values"] == [1.5, None, True]
    assert list(back["optimizer"]["state"]) == [0]
    torch.testing.assert_close(back["optimizer"]["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])
    (tmp_path / "bad.ckpt").write_bytes(b"\x80\x04garbage")
    with pytest.raises(BrainForgeError, match="corrupt"):
        load_training_state(tmp_path / "bad.ckpt")


def test_cli_train_and_fine_tune(tmp_path):
    from brainforge.cli import app

    runner = CliRunner()
    common = [
        "--head", "1010-16", "--n-regions", "50", "--samples-per-epoch", "32", "--val-samples", "8",
        "--batch-size", "8", "--max-epochs", "1", "--crop", "8", "--workers", "0", "--no-progress",
    ]  # fmt: skip
    result = runner.invoke(app, ["train", "--model", "gru", "--out", str(tmp_path / "a"), *common])
    assert result.exit_code == 0, result.output
    assert "parameters" in result.output and (tmp_path / "a" / "config.json").is_file()
    result = runner.invoke(app, ["train", "--model", "gru", "--out", str(tmp_path / "a"), "--resume", *common])
    assert result.exit_code == 0, result.output
    fine_tune = ["train", "--model", "gru", "--out", str(tmp_path / "b"), "--init", str(tmp_path / "a")]
    centred = [
        "--target-centre-half-mm", "12", "--monitor", "centre", "--loss", "relative_mse_cosine_peak",
        "--peak-loss-weight", "0.5", "--peak-loss-sharpness", "30", "--montage-sizes", "log-uniform",
    ]  # fmt: skip
    result = runner.invoke(app, [*fine_tune, *common, *centred])
    assert result.exit_code == 0, result.output
    training = json.loads((tmp_path / "b" / "run.json").read_text())["training"]
    assert training["target_centre_half_mm"] == 12.0 and training["monitor"] == "val_peak_centre_error_mm"
    assert training["loss"] == "relative_mse_cosine_peak"
    assert training["peak_loss_weight"] == 0.5 and training["peak_loss_sharpness"] == 30.0
    assert training["montage_size_distribution"] == "log-uniform"
    metrics = next((tmp_path / "b" / "logs").rglob("metrics.csv")).read_text().splitlines()
    header = metrics[0].split(",")
    val_losses = [
        float(row.split(",")[header.index("val_loss")])
        for row in metrics[1:]
        if row.split(",")[header.index("val_loss")]
    ]
    assert val_losses and np.isfinite(val_losses).all()
    result = runner.invoke(app, [*fine_tune, *common, "--overwrite", "--monitor", "middle"])
    assert result.exit_code != 0 and "Unknown --monitor 'middle'" in str(result.output) + str(result.exception)
    result = runner.invoke(app, ["train", "--model", "lstm", "--out", str(tmp_path / "c"), *common])
    assert result.exit_code != 0 and "Unknown model" in str(result.output) + str(result.exception)
    # --val-montage reaches the training config: refused for a fixed-montage network, before any step.
    result = runner.invoke(app, [*fine_tune, *common, "--overwrite", "--val-montage", "1010-16"])
    assert result.exit_code != 0 and "takes any montage" in str(result.output) + str(result.exception)
    result = runner.invoke(app, [*fine_tune, *common, "--overwrite", "--val-montage", "1010-17"])
    assert result.exit_code != 0 and "Unknown --val-montage '1010-17'" in str(result.output) + str(result.exception)
    result = runner.invoke(app, [*fine_tune, *common, "--overwrite", "--subset-upsampling"])
    assert result.exit_code != 0 and "subset-upsampling needs a network" in str(result.output) + str(result.exception)
    result = runner.invoke(app, [*fine_tune, *common, "--overwrite", "--max-time", "90"])
    assert result.exit_code != 0 and "--max-time takes HH:MM" in str(result.output) + str(result.exception)
    # Four processes, three validation samples: one rank would validate nothing (and DDP would wait for it).
    result = runner.invoke(app, [*fine_tune, *common, "--overwrite", "--devices", "4", "--val-samples", "3"])
    assert result.exit_code != 0 and "--val-samples 3 is fewer than the 4 training processes" in str(
        result.output
    ) + str(result.exception)


def test_fine_tune_exports_only_an_epoch_that_beats_its_starting_model(tmp_path):
    """--init scores the starting model first; epochs that do not beat it are not exported, and the log says so.

    At a learning rate of 0 every epoch scores exactly what the start does, so
    none beats it: the run hands back the starting weights as epoch -1, and
    the starting score is not a row of the per-epoch training log.
    """
    from safetensors.torch import load_file

    from brainforge.cli import app

    runner = CliRunner()
    common = [
        "--head", "1010-16", "--n-regions", "50", "--samples-per-epoch", "32", "--val-samples", "8",
        "--batch-size", "8", "--crop", "8", "--workers", "0", "--no-progress",
    ]  # fmt: skip
    start, fine_tune = tmp_path / "start", tmp_path / "fine_tune"
    result = runner.invoke(app, ["train", "--model", "gru", "--out", str(start), "--max-epochs", "1", *common])
    assert result.exit_code == 0, result.output
    command = ["train", "--model", "gru", "--out", str(fine_tune), "--init", str(start), "--lr", "0"]
    result = runner.invoke(app, [*command, "--max-epochs", "2", *common])
    assert result.exit_code == 0, result.output
    assert "No epoch beat the starting model" in result.output
    metrics = json.loads((fine_tune / "config.json").read_text())["metrics"]
    assert metrics["epoch"] == -1 and metrics["global_step"] == 0
    exported, original = load_file(fine_tune / "model.safetensors"), load_file(start / "model.safetensors")
    assert exported.keys() == original.keys()
    for name, tensor in original.items():
        torch.testing.assert_close(exported[name], tensor, rtol=0, atol=0)
    rows = next((fine_tune / "logs").rglob("metrics.csv")).read_text().splitlines()
    header = rows[0].split(",")
    epochs = [row.split(",")[header.index("epoch")] for row in rows[1:] if row.split(",")[header.index("val_loss")]]
    assert epochs == ["0", "1"]  # one validation row per epoch, none for the starting model


def test_montage_size_draws():
    from brainforge.training.module import draw_montage_size

    rng = np.random.default_rng(0)
    uniform = np.array([draw_montage_size(rng, 16, 64) for _ in range(20000)])
    log_uniform = np.array([draw_montage_size(rng, 16, 64, "log-uniform") for _ in range(20000)])
    for sizes in (uniform, log_uniform):
        assert sizes.min() == 16 and sizes.max() == 64
    # Uniform: 17 of the 49 counts are <= 32. Log-uniform: P(n <= 32) = log(33/16) / log(65/16), about 0.52.
    assert abs((uniform <= 32).mean() - 17 / 49) < 0.015
    assert abs((log_uniform <= 32).mean() - np.log(33 / 16) / np.log(65 / 16)) < 0.015
    # P(n) ~ 1/n: 16 channels about four times as often as 64.
    assert 3.0 < (log_uniform == 16).mean() / (log_uniform == 64).mean() < 5.5
    with pytest.raises(BrainForgeError, match="montage_size_distribution"):
        TrainingConfig(montage_size_distribution="normal")


def test_relative_mse_cosine_loss():
    from brainforge.training.losses import compute_loss

    target = torch.zeros(2, 4, 10)
    target[:, :, 3] = 1.0
    target[:, :, 4] = 0.5
    assert compute_loss("relative_mse_cosine", target, target).item() == pytest.approx(0.0, abs=1e-6)
    # An all-zero estimate: relative MSE 1, cosine distance 1.
    assert compute_loss("relative_mse_cosine", torch.zeros_like(target), target).item() == pytest.approx(2.0)
    # The right pattern at half the amplitude: only the relative MSE (0.25) remains.
    assert compute_loss("relative_mse_cosine", 0.5 * target, target).item() == pytest.approx(0.25, abs=1e-6)


def test_peak_cross_entropy_rewards_the_peak_on_the_centre():
    from brainforge.training.losses import compute_loss, peak_cross_entropy

    target = torch.zeros(3, 6, 10)
    target[0, 2, 3], target[0, 2, 4] = 1.0, 0.8  # centre 3, its neighbour 4
    target[1, 4, 7], target[1, 4, 8] = 0.6, 0.5  # centre 7; sample 2 is background only
    centre = torch.zeros(3, 10, dtype=torch.bool)
    centre[0, 3] = centre[1, 7] = True
    on_centre = target.clone()
    off_centre = target.clone()
    off_centre[0, 2, 4] = 1.2  # the largest region is the neighbour, not the centre
    loss_on, loss_off = peak_cross_entropy(on_centre, target, centre), peak_cross_entropy(off_centre, target, centre)
    assert loss_on < loss_off
    # Scale-free: the estimate's units do not matter, only where its maximum is.
    assert peak_cross_entropy(7.0 * on_centre, target, centre).item() == pytest.approx(loss_on.item(), rel=1e-6)
    # Sample 0 alone (logits 20 at the centre, 16 at the neighbour, 0 at 8 others): the softmax by hand.
    expected = -torch.log_softmax(torch.tensor([20.0, 16.0] + [0.0] * 8), dim=0)[0]
    one = peak_cross_entropy(on_centre[:1], target[:1], centre[:1])
    assert one.item() == pytest.approx(expected.item(), rel=1e-5)
    # Two patches: each centre's weight follows its |target| at the peak time (1.0 and 0.5: 2/3 and 1/3).
    two = torch.zeros(1, 6, 10)
    two[0, 2, 1], two[0, 2, 6] = 1.0, -0.5
    two_centres = torch.zeros(1, 10, dtype=torch.bool)
    two_centres[0, [1, 6]] = True
    log_p = torch.log_softmax(torch.tensor([0.0, 20.0] + [0.0] * 4 + [10.0] + [0.0] * 3), dim=0)
    expected = -(2 / 3 * log_p[1] + 1 / 3 * log_p[6])
    assert peak_cross_entropy(two, two, two_centres).item() == pytest.approx(expected.item(), rel=1e-5)
    # An all-zero estimate is finite (uniform softmax: log of the region count).
    zero = peak_cross_entropy(torch.zeros_like(target[:1]), target[:1], centre[:1])
    assert zero.item() == pytest.approx(np.log(10), rel=1e-6)
    # Weight and sharpness come from the config.
    heavier = compute_loss("relative_mse_cosine_peak", off_centre, target, centre=centre, peak_weight=1.0)
    lighter = compute_loss("relative_mse_cosine_peak", off_centre, target, centre=centre, peak_weight=0.1)
    assert (heavier - lighter).item() == pytest.approx(0.9 * loss_off.item(), rel=1e-5)
    with pytest.raises(BrainForgeError, match="peak_loss_weight"):
        TrainingConfig(peak_loss_weight=float("nan"))
    # Background-only samples are left out; a batch of them gives 0, not NaN.
    assert peak_cross_entropy(on_centre[2:], target[2:], centre[2:]).item() == 0.0
    estimate = on_centre.clone().requires_grad_(True)
    compute_loss("relative_mse_cosine_peak", estimate, target, centre=centre).backward()
    assert torch.isfinite(estimate.grad).all()
    with pytest.raises(BrainForgeError, match="needs the patch centres"):
        compute_loss("relative_mse_cosine_peak", estimate, target)


def test_cosine_term_ignores_background_only_samples():
    from brainforge.training.losses import compute_loss, cosine_distance
    from brainforge.training.metrics import background_amplitude, has_sources

    target = torch.zeros(2, 4, 10)
    target[0, :, 3] = 1.0  # sample 1 is background only
    estimate = target.clone()
    estimate[1, :, 7] = 0.2  # false activity where there is no source
    assert cosine_distance(estimate, target).item() == pytest.approx(0.0, abs=1e-6)
    # The relative MSE still sees the false activity.
    assert compute_loss("relative_mse_cosine", estimate, target).item() == pytest.approx(0.04, rel=1e-5)
    assert cosine_distance(torch.ones_like(target), torch.zeros_like(target)).item() == 0.0
    active = target.ne(0).any(dim=1)
    assert has_sources(active).tolist() == [True, False]
    assert background_amplitude(estimate, active).tolist() == pytest.approx([0.2])


def test_training_with_background_segments_logs_their_false_activity(head100, spike_library, tmp_path):
    config = SynthesisConfig(n_sources=(1, 1), sensor_snr_db=(15, 20), background_share=0.25)
    gen = SampleGenerator(head100, spike_library, config)
    tiny = TrainingConfig(
        samples_per_epoch=128, val_samples=64, batch_size=32, max_epochs=1, num_workers=0, seed=3, crop_samples=CROP
    )
    result = train("cnn_transformer", gen, tmp_path / "bg", tiny, model_params=CNN, progress=False)
    log = pd.read_csv(next((tmp_path / "bg" / "logs").rglob("metrics.csv")))
    amplitude = log["val_background_amplitude"].dropna().to_numpy()
    # One value per validation (the starting check and the epoch), each a finite share of the peak.
    assert len(amplitude) >= 1 and np.isfinite(amplitude).all() and (amplitude > 0).all()
    assert np.isfinite(log["val_peak_centre_error_mm"].dropna()).all()
    assert result.best_metrics["val_background_amplitude"] == pytest.approx(amplitude[-1], rel=1e-6)
    assert np.isfinite(result.best_metrics["val_peak_patch_error_mm"])


def test_validation_centre_masks_and_peak_centre_error_match_the_benchmark(head100, spike_library):
    from brainforge.evaluation.metrics import peak_centre_error_mm as benchmark_peak_centre_error
    from brainforge.synthesis.dataset import sample_seed
    from brainforge.training import validation_seed
    from brainforge.training.metrics import peak_centre_error_mm

    gen = SampleGenerator(head100, spike_library, SynthesisConfig(n_sources=(1, 3), deep_share=0.3))
    arrays = SyntheticDataModule(gen, TrainingConfig(val_samples=24, seed=5)).validation_arrays()
    for i in range(24):
        sample = gen.sample(sample_seed(validation_seed(5), i))
        assert np.flatnonzero(arrays["centre"][i]).tolist() == sorted(sample.centres.tolist())
    assert arrays["centre"].sum(axis=1).tolist() != [1] * 24  # several patches occur
    estimate = torch.as_tensor(np.random.default_rng(0).normal(size=arrays["sources"].shape), dtype=torch.float32)
    distance = torch.as_tensor(head100.region_distance_mm, dtype=torch.float32)
    sources, centre = torch.as_tensor(arrays["sources"]), torch.as_tensor(arrays["centre"])
    batched = peak_centre_error_mm(estimate, sources, centre, distance).numpy()
    one_by_one = [
        benchmark_peak_centre_error(
            estimate[i].numpy().T, arrays["sources"][i].T, np.flatnonzero(arrays["centre"][i]), distance.numpy()
        )
        for i in range(24)
    ]
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)
    assert batched.mean() > 20  # a random estimate is far from the centres
    assert peak_centre_error_mm(sources, sources, centre, distance).max().item() == 0.0


def test_centre_weighted_target_halves_at_its_distance_and_is_what_both_steps_fit(generator, head100):
    from brainforge.synthesis import SyntheticEEGDataset
    from brainforge.training.data import collate_validation
    from brainforge.training.module import SourceLocalizer

    several = SampleGenerator(
        generator.head, generator.library, SynthesisConfig(n_sources=(1, 3), deep_share=0.3, background_share=0.3)
    )
    config = TrainingConfig(target_centre_half_mm=12.0, crop_samples=CROP, seed=1)
    model = build_model("cnn_transformer", head100.n_regions, Montage.from_head_model(head100), **CNN)
    module = SourceLocalizer(model, config, head100.region_distance_mm, head100.region_leadfield)
    compact = next(iter(SyntheticEEGDataset(several, n_samples=16, seed=4, batch_size=16).loader()))
    items = list(SyntheticEEGDataset(several, n_samples=16, seed=4, compact_targets=True))
    dense = collate_validation(items)  # the validation batches: dense, built from the items
    for batch in (compact, dense):  # both batch forms carry the samples' centres
        for i in range(16):
            expected = several.sample(int(batch["seed"][i])).centres.tolist()
            assert sorted(c for c in batch["centres"][i].tolist() if c >= 0) == sorted(expected)
    _, sources = module._crop(compact, random=False)
    target = module._target(sources, compact)
    distance = torch.as_tensor(head100.region_distance_mm, dtype=torch.float32)
    background = (compact["centres"] < 0).all(dim=1)
    assert 0 < int(background.sum()) < 16
    assert torch.equal(target[background], torch.zeros_like(target[background]))
    smallest = []
    for i in torch.nonzero(~background).flatten().tolist():
        centres = compact["centres"][i][compact["centres"][i] >= 0]
        to_centre = distance[centres].amin(dim=0)
        ratio = target[i].abs().amax(dim=0) / sources[i].abs().amax(dim=0)
        active = sources[i].abs().amax(dim=0) > 0
        torch.testing.assert_close(ratio[active], torch.exp2(-((to_centre[active] / 12.0) ** 2)))
        assert torch.equal(ratio[centres], torch.ones(len(centres)))
        smallest.append(ratio[active].min())
    assert min(smallest) < 0.5  # the weighting reaches beyond the first ring
    fitted = []
    module._loss = lambda estimate, target, eeg, leadfield, batch: fitted.append(target) or estimate.sum()
    module.training_step(compact, 0)
    module.validation_step(dense, 0)
    torch.testing.assert_close(fitted[0], module._target(module._crop(compact, random=True)[1], compact))
    torch.testing.assert_close(fitted[1], module._target(module._crop(dense, random=False)[1], dense))
    assert not torch.equal(fitted[1], module._crop(dense, random=False)[1])
    for bad in (0.0, float("inf")):
        with pytest.raises(BrainForgeError, match="target_centre_half_mm"):
            TrainingConfig(target_centre_half_mm=bad)


@pytest.mark.parametrize(
    ("monitor", "exported"), [("val_peak_patch_error_mm", [10.0]), ("val_peak_centre_error_mm", [10.0, 5.0])]
)
def test_export_follows_the_configured_monitor(monitor, exported, tmp_path, monkeypatch):
    import importlib
    from types import SimpleNamespace

    train_module = importlib.import_module("brainforge.training.train")  # the module, not the function

    saved = []
    monkeypatch.setattr(train_module, "save_model", lambda model, out, info: saved.append(info["metrics"]))
    export = train_module.ExportBestModel(tmp_path, {}, monitor)
    module = SimpleNamespace(model=None)
    for patch, centre in ((1.0, 10.0), (2.0, 5.0)):
        metrics = {"val_peak_patch_error_mm": torch.tensor(patch), "val_peak_centre_error_mm": torch.tensor(centre)}
        trainer = SimpleNamespace(
            sanity_checking=False, callback_metrics=metrics, current_epoch=0, global_step=0, is_global_zero=True,
            state=SimpleNamespace(fn="fit"),
        )  # fmt: skip
        export.on_validation_end(trainer, module)
    assert [m["val_peak_centre_error_mm"] for m in saved] == exported
    with pytest.raises(BrainForgeError, match="Unknown monitor"):
        TrainingConfig(monitor="val_loss")


def test_val_montage_scores_validation_on_that_channel_subset(generator, head100):
    from brainforge.synthesis import SyntheticEEGDataset
    from brainforge.training import channel_subset
    from brainforge.training.data import collate_validation
    from brainforge.training.metrics import has_sources, peak_centre_error_mm
    from brainforge.training.module import SourceLocalizer

    montage = Montage.from_head_model(head100)
    torch.manual_seed(0)
    model = build_model("cnn_transformer", head100.n_regions, montage, **CNN).eval()
    batch = collate_validation(list(SyntheticEEGDataset(generator, n_samples=16, seed=8, compact_targets=True)))
    logged, leadfield_rows = {}, {}

    def validate(val_montage):
        config = TrainingConfig(crop_samples=CROP, seed=1, val_montage=val_montage)
        module = SourceLocalizer(model, config, head100.region_distance_mm, head100.region_leadfield)
        module.log = lambda name, value, **kwargs: logged.setdefault(val_montage, {}).update({name: float(value)})
        loss = module._loss

        def recording_loss(estimate, target, eeg, leadfield, batch):
            leadfield_rows[val_montage] = len(leadfield)
            return loss(estimate, target, eeg, leadfield, batch)

        module._loss = recording_loss
        with torch.inference_mode():
            module.on_validation_epoch_start()
            module.validation_step(batch, 0)
            module.on_validation_epoch_end()
        return module

    validate(None)
    module = validate("1010-16")
    assert leadfield_rows == {None: 64, "1010-16": 16}
    index = np.array([i for i, name in enumerate(montage.ch_names) if name in CHANNEL_SUBSETS["1010-16"]])
    assert len(index) == 16
    eeg, sources = module._crop(batch, random=False)
    keep = has_sources(batch["active"])
    with torch.inference_mode():
        estimate = model(*channel_subset(eeg, montage, index))
    distance = torch.as_tensor(head100.region_distance_mm, dtype=torch.float32)
    expected = peak_centre_error_mm(estimate[keep], sources[keep], batch["centre"][keep], distance).mean()
    assert logged["1010-16"]["val_peak_centre_error_mm"] == pytest.approx(float(expected))
    assert logged["1010-16"]["val_loss"] != logged[None]["val_loss"]
    with pytest.raises(BrainForgeError, match="Unknown val_montage"):
        TrainingConfig(val_montage="1010-17")
    fixed = build_model("gru", head100.n_regions, montage, dense_units=20, gru_units=8)
    with pytest.raises(BrainForgeError, match="takes any montage"):  # before any training step
        SourceLocalizer(fixed, TrainingConfig(val_montage="1010-16"), head100.region_distance_mm,
                        head100.region_leadfield)  # fmt: skip
    with pytest.raises(BrainForgeError, match=r"lacks \(.*Nz"):  # 1010-75 has channels 1010-64 lacks
        SourceLocalizer(model, TrainingConfig(val_montage="1010-75"), head100.region_distance_mm,
                        head100.region_leadfield)  # fmt: skip


def test_subset_upsampling_shows_the_network_subsets_on_the_full_montage(generator, head100):
    from brainforge.synthesis import SyntheticEEGDataset, normalize_eeg
    from brainforge.topomap import montage_upsampling
    from brainforge.training import channel_subset
    from brainforge.training.data import collate_validation
    from brainforge.training.module import SourceLocalizer, draw_montage_size

    montage = Montage.from_head_model(head100)
    model = build_model("cnn_transformer", head100.n_regions, montage, **CNN).eval()
    batch = collate_validation(list(SyntheticEEGDataset(generator, n_samples=4, seed=8, compact_targets=True)))
    config = TrainingConfig(crop_samples=CROP, seed=1, montage_subsets=(16, 32), subset_upsampling=True)
    module = SourceLocalizer(model, config, head100.region_distance_mm, head100.region_leadfield)
    eeg, _ = module._crop(batch, random=False)
    index = np.array([i for i, name in enumerate(montage.ch_names) if name in CHANNEL_SUBSETS["1010-16"]])
    upsampled, seen_montage, leadfield = module._on_channels(eeg, index)
    assert seen_montage is montage and upsampled.shape == eeg.shape and leadfield.shape == (64, head100.n_regions)
    subset, subset_montage = channel_subset(eeg, montage, index)
    matrix = torch.as_tensor(montage_upsampling(subset_montage.ch_pos_mm, montage), dtype=torch.float32)
    torch.testing.assert_close(upsampled, normalize_eeg(subset @ matrix.T))
    rows = torch.as_tensor(head100.region_leadfield[index], dtype=torch.float32)
    torch.testing.assert_close(leadfield, matrix @ rows)
    assert upsampled.abs().amax(dim=(1, 2)).allclose(torch.ones(len(eeg)))  # normalized as training EEG is
    # The --val-montage cap goes through the same matrix.
    validating = SourceLocalizer(
        model,
        TrainingConfig(crop_samples=CROP, seed=1, montage_subsets=(20, 20), val_montage="1010-16",
                       subset_upsampling=True),
        head100.region_distance_mm, head100.region_leadfield,
    )  # fmt: skip
    validation_eeg, validation_montage, _ = validating._validation_montage(eeg)
    assert validation_montage is montage
    # Subsets larger than the montage are refused at construction, not at the first step.
    too_many = TrainingConfig(montage_subsets=(65, 80))
    with pytest.raises(BrainForgeError, match=r"--montage-subsets 65,80 asks for at least 65 channels; .* has 64"):
        SourceLocalizer(model, too_many, head100.region_distance_mm, head100.region_leadfield)
    torch.testing.assert_close(validation_eeg, upsampled)
    # Its matrix is computed once, at construction, and reused by every validation batch ...
    cached = validating._validation_upsampling
    np.testing.assert_allclose(cached, matrix.numpy(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(validating._validation_montage(eeg)[0], upsampled)
    assert validating._validation_upsampling is cached
    # ... but never for a training subset, which gets its own positions' matrix.
    step_eeg, _, step_leadfield = validating._subset(eeg)
    step_rng = np.random.default_rng([1, 0, 7])  # the step's generator (seed 1, step 0), as _subset draws it
    assert draw_montage_size(step_rng, 20, 20) == 20
    step_index = np.sort(step_rng.choice(64, 20, replace=False))
    step_subset, step_montage = channel_subset(eeg, montage, step_index)
    step_matrix = torch.as_tensor(montage_upsampling(step_montage.ch_pos_mm, montage), dtype=torch.float32)
    torch.testing.assert_close(step_eeg, normalize_eeg(step_subset @ step_matrix.T))
    torch.testing.assert_close(step_leadfield, step_matrix @ torch.as_tensor(head100.region_leadfield[step_index],
                                                                              dtype=torch.float32))  # fmt: skip
    assert validating._validation_upsampling is cached
    # Training steps draw subsets of 16-32 channels and show them on all 64.
    step_eeg, step_montage, step_leadfield = module._subset(eeg)
    assert step_montage is montage and step_eeg.shape[-1] == 64 and len(step_leadfield) == 64
    # Without it the subset's own map; the full montage is never interpolated.
    plain = SourceLocalizer(model, TrainingConfig(crop_samples=CROP), head100.region_distance_mm,
                            head100.region_leadfield)  # fmt: skip
    assert plain._on_channels(eeg, index)[1].n_channels == 16
    full = module._on_channels(eeg, np.arange(64))
    torch.testing.assert_close(full[0], normalize_eeg(eeg))
    assert full[1].n_channels == 64
    fixed = build_model("gru", head100.n_regions, montage, dense_units=20, gru_units=8)
    with pytest.raises(BrainForgeError, match="subset-upsampling needs a network that takes any montage"):
        SourceLocalizer(fixed, TrainingConfig(subset_upsampling=True), head100.region_distance_mm,
                        head100.region_leadfield)  # fmt: skip
