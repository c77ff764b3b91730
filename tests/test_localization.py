"""Localizing recordings: the default model on saved FIF and EDF files, MNE outputs, the report, bad input."""

import json
import subprocess
import sys

import mne
import numpy as np
import pandas as pd
import pytest

import brainforge
from brainforge import BrainForgeError
from brainforge.anatomy import CHANNEL_SUBSETS
from brainforge.localization import (
    PreprocessingConfig,
    localize_file,
    localize_prepared,
    prepare_recording,
    read_recording,
    run_demo,
    simulate_recording,
    source_errors_mm,
)
from brainforge.localization.output import TMP_MARK

N_SOURCES = 6  # single sources per recording, one after another


@pytest.fixture(scope="module", params=["1010-64", "1010-21"])
def recording(request, head64, spike_library, tmp_path_factory):
    """A recording of single cortical sources at 10 dB, saved as FIF and as EDF."""
    head = head64 if request.param == "1010-64" else head64.pick_channels(CHANNEL_SUBSETS[request.param])
    raw, truth = simulate_recording(head, spike_library, ("cortical",) * N_SOURCES, snr_db=10.0, seed=3)
    folder = tmp_path_factory.mktemp(request.param)
    fif = folder / "recording_raw.fif"
    raw.save(fif, verbose="error")
    edf = folder / "recording.edf"
    mne.export.export_raw(edf, raw, fmt="edf", verbose="error")
    return {"fif": fif, "edf": edf, "truth": truth, "n_channels": head.n_channels}


@pytest.mark.parametrize("fmt", ["fif", "edf"])
def test_default_model_localizes_single_sources_and_beats_sloreta(recording, fmt):
    raw = read_recording(recording[fmt])
    prepared = prepare_recording(raw, 500.0)
    assert len(prepared.ch_names) == recording["n_channels"]
    errors = {}
    for solver in ("default", "sloreta"):
        result = localize_prepared(prepared, solver)
        errors[solver] = np.array(source_errors_mm(result, recording["truth"]))
    assert np.median(errors["default"]) <= 10.0, errors
    assert errors["default"].mean() < errors["sloreta"].mean(), errors


@pytest.mark.parametrize("recording", ["1010-64"], indirect=True)  # one montage is enough for the output folder
def test_outputs_are_mne_objects_tables_and_a_report(recording, tmp_path):
    assert recording["n_channels"] == 64
    out = tmp_path / "out"
    result = localize_file(recording["fif"], out, "default", tmin=0.0, tmax=2.0)
    stc = mne.read_source_estimate(out / "source_estimate-stc.h5")
    assert isinstance(stc, mne.MixedSourceEstimate) and stc.subject == "fsaverage"
    assert [len(v) for v in stc.vertices[:2]] == [10242, 10242] and stc.data.shape[0] == result.head.n_sources
    table = pd.read_parquet(out / "region_timecourses.parquet").to_numpy()
    assert table.shape == (1000, result.head.n_regions + 1)
    np.testing.assert_allclose(table[:, 1:], result.region_data.T, rtol=1e-3, atol=1e-6 * np.abs(table[:, 1:]).max())
    peaks = json.loads((out / "summary.json").read_text())["peaks"]
    assert peaks and peaks[0]["rank"] == 1 and peaks[0]["relative_amplitude"] == 1.0
    report = (out / "report.html").read_text()
    for title in ("Brain at the peak", "Region time courses", "Topomap at the peak", "Caveats"):
        assert title in report
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(BrainForgeError, match="not empty"):
        localize_file(recording["fif"], out, "default")


@pytest.mark.parametrize("recording", ["1010-21"], indirect=True)  # one montage is enough for the API
def test_python_api_takes_raw_epochs_and_evoked(recording):
    assert recording["n_channels"] == 21
    raw = read_recording(recording["fif"])
    stc = brainforge.localize(raw, "sloreta", tmax=1.0)
    assert isinstance(stc, mne.MixedSourceEstimate) and stc.data.shape[1] == 500
    # Events: the average of the epochs around each annotated spike.
    evoked_stc = brainforge.localize(raw, events=["spike_cortical"], tmin=-0.1, tmax=0.1)
    assert evoked_stc.tmin == pytest.approx(-0.1) and evoked_stc.data.shape[1] == 101
    epochs = mne.make_fixed_length_epochs(raw, duration=0.5, verbose="error")
    assert brainforge.localize(epochs).data.shape[1] == 250
    with pytest.raises(BrainForgeError, match="No annotation named seizure"):
        brainforge.localize(raw, events=["seizure"])
    # A string of comma-separated names is a list of names, not of letters.
    as_list = brainforge.localize(raw, "sloreta", events=["spike_cortical"], exclude=["Fp1", "Fp2"], tmax=0.1)
    as_text = brainforge.localize(raw, "sloreta", events="spike_cortical", exclude="Fp1, Fp2", tmax=0.1)
    np.testing.assert_array_equal(as_text.data, as_list.data)
    # A model folder given as a Path is the model; an object that is no solver is refused first.
    from pathlib import Path

    from brainforge._data import default_model_dir

    by_path = brainforge.localize(raw, Path(default_model_dir()), tmax=4.0)
    np.testing.assert_array_equal(by_path.data, brainforge.localize(raw, "default", tmax=4.0).data)
    with pytest.raises(BrainForgeError, match=r"solver=.* is not a solver: give a name"):
        brainforge.localize(raw, object())


def test_a_networks_head_options_choose_the_regions_of_the_head_it_localizes_on(monkeypatch):
    from types import SimpleNamespace

    import brainforge.anatomy
    from brainforge.localization.core import _solver_regions, head_model_for

    head_config = {"n_regions": 500, "deep": False, "deep_spacing_mm": 4.0, "seed": 3, "skull_mm": 7.0}
    options = _solver_regions(SimpleNamespace(config={"head_model": {"config": head_config}}))
    assert options == {"n_regions": 500, "deep": False, "deep_spacing_mm": 4.0, "seed": 3}
    assert _solver_regions(object()) == {}  # a classical solver: the template's regions
    asked = []
    head = SimpleNamespace(pick_channels=lambda names: names)
    monkeypatch.setattr(brainforge.anatomy, "make_head_model", lambda montage, **kwargs: asked.append(kwargs) or head)
    prepared = prepare_recording(_raw(["Fp1", "Fz", "Cz", "Pz", "Oz", "C3", "C4", "T7", "T8"]), 500.0)
    head_model_for(prepared, options)
    assert asked == [options]


@pytest.mark.slow
def test_a_network_trained_on_a_head_without_deep_regions_localizes_on_that_head(tmp_path):
    from brainforge.anatomy import make_head_model
    from brainforge.models import build_model, save_model
    from brainforge.topomap import Montage
    from brainforge.training.train import head_model_info

    head = make_head_model("1010-21", deep=False)
    network = build_model("gru", head.n_regions, Montage.from_head_model(head)).eval()
    folder = save_model(network, tmp_path / "net", {"head_model": head_model_info(head)})
    prepared = prepare_recording(_raw(CHANNEL_SUBSETS["1010-21"], n_times=3000), 500.0)
    result = localize_prepared(prepared, str(folder))  # it asked for the template's 1014 regions before
    assert result.head.n_regions == 1000 and result.head.n_deep_regions == 0
    assert np.isfinite(result.region_data).all()


@pytest.mark.parametrize("recording", ["1010-21"], indirect=True)
def test_the_python_api_logs_each_note_of_the_estimate_once(recording, caplog):
    raw = read_recording(recording["fif"])
    with caplog.at_level("WARNING", logger="brainforge"):
        brainforge.localize(raw, "default", tmax=4.0)
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("brainforge")]
    caveat = [m for m in messages if "trained on synthetic" in m]  # the network's caveat, a note of the estimate
    assert len(caveat) == 1, messages
    assert len(messages) == len(set(m.removeprefix("Note: ") for m in messages)), messages


def _raw(names, sfreq=500.0, n_times=1000, seed=0, ch_type="eeg"):
    data = np.random.default_rng(seed).normal(scale=1e-5, size=(len(names), n_times))
    return mne.io.RawArray(data, mne.create_info(names, sfreq, ch_type), verbose="error")


def test_preparation_cleans_channels_and_refuses_bad_input():
    names = CHANNEL_SUBSETS["1010-32"]
    raw = _raw([f"EEG {n}-REF" if n != "T7" else "T3" for n in names])
    raw._data[0] = 0.0  # flat
    raw._data[1, 10] = np.nan
    raw.info["bads"] = [raw.ch_names[2]]
    prepared = prepare_recording(raw, 500.0)
    assert prepared.ch_names == names[3:] and len(prepared.dropped) == 3 and "T7" in prepared.ch_names
    assert np.allclose(prepared.data.mean(axis=0), 0.0)  # average reference
    assert any("flat" in note for note in prepared.notes)
    # Standard names without file positions: the notes say the cap was not co-registered and what that costs.
    assert any("not co-registered" in note and "too high" in note for note in prepared.notes)
    # A file whose positions are the standard ones (within 10 mm) is not warned about.
    placed = _raw(names)
    placed.set_montage("colin27_1005")
    notes = prepare_recording(placed, 500.0).notes
    assert not any("not co-registered" in n for n in notes) and any("lie within 10 mm" in n for n in notes)
    cases = [
        (_raw(names, ch_type="misc"), "no EEG channels"),
        (_raw(["Fp1", "Foo1", "Bar2", *names[3:12]]), "Foo1, Bar2"),
        (_raw(names[:7]), "at least 8"),
        (_raw(names, sfreq=80.0, n_times=400), "at least 100 Hz"),
    ]
    flat = _raw(names)
    flat._data[:] = 0.0
    cases.append((flat, "flat"))
    for raw, message in cases:
        with pytest.raises(BrainForgeError, match=message):
            prepare_recording(raw, 500.0)
    few = prepare_recording(_raw(CHANNEL_SUBSETS["1010-16"]), 500.0)
    assert any("lower localization accuracy" in n for n in few.notes)
    resampled = prepare_recording(_raw(names, sfreq=1000.0, n_times=2000), 500.0)
    assert resampled.data.shape[1] == 1000 and resampled.sfreq == 500.0
    with pytest.raises(BrainForgeError, match="tmax"):
        PreprocessingConfig(tmin=2.0, tmax=1.0)


def test_cli_localize_errors_are_one_line(tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "brainforge.cli", "localize", *args], capture_output=True, text=True
        )

    garbage = tmp_path / "broken.edf"
    garbage.write_bytes(b"this is not an EDF file at all" * 10)
    misc = tmp_path / "misc_raw.fif"
    _raw(["a", "b", "c"], ch_type="misc").save(misc, verbose="error")
    for args, message in [
        ([str(tmp_path / "missing.edf")], "not found"),
        ([str(garbage)], "Cannot read broken.edf"),
        ([str(misc)], "no EEG channels"),
        ([str(misc), "--solver", "magic"], "Unknown solver"),
    ]:
        out = tmp_path / f"out{len(message)}"
        result = run(*args, "--out", str(out))
        lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
        assert not out.exists() and not [p for p in tmp_path.iterdir() if TMP_MARK in p.name]


def test_demo_writes_recording_reports_and_errors(tmp_path):
    errors = run_demo(tmp_path / "demo")
    assert errors["sources"] == ["cortical", "deep"]
    assert len(errors["default"]) == len(errors["sloreta"]) == 2
    for name in ("recording_raw.fif", "truth.json", "errors.json", "default/report.html", "sloreta/report.html"):
        assert (tmp_path / "demo" / name).is_file()
    truth = json.loads((tmp_path / "demo" / "truth.json").read_text())
    assert truth[1]["kind"] == "deep" and truth[1]["centre"] >= 1000  # a deep region of the template
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(BrainForgeError, match="holds no earlier demo"):
        run_demo(tmp_path / "other")


def test_default_model_is_bundled_small_and_pickle_free():
    from brainforge.localization import default_model_dir
    from brainforge.models import load_model

    folder = default_model_dir()
    size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    assert size_mb <= 50.0
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    model, config = load_model(folder)
    assert model.name == "cnn_transformer" and model.any_montage and model.n_regions == 1014
    assert config["cli"]["model"] == "cnn_transformer" and config["training"]["montage_subsets"]
