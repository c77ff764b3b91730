import json
import subprocess
import sys

import numpy as np
import pytest


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "brainforge.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.usefixtures("head64")
def test_head_info_json():
    result = run_cli("head", "info", "--montage", "1010-64", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["n_channels"] == 64 and info["n_regions"] == 1014 and info["n_deep_regions"] == 14
    assert info["leadfield_shape"] == [64, info["n_sources"]]
    assert info["region_leadfield_shape"] == [64, 1014]
    assert {"cache_dir", "build_seconds"} <= set(info)


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
        (["train", "--out", "no-such-run", "--resume", "--bank-seed", "3"], "drop --bank-seed"),
        (["compare", "--out", "no-such-comparison", "--test-seed", "-1"], "--test-seed -1: a seed must be"),
        (["synth", "--out", "no-such-set.zarr", "--n", "1", "--noise-bank-seed", "-2"], "--noise-bank-seed -2"),
        (["train", "--out", "no-such-run", "--resume", "--noise-bank-seed", "3"], "drop --noise-bank-seed"),
        (["synth", "--out", "no-such-set.zarr", "--n", "1", "--seed", "-3"], "--seed -3: a seed must be an integer"),
        (["head", "info", "--montage", "1010-64", "--jitter-seed", "-1"], "--jitter-seed -1: a seed must be"),
        # an operating-system error (here a file where a folder must go) is one line too
        (["demo", "--out", "afile"], "Not a directory (afile"),
    ],
)
def test_bad_input_gives_one_line_error(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative --out folders land here, if ever made
    (tmp_path / "afile").write_text("")
    result = run_cli(*args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # refused before anything was written
