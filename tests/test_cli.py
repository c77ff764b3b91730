import json
import subprocess
import sys

import numpy as np
import pytest


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "brainforge.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.usefixtures("head64")
def test_head_info_json(cli_in_process):
    result = run_cli("head", "info", "--montage", "1010-64", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["n_channels"] == 64 and info["n_regions"] == 1014 and info["n_deep_regions"] == 14
    assert info["leadfield_shape"] == [64, info["n_sources"]]
    assert info["region_leadfield_shape"] == [64, 1014]
    assert {"cache_dir", "build_seconds"} <= set(info)
    # --channels takes a 10-10 subset's name, as synth and train do.
    code, stdout, stderr = cli_in_process("head", "info", "--montage", "1010-64", "--channels", "1010-32", "--json")
    assert code == 0, stderr
    assert json.loads(stdout.strip().splitlines()[-1])["n_channels"] == 32


@pytest.mark.usefixtures("head64")
def test_head_export(tmp_path):
    out = tmp_path / "head.npz"
    result = run_cli(
        "head", "export", "--montage", "1010-64", "--channels", "Fp1,Fp2,C3,C4,O1,O2,Cz,Pz,Fz", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    with np.load(out, allow_pickle=False) as data:
        for key in (
            "leadfield",
            "region_leadfield",
            "source_pos_mm",
            "source_nn",
            "source_region",
            "region_names",
            "region_centres_mm",
            "ch_names",
            "ch_pos_mm",
        ):
            assert key in data.files
        assert list(data["ch_names"]) == ["Fp1", "Fp2", "C3", "C4", "O1", "O2", "Cz", "Pz", "Fz"]
        assert data["leadfield"].shape == (9, len(data["source_pos_mm"]))


@pytest.mark.parametrize(
    "args,message",
    [
        (["head", "info", "--montage", "biosemi65"], "Did you mean 'biosemi64'"),
        (["head", "info", "--montage", "1010-64", "--channels", "Cz,Xx1,Yy2"], "Xx1, Yy2"),
        (["head", "info", "--montage", "1010-64", "--channels", "Cz,Pz,Fz"], "at least 8"),
        # refused before the head model, spike library or forward bank is built
        (["train", "--model", "channel_count_router", "--out", "no-such-run"], "combines networks trained apart"),
        (["train", "--model", "gru", "--out", "no-such-run", "--bank-vertical-shift-mm", "20"], "needs --forward-bank"),
        (["train", "--model", "gru", "--out", "no-such-run", "--bank-seed", "3"], "--bank-seed needs --forward-bank"),
        (["train", "--model", "gru", "--out", "no-such-run", "--forward-bank", "--bank-seed", "-3"], "--bank-seed -3"),
        (["compare", "--out", "no-such-comparison", "--test-seed", "-1"], "--test-seed -1: a seed must be"),
        (["synth", "--out", "no-such-set.zarr", "--n", "1", "--noise-bank-seed", "-2"], "--noise-bank-seed -2"),
        (["synth", "--out", "no-such-set.zarr", "--n", "1", "--seed", "-3"], "--seed -3: a seed must be an integer"),
        (["synth", "--out", "no-such-set.zarr", "--n", "0"], "--n 0: a test set needs at least one sample"),
        # a config's own check names the option, not the config field (n_sources, noise_types)
        (["synth", "--out", "no-such-set.zarr", "--sources", "0"], "--sources must start at 1 or more, got (0, 0)"),
        (["synth", "--out", "no-such-set.zarr", "--noise", "pink,brown"], "--noise must be among white, pink"),
        (["synth", "--out", "no-such-set.zarr", "--noise", "realistic"], "--noise realistic needs --realistic-noise"),
        (["synth", "--out", "afile"], "afile exists; choose another --out"),
        (["head", "info", "--montage", "1010-64", "--jitter-seed", "-1"], "--jitter-seed -1: a seed must be"),
        # an operating-system error (here a file where a folder must go) is one line too
        (["demo", "--out", "afile"], "Not a directory (afile"),
        (["localize", "afile", "--out", "new-out", "--condition", "0"], "afile is not one. Drop --condition"),
        (["demo", "--out", "new-demo", "--snr", "nan"], "--snr nan: give the recording's SNR as a finite number"),
    ],
)
def test_bad_input_gives_one_line_error(args, message, tmp_path, monkeypatch, cli_in_process):
    monkeypatch.chdir(tmp_path)  # relative --out folders land here, if ever made
    (tmp_path / "afile").write_text("")
    code, _, stderr = cli_in_process(*args)
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # refused before anything was written


#: What ``train`` raises once it reaches its data (``no_training_data``): every check came before.
DATA_REACHED = "the training data were built before the settings were checked"


@pytest.fixture
def no_training_data(monkeypatch):
    """Make ``brainforge train`` stop with :data:`DATA_REACHED` where it would build its data."""
    from brainforge import cli

    def data_reached(*args, **kwargs):
        raise AssertionError(DATA_REACHED)

    monkeypatch.setattr(cli, "training_generator", data_reached)


def _train_refusal(*args: str) -> str:
    """Run ``brainforge train`` in this process; return the one-line BrainForgeError it stops with."""
    from typer.testing import CliRunner

    from brainforge import BrainForgeError
    from brainforge.cli import app

    result = CliRunner().invoke(app, ["train", *args])
    assert isinstance(result.exception, BrainForgeError), result.output
    assert "\n" not in str(result.exception)
    return str(result.exception)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the GPU case assumes a machine without CUDA")
def test_train_refuses_bad_settings_before_building_any_data(tmp_path, monkeypatch, no_training_data):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    cases = [
        (["--param", "n_heads=0"], "n_heads and n_layers must be 1 or more, got 0 and"),
        (["--param", "dropout=1.5"], "The cnn_transformer hyper-parameters do not make a network (dropout"),
        (["--param", "d_model=abc"], "Wrong CNNTransformerConfig parameter type(s): d_model='abc' (not int)"),
        (["--model", "resnet"], "Unknown model 'resnet'"),
        (["--model", "gru", "--montage-subsets", "16,32"], "--montage-subsets needs a network that takes any montage"),
        (["--snr", "20,5"], "--snr 20,5: give the range low end first"),
        (["--max-cpu-time", "01:-30"], "--max-cpu-time takes HH:MM (more than zero), got '01:-30'"),
        (["--accelerator", "abacus"], "Unknown --accelerator 'abacus'"),
        (["--accelerator", "gpu"], "this machine has no CUDA GPU"),
        (["--devices", "0"], "--devices takes auto or a count of 1 or more, got '0'"),
        (["--init", "no-such-model"], "Model folder not found: no-such-model"),
        # the configs' own checks, naming the option instead of the field
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0."),
        (["--sources", "0,2"], "--sources must start at 1 or more, got (0, 2)."),
        (["--workers", "-2"], "--workers must be 0 or more, got -2."),
        (["--montage-sizes", "octaves"], "Unknown --montage-sizes 'octaves'"),
        (["--loss", "seed"], "Unknown --loss 'seed'; choose from"),
        (["--lr", "nan"], "--lr must be a finite number >= 0, got nan."),  # a value that names a field stays as given
        (["--forward-bank", "--bank-models", "0"], "--bank-models must be at least 1, got 0."),
    ]
    for args, message in cases:
        assert message in _train_refusal("--out", "run", *args)
    assert "--out afile is a file, not a folder" in _train_refusal("--out", "afile")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing was written


def test_resume_refuses_settings_other_than_the_runs(tmp_path, no_training_data):
    from brainforge import cli

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    record = {
        "cli": {"model": "gru", "head": "1010-16", "channels": None, "n_regions": 50, "spikes": "default",
                "forward_bank": None},
        "model_params": {"gru_units": 64},
        "training": {"learning_rate": 0.001, "batch_size": 8},
        "data": {"synthesis": {"n_sources": [1, 2]}},
    }  # fmt: skip
    (run / "run.json").write_text(json.dumps(record))
    message = _train_refusal("--out", str(run), "--resume", "--lr", "0.1", "--batch-size", "8", "--max-epochs", "3")
    assert "drop --lr 0.1 (the run's: 0.001), or start a new run" in message
    zero_epochs = _train_refusal("--out", str(run), "--resume", "--max-epochs", "0")
    assert "--max-epochs must be at least 1, got 0." in zero_epochs
    for args, expected in [
        (["--bank-seed", "3"], "--bank-seed 3 (the run's: 0)"),
        (["--noise-bank-seed", "3"], "--noise-bank-seed 3 (the run's: 0)"),
        (["--sources", "1,3"], "--sources 1,3 (the run's: (1, 2))"),
        (["--param", "gru_units=32"], "--param gru_units=32 (the run's: 64)"),
        (["--model", "cnn_transformer"], "--model cnn_transformer (the run's: gru)"),
        (["--overwrite"], "--resume and --overwrite exclude each other"),
    ]:
        assert expected in _train_refusal("--out", str(run), "--resume", *args)
    # The starting command repeated with --resume passes the check: --init (however spelt) is ignored,
    # --workers may change, and the same values are the run's; the data are what comes next.
    from typer.testing import CliRunner

    same = ["--model", "gru", "--head", "1010-16", "--n-regions", "50", "--lr", "0.001", "--batch-size", "8"]
    again = [*same, "--sources", "1,2", "--init", "../elsewhere/start", "--workers", "3", "--max-epochs", "9"]
    result = CliRunner().invoke(cli.app, ["train", "--out", str(run), "--resume", *again])
    assert str(result.exception) == DATA_REACHED, result.output
    del record["cli"]
    (run / "run.json").write_text(json.dumps(record))
    assert "started without `brainforge train`" in _train_refusal("--out", str(run), "--resume")
    # A record cut short, or one without the run's settings, stops on one line that names it.
    (run / "run.json").write_text('{"model": "gru", "model_para')
    assert "run.json is damaged (it is not a JSON object" in _train_refusal("--out", str(run), "--resume")
    (run / "run.json").write_text(json.dumps({"model": "gru"}))
    lacking = _train_refusal("--out", str(run), "--resume")
    assert "run.json is damaged (it lacks model_params, training, data)" in lacking
    (run / "run.json").write_text(json.dumps({"cli": None, "model_params": {}, "training": {}, "data": {}}))
    assert "run.json is damaged (it lacks cli (as an object))" in _train_refusal("--out", str(run), "--resume")


def test_ddp_ranks_after_the_first_do_not_check_the_run_folder_rank_0_is_writing(
    tmp_path, monkeypatch, no_training_data
):
    # Under DDP Lightning starts ranks 1... by running the same command again, once rank 0 has
    # begun writing the folder: only rank 0 checks it, as train() does.
    from typer.testing import CliRunner

    from brainforge import cli

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    monkeypatch.setenv("RANK", "1")
    result = CliRunner().invoke(cli.app, ["train", "--out", str(run), "--model", "gru"])
    assert str(result.exception) == DATA_REACHED, result.output
    monkeypatch.setenv("RANK", "0")
    assert "already holds a training run" in _train_refusal("--out", str(run), "--model", "gru")
