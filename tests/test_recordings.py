"""Real recordings at clinical scale: blocks equal the whole, options checked first, clinical channels, outputs."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import mne
import numpy as np
import pandas as pd
import pytest

from brainforge import BrainForgeError
from brainforge.anatomy import CHANNEL_SUBSETS
from brainforge.localization import (
    PreprocessingConfig,
    core,
    default_model_dir,
    localize_file,
    prepare_recording,
    simulate_recording,
)
from brainforge.localization.output import OWNER_FILE, TMP_MARK, remove_stale_tmp
from brainforge.localization.recording import is_non_scalp

NAMES_32 = CHANNEL_SUBSETS["1010-32"]


@pytest.fixture(scope="module")
def recording_1k(head64, spike_library, tmp_path_factory):
    """Five seconds, one spike per second (cortical or deep), at 1000 Hz (the solvers resample to 500 Hz), as FIF."""
    raw, truth = simulate_recording(
        head64, spike_library, ("cortical", "deep", "cortical", "cortical", "deep"), snr_db=10.0, seed=5
    )
    raw = raw.copy().resample(1000.0, verbose="error")
    path = tmp_path_factory.mktemp("rec") / "spikes_raw.fif"
    raw.save(path, verbose="error")
    return path, truth


def _raw(names, sfreq=500.0, seconds=4.0, seed=0, types="eeg"):
    rng = np.random.default_rng(seed)
    data = rng.normal(scale=1e-5, size=(len(names), round(sfreq * seconds)))
    return mne.io.RawArray(data, mne.create_info(list(names), sfreq, types), verbose="error")


def _save(raw, folder, name="rec_raw.fif"):
    path = folder / name
    raw.save(path, overwrite=True, verbose="error")
    return path


@pytest.mark.parametrize("solver", ["sloreta", "network"])
def test_blocks_give_the_same_result_as_the_whole_recording(recording_1k, tmp_path, solver):
    """Localizing in 1.3-s blocks (filter, resampling and network windows across block edges) equals one block."""
    from brainforge.inverse import LearnedSolver

    path, _ = recording_1k
    tables = []
    for chunk_s in (1.3, 60.0):
        model = solver
        if solver == "network":
            # Windows of 0.5 s overlapping by half: several overlap-add pieces cross every block edge.
            model = LearnedSolver(default_model_dir(), window_samples=250, overlap=0.5)
        out = tmp_path / f"out{chunk_s}"
        result = localize_file(path, out, model, chunk_s=chunk_s, report=False)
        tables.append(pd.read_parquet(out / "region_timecourses.parquet"))
        assert result.outputs["block_s"] <= chunk_s
    whole, blocks = (table.to_numpy() for table in tables)
    assert whole.shape == (2500, 1015) and np.array_equal(whole[:, 0], blocks[:, 0])
    np.testing.assert_allclose(blocks[:, 1:], whole[:, 1:], rtol=0, atol=1e-5 * np.abs(whole[:, 1:]).max())
    # The in-memory path (brainforge.localize) prepares the same EEG.
    prepared = prepare_recording(mne.io.read_raw(path, verbose="error"), 500.0)
    assert prepared.data.shape == (64, 2500) and prepared.preprocessing["applied"]["resampling"].startswith("poly")


def test_long_recording_writes_compact_timecourses_and_a_bounded_source_estimate(recording_1k, tmp_path):
    path, _truth = recording_1k
    out = tmp_path / "out"
    result = localize_file(path, out, "default", report=False, timecourses="parquet")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["analysed_span_s"] == [0.0, 4.998] and summary["n_times"] == 2500
    assert summary["source_estimate"]["scope"].startswith("+-0.1 s")  # 5 s x 21,008 dipoles exceeds 100 MB
    stc = mne.read_source_estimate(out / "source_estimate-stc.h5")
    assert stc.data.dtype == np.float32 and stc.data.shape == (result.head.n_sources, 101)
    parquet = (out / "region_timecourses.parquet").stat().st_size
    assert parquet < 2500 * 1015 * 4 * 1.05  # float32, not text
    assert result.region_data.shape[1] == 1001  # the in-memory result: +-1 s around the largest activity
    peaks = pd.read_csv(out / "peaks.csv")
    assert peaks["label"].str.match(r"^(left|right) ").all() and set(peaks["lobe"]) <= {
        "frontal", "parietal", "temporal", "occipital", "limbic", "insula", "subcortical"
    }  # fmt: skip
    csv_out = tmp_path / "csv"
    localize_file(path, csv_out, "default", report=False, timecourses="csv", tmin=1.0, tmax=2.0)
    table = pd.read_csv(csv_out / "region_timecourses.csv")
    assert table.shape == (500, 1015) and table["time_s"].iloc[0] == 1.0
    assert json.loads((csv_out / "summary.json").read_text())["source_estimate"]["scope"].startswith("the whole")
    blocks = localize_file(path, tmp_path / "blocks", "sloreta", report=False, tmin=1.0, tmax=2.0, chunk_s=0.5)
    scope = json.loads((tmp_path / "blocks" / "summary.json").read_text())["source_estimate"]["scope"]
    assert scope.startswith("+-0.1 s") and "blocks of 0.5 s" in scope  # the saved part is the peak's, not the whole
    assert blocks.stc.times[-1] - blocks.stc.times[0] <= 0.2 + 1e-9
    summary = json.loads((tmp_path / "blocks" / "summary.json").read_text())
    assert summary["coordinates"].startswith("fsaverage MRI coordinates")
    assert summary["source_estimate"]["values"].startswith("noise-normalized")
    # the saved estimate's deep (volume) vertices 0, 1, ... are the table's rows, with their positions
    deep = pd.read_csv(tmp_path / "blocks" / "deep_sources.csv")
    saved = mne.read_source_estimate(tmp_path / "blocks" / "source_estimate-stc.h5")
    head = blocks.head
    assert list(deep["vertex"]) == list(saved.vertices[2]) and len(deep) == head.n_sources - head.n_cortical_sources
    np.testing.assert_allclose(deep[["x_mm", "y_mm", "z_mm"]], head.source_pos_mm[head.n_cortical_sources :], atol=0.01)
    assert set(deep["region"]) == set(head.region_names[-head.n_deep_regions :])


def test_out_folders_that_cannot_be_renamed_into_place_are_refused_first(tmp_path, monkeypatch):
    from brainforge.localization.output import check_out_dir

    monkeypatch.chdir(tmp_path)
    for out in (".", "/", str(tmp_path)):
        with pytest.raises(BrainForgeError, match="is the working folder or one that holds it"):
            check_out_dir(out)
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(BrainForgeError, match="is a symbolic link"):
        check_out_dir("link")
    assert check_out_dir("results/run/..") == tmp_path / "results"  # a name to rename to


def test_csv_timecourses_keep_every_sample_time_late_in_a_recording(tmp_path):
    from brainforge.localization.output import TimecourseWriter

    times_s = 3600.0 + np.arange(5) / 500.0  # an hour in, at 500 Hz: 5 significant digits would merge them
    writer = TimecourseWriter(tmp_path, ["lh.0000", "rh.0001"], fmt="csv")
    writer.write(times_s, np.full((2, 5), 1.234567e-9))
    writer.close()
    table = pd.read_csv(tmp_path / "region_timecourses.csv")
    np.testing.assert_allclose(table["time_s"], times_s, rtol=0, atol=1e-9)
    assert table["lh.0000"].iloc[0] == 1.2346e-9  # the values keep 5 significant digits


def test_bad_options_stop_before_any_work_with_one_line(recording_1k, tmp_path, monkeypatch):
    path, _ = recording_1k
    raw = mne.io.read_raw(path, verbose="error")
    nan = raw.copy().load_data()
    nan._data[:] = np.nan
    nan_path = _save(nan, tmp_path, "nan_raw.fif")
    bad = raw.copy()
    bad.info["bads"] = list(bad.ch_names)
    bad_path = _save(bad, tmp_path, "bad_raw.fif")
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me")
    cases = [
        (path, {"tmin": 100.0}, "--tmin 100 s lies outside the recording"),
        (path, {"tmax": 9.0}, "--tmax 9 s lies outside the recording"),
        (path, {"tmin": -1.0}, "--tmin -1 s lies before the recording starts"),
        (path, {"tmin": 5.0}, "The analysed span, 5 to 5 s, holds fewer than two samples"),
        (path, {"events": ("spike_cortical",), "tmin": 0.4}, "The epoch window around each event, 0.4 to 0.3 s"),
        (path, {"events": ("spike_cortical",), "tmin": 0.0, "tmax": 0.001}, "0 to 0.001 s, holds fewer than two"),
        (path, {"l_freq": -1.0}, "--l-freq -1: a filter edge must be a positive frequency"),
        (path, {"l_freq": 0.05}, "--l-freq 0.05: a high-pass below 0.1 Hz needs a filter 66 s long"),
        (path, {"l_freq": 80.0, "h_freq": 10.0}, "--l-freq 80 is not below --h-freq 10"),
        (path, {"l_freq": 300.0, "h_freq": None}, "is not below the low-pass edge 225 Hz"),
        (nan_path, {}, "Every EEG channel is flat or holds NaN"),
        (bad_path, {}, "Every EEG channel is marked bad"),
        (path, {"events": ("spike_cortical", "spike_cortcal")}, "No annotation named spike_cortcal"),
        (path, {"channels": ("Fp1", "Foo")}, "--channels: no channel named Foo"),
        (path, {"exclude": ("Cz", "Bar")}, "--exclude: no channel named Bar"),
    ]
    for recording, options, message in cases:
        out = tmp_path / "out"
        with pytest.raises(BrainForgeError, match=message.replace("+", r"\+")):
            localize_file(recording, out, "sloreta", **options)
        assert not out.exists()
    with pytest.raises(BrainForgeError, match="is an existing file"):
        localize_file(path, existing, "sloreta")
    assert existing.read_text() == "keep me"
    # A folder that cannot be made (its parent is a file, which stops root too), found at the
    # door: the computation must not start.
    unwritable = existing / "out"

    def no_work(*args, **kwargs):
        raise AssertionError("the computation started before the output folder was checked")

    monkeypatch.setattr(core, "_localize_stream", no_work)
    monkeypatch.setattr(core, "prepare_recording", no_work)
    with pytest.raises(BrainForgeError, match="Cannot write the output folder"):
        localize_file(path, unwritable, "default")
    assert not [p for p in tmp_path.iterdir() if TMP_MARK in p.name]


def test_cli_prints_the_option_errors_as_one_line(recording_1k, tmp_path):
    path, _ = recording_1k
    for args, message in [
        (["--l-freq", "-1"], "--l-freq -1"),
        (["--l-freq", "80", "--h-freq", "10"], "band-stop"),
        (["--tmin", "100"], "outside the recording"),
        (["--timecourses", "xlsx"], "--timecourses 'xlsx'"),
    ]:
        out = tmp_path / "out"
        result = subprocess.run(
            [sys.executable, "-m", "brainforge.cli", "localize", str(path), "--out", str(out), *args],
            capture_output=True, text=True,
        )  # fmt: skip
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
        assert not out.exists()


def test_clinical_channels_are_dropped_with_a_warning_and_can_be_chosen(tmp_path):
    clinical = ["EKG1", "PHOTIC", "A1", "EEG A2-REF", "X1", "DC01", "EOG L", "EMG-chin"]
    raw = _raw([*(f"EEG {n}-REF" for n in NAMES_32), *clinical])
    stim = _raw(["STI 014"], types="stim")
    raw.add_channels([stim], force_update_info=True)
    assert not [n for n in NAMES_32 if is_non_scalp(n)]  # no scalp name is taken for a non-scalp one
    prepared = prepare_recording(raw, 500.0)
    assert prepared.ch_names == NAMES_32
    dropped = prepared.preprocessing["dropped_channels"]["not scalp EEG"]
    assert set(dropped) == {"STI 014", *clinical}
    assert any("not scalp EEG" in note and "EKG1" in note for note in prepared.notes)
    chosen = prepare_recording(raw, 500.0, PreprocessingConfig(channels=tuple(NAMES_32[:12])))
    assert chosen.ch_names == NAMES_32[:12]
    excluded = prepare_recording(raw, 500.0, PreprocessingConfig(exclude=("Fp1", "EEG Cz-REF")))
    assert "Fp1" not in excluded.ch_names and "Cz" not in excluded.ch_names and len(excluded.ch_names) == 30
    with pytest.raises(BrainForgeError, match="are not EEG channels"):
        prepare_recording(raw, 500.0, PreprocessingConfig(channels=(*NAMES_32[:12], "STI 014")))


def test_summary_records_preprocessing_events_and_warns_on_short_data(recording_1k, tmp_path):
    path, _truth = recording_1k
    out = tmp_path / "events"
    result = localize_file(
        path, out, "sloreta", events=("spike_cortical", "spike_deep"), tmin=-0.1, tmax=0.1, l_freq=2.0, report=False
    )
    summary = json.loads((out / "summary.json").read_text())
    preprocessing = summary["preprocessing"]
    assert preprocessing["requested"]["l_freq_hz"] == 2.0 and preprocessing["requested"]["tmin_s"] == -0.1
    assert preprocessing["applied"]["high_pass_hz"] == 2.0 and preprocessing["applied"]["sfreq_file_hz"] == 1000.0
    assert preprocessing["events_used"]["events"] == ["spike_cortical", "spike_deep"]
    assert preprocessing["events_used"]["n_epochs"] == 5 and result.region_data.shape[1] == 101
    # The continuous recording is filtered before epoching, so a 0.2-s epoch draws no short-data warning;
    # a 0.5-s recording high-passed at 1 Hz does.
    assert not [n for n in result.notes if "shorter than" in n]
    short = prepare_recording(_raw(NAMES_32, seconds=0.5), 500.0)
    assert any("shorter than the 3.3-s high-pass filter at 1 Hz" in note for note in short.notes)
    assert not [n for n in prepare_recording(_raw(NAMES_32, seconds=0.5), 500.0, PreprocessingConfig(0)).notes
                if "shorter" in n]  # fmt: skip


def test_output_permissions_and_stale_temporary_folders(recording_1k, tmp_path):
    path, _ = recording_1k
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".old{TMP_MARK}abc123"
    stale.mkdir()
    (stale / OWNER_FILE).write_text(f"{dead.pid} {os.uname().nodename}")
    (stale / "partial.parquet").write_bytes(b"x" * 100)
    alive = tmp_path / f".busy{TMP_MARK}def456"
    alive.mkdir()
    (alive / OWNER_FILE).write_text(f"{os.getpid()} {os.uname().nodename}")
    earlier = tmp_path / ".old.tmp-xyz789"  # an earlier version's, killed: its owner file names a dead process
    earlier.mkdir()
    (earlier / OWNER_FILE).write_text(f"{dead.pid} {os.uname().nodename}")
    foreign = tmp_path / ".session.tmp-2024"  # another tool's hidden folder, hours old, without an owner file
    foreign.mkdir()
    os.utime(foreign, (time.time() - 7200, time.time() - 7200))
    old_mask = os.umask(0o022)
    try:
        localize_file(path, tmp_path / "out", "sloreta", tmax=1.0, report=False)
    finally:
        os.umask(old_mask)
    assert not stale.exists() and alive.exists()  # a running writer's folder is left alone
    assert foreign.exists() and not earlier.exists()  # a folder BrainForge did not make is left alone too
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()} == {0o644}
    assert remove_stale_tmp(tmp_path) == []


def test_kill_during_writing_leaves_nothing_behind(recording_1k, tmp_path):
    path, _ = recording_1k
    out = tmp_path / "out"
    code = (
        "import sys; from brainforge.localization import localize_file;"
        f"localize_file({str(path)!r}, {str(out)!r}, 'sloreta', chunk_s=0.5)"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        partial = [p for p in tmp_path.glob(f".out{TMP_MARK}*/region_timecourses.parquet")]
        if partial:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it was killed; nothing was tested"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists() and list(tmp_path.glob(f".out{TMP_MARK}*"))  # the partial output is hidden, not --out
    localize_file(path, out, "sloreta", tmax=1.0, report=False)  # the next run into the same parent
    assert not list(tmp_path.glob(f".*{TMP_MARK}*")) and (out / "summary.json").is_file()


@pytest.mark.parametrize(("n_times", "length", "step"), [(100, 16, 8), (103, 16, 8), (50, 10, 3), (40, 12, 12)])
def test_vectorized_overlap_add_equals_window_by_window(n_times, length, step):
    from brainforge.inverse.solvers import _overlap_add

    rng = np.random.default_rng(n_times)
    starts = list(range(0, n_times - length + 1, step))
    if starts[-1] != n_times - length:
        starts.append(n_times - length)  # the last window, aligned to the end, off the grid
    estimate = rng.normal(size=(len(starts), length, 5))
    taper = np.hanning(length + 2)[1:-1]
    total, weight = np.zeros((n_times, 5)), np.zeros(n_times)
    _overlap_add(total, weight, estimate, starts, taper)
    expected, expected_weight = np.zeros((n_times, 5)), np.zeros(n_times)
    for window, start in zip(estimate, starts, strict=True):
        expected[start : start + length] += window
        expected_weight[start : start + length] += taper
    np.testing.assert_allclose(total, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weight, expected_weight, rtol=1e-12)


def test_spans_annotated_bad_are_left_out_of_the_peak_search(recording_1k, tmp_path):
    """MNE's convention: annotations starting with "bad" mark data to leave out (peaks, event epochs)."""
    import brainforge

    path, _ = recording_1k
    raw = mne.io.read_raw(path, preload=True, verbose="error")
    # An artifact far larger than any spike, on a few frontal channels, 3.45-3.55 s.
    times = raw.times
    burst = (times >= 3.45) & (times < 3.55)
    picks = mne.pick_channels(raw.ch_names, ["Fp1", "Fpz", "Fp2", "AF7"])
    raw._data[np.ix_(picks, np.flatnonzero(burst))] += 2e-3 * np.sin(2 * np.pi * 40 * times[burst])
    plain = _save(raw, tmp_path, "artifact_raw.fif")
    result = localize_file(plain, tmp_path / "plain", "sloreta", report=False)
    assert 3.4 <= result.peaks[0]["time_s"] <= 3.6  # unmarked, the artifact is the largest activity
    raw.annotations.append(raw.first_time + 3.4, 0.2, "BAD_artifact")
    marked = _save(raw, tmp_path, "marked_raw.fif")
    for localized in (
        localize_file(marked, tmp_path / "marked", "sloreta", report=False),
        localize_file(marked, tmp_path / "blocks", "sloreta", report=False, chunk_s=1.0),
    ):
        assert not 3.4 <= localized.peaks[0]["time_s"] < 3.6
        assert localized.times[localized.peak_index] == pytest.approx(localized.peaks[0]["time_s"], abs=1e-4)
        assert any("1 span(s) annotated as bad (0.2 s in all" in note for note in localized.notes)
    # The confidence bootstraps the same peak, with noise drawn outside the artifact.
    with_confidence = localize_file(marked, tmp_path / "confidence", "sloreta", report=False, uncertainty=True)
    assert with_confidence.confidence.peak_time == with_confidence.peak_index
    stc = brainforge.localize(mne.io.read_raw(marked, verbose="error"), "sloreta")
    assert stc.data.shape[1] == 2500  # the time courses still cover the bad span
    # Event epochs that overlap a bad span are left out of the average.
    spikes = [a["onset"] for a in raw.annotations if a["description"] == "spike_cortical"]
    raw.annotations.append(spikes[0] - 0.05, 0.1, "bad_electrode_pop")
    events = _save(raw, tmp_path, "events_raw.fif")
    prepared = prepare_recording(
        mne.io.read_raw(events, verbose="error"), 500.0, PreprocessingConfig(events=("spike_cortical",))
    )
    used = prepared.preprocessing["events_used"]
    bad = [(a["onset"], a["onset"] + a["duration"]) for a in raw.annotations if a["description"].lower()[:3] == "bad"]
    overlapping = sum(any(lo < onset + 0.3 and hi > onset - 0.2 for lo, hi in bad) for onset in spikes)
    assert overlapping == 2  # the new span, and the artifact's beside the spike at 3.5 s
    assert used["epochs_in_bad_spans"] == overlapping and used["n_epochs"] == len(spikes) - overlapping
    assert any("left out of the average" in note for note in prepared.notes)
    # Nothing left to search: one line that says so.
    raw.set_annotations(mne.Annotations([raw.first_time], [raw.times[-1] + 1.0], ["BAD_all"]))
    everything = _save(raw, tmp_path, "all_bad_raw.fif")
    with pytest.raises(BrainForgeError, match="Every sample of the analysed span lies in a span annotated as bad"):
        localize_file(everything, tmp_path / "all", "sloreta", report=False)


def test_the_bad_spans_note_counts_their_union_within_the_analysed_span():
    from brainforge.localization.recording import bad_spans_note

    note = bad_spans_note([(9.0, 12.0), (0.0, 2.0), (1.0, 3.0)], (0.5, 10.0))  # overlapping, and past both ends
    assert note.startswith("3 span(s) annotated as bad (3.5 s in all;")  # 0.5-3 and 9-10
    assert bad_spans_note([(0.0, 2.0)]).startswith("1 span(s) annotated as bad (2.0 s in all;")
    assert bad_spans_note([]) is None


def test_epoched_data_take_times_before_zero(recording_1k, tmp_path, caplog):
    path, _ = recording_1k
    raw = mne.io.read_raw(path, preload=True, verbose="error")
    events, ids = mne.events_from_annotations(raw, {"spike_cortical": 1}, verbose="error")
    evoked = mne.Epochs(raw, events, ids, tmin=-0.2, tmax=0.3, baseline=None, verbose="error").average()
    ave = tmp_path / "spikes-ave.fif"
    evoked.save(ave, verbose="error")
    result = localize_file(ave, tmp_path / "out", "sloreta", tmin=-0.1, tmax=0.1, report=False)
    assert result.times[0] == pytest.approx(-0.1, abs=1e-6) and result.times[-1] == pytest.approx(0.1, abs=1e-6)
    with pytest.raises(BrainForgeError, match="--tmin -1 s lies before the recording starts"):
        localize_file(path, tmp_path / "raw", "sloreta", tmin=-1.0)
    # BIDS-style gzipped names, and a file of two evoked responses: the first is read, with a warning.
    from brainforge.localization.recording import read_recording

    epochs = mne.Epochs(raw, events, ids, tmin=-0.2, tmax=0.3, baseline=None, verbose="error")
    epochs.save(tmp_path / "sub-01_epo.fif.gz", verbose="error")
    assert isinstance(read_recording(tmp_path / "sub-01_epo.fif.gz"), mne.BaseEpochs)
    other = evoked.copy()
    evoked.comment, other.comment = "spike", "other"
    mne.write_evokeds(tmp_path / "sub-01_ave.fif.gz", [evoked, other], verbose="error")
    with caplog.at_level(logging.WARNING, logger="brainforge"):
        first = read_recording(tmp_path / "sub-01_ave.fif.gz")
    assert isinstance(first, mne.Evoked) and first.comment == "spike"
    assert "holds 2 evoked responses ('spike', 'other'); localizing the first" in caplog.text
    assert "give --condition NAME or INDEX" in caplog.text
    ave = tmp_path / "sub-01_ave.fif.gz"
    assert read_recording(ave, condition="other").comment == read_recording(ave, condition=1).comment == "other"
    with pytest.raises(BrainForgeError, match=r"--condition rest: .* give one of 'spike', 'other' or an index"):
        read_recording(ave, condition="rest")
    with pytest.raises(BrainForgeError, match=r"is not one\. Drop --condition"):
        read_recording(tmp_path / "sub-01_epo.fif.gz", condition=0)


def test_channel_problems_name_their_cause_and_fix(tmp_path):
    scalp = NAMES_32[:10]
    with pytest.raises(BrainForgeError, match=r"holds MEG but no EEG channels \(types: grad, mag\).*mne.minimum_norm"):
        prepare_recording(_raw(["MEG 0111", "MEG 0112", "MEG 0113"], types=["mag", "grad", "grad"]), 500.0)
    with pytest.raises(BrainForgeError, match=r"no EEG channels \(its channel types are misc\); .*set_channel_types"):
        prepare_recording(_raw(scalp, types="misc"), 500.0)
    non_scalp = _raw(["EOG1", "EOG2", "ECG", "EMG", "A1", "A2", "X1", "X2"])
    with pytest.raises(BrainForgeError, match=r"Every EEG channel has a name of a non-scalp channel.*--channels"):
        prepare_recording(non_scalp, 500.0)
    few = _raw(scalp)
    few.info["bads"] = list(scalp[:3])
    with pytest.raises(BrainForgeError, match=r"Only 7 usable EEG.*3 were dropped as marked bad.*unmark"):
        prepare_recording(few, 500.0)
    with pytest.raises(BrainForgeError, match=r"Only 5 usable EEG.*too few scalp EEG channels"):
        prepare_recording(_raw(scalp[:5]), 500.0)
    # An EDF that names Cz twice reaches MNE as Cz-0 and Cz-1.
    twice = _raw([*scalp, "Cz-0", "Cz-1"])
    with pytest.raises(BrainForgeError, match=r"names Cz more than once \(MNE renamed them Cz-0, Cz-1\)"):
        prepare_recording(twice, 500.0)
    with pytest.raises(BrainForgeError, match="Channel\\(s\\) without positions that no standard montage knows: Ch-1"):
        prepare_recording(_raw([*scalp, "Ch-1", "Ch-2"]), 500.0)  # numbered channels of their own, not copies
    with pytest.raises(BrainForgeError, match=r"without positions .*: E1, E2; give their positions with --positions"):
        prepare_recording(_raw([*scalp, "E1", "E2"]), 500.0)
    with pytest.raises(BrainForgeError, match=r"Fp1-F7, F7-T7 look like bipolar .* --exclude Fp1-F7,F7-T7, .* E9 have"):
        prepare_recording(_raw(["Fp1-F7", "F7-T7", "E9", *scalp]), 500.0)
    # 100 Hz: the 70-Hz low-pass cannot be kept, and the notes say so.
    slow = prepare_recording(_raw(NAMES_32, sfreq=100.0, seconds=6.0), 500.0)
    assert any(note.startswith("Low-pass at 45 Hz instead of the requested 70 Hz") for note in slow.notes)
    # Microvolts stored as volts (10 uV noise read as 10 V) stop with the fix; volts divided twice get a note.
    as_microvolts = _raw(NAMES_32).apply_function(lambda x: x * 1e6)
    with pytest.raises(BrainForgeError, match=r"swing \d+(\.\d+)? V peak to peak.*stored as V\. Rescale them to volts"):
        prepare_recording(as_microvolts, 500.0)
    millivolts = prepare_recording(_raw(NAMES_32).apply_function(lambda x: x * 1e3), 500.0)
    assert sum("if the file holds millivolts stored as volts" in note for note in millivolts.notes) == 1
    tiny = prepare_recording(_raw(NAMES_32).apply_function(lambda x: x * 1e-4), 500.0)
    assert sum("far less than EEG's microvolts: check the file's units" in note for note in tiny.notes) == 1
    assert not any("microvolts" in note for note in prepare_recording(_raw(NAMES_32), 500.0).notes)


def test_files_cut_short_or_named_for_another_kind_are_read_or_refused_on_one_line(tmp_path):
    from brainforge.localization.recording import read_recording

    raw = _raw(NAMES_32, seconds=10.0)
    whole = _save(raw, tmp_path, "whole_raw.fif")
    content = whole.read_bytes()
    cut = tmp_path / "cut_raw.fif"
    cut.write_bytes(content[: int(0.6 * len(content))])  # an interrupted copy
    with pytest.raises(BrainForgeError, match=r"cut_raw.fif.*(truncated or damaged|Cannot read)"):
        read_recording(cut, preload=False)  # opened from its header, then its last sample read
    with pytest.raises(BrainForgeError, match=r"cut_raw.fif"):
        localize_file(cut, tmp_path / "out", "sloreta")
    # Epochs and evoked responses saved under names without -epo/-ave are read as such.
    epochs = mne.make_fixed_length_epochs(raw, duration=1.0, verbose="error")
    epochs.save(tmp_path / "my_epochs.fif", verbose="error")
    assert isinstance(read_recording(tmp_path / "my_epochs.fif"), mne.BaseEpochs)
    epochs.average().save(tmp_path / "my_evoked.fif", verbose="error")
    assert isinstance(read_recording(tmp_path / "my_evoked.fif"), mne.Evoked)
    cut_epochs = tmp_path / "cut_epochs.fif"  # epochs under another name, cut short: MNE's own reason
    cut_epochs.write_bytes((tmp_path / "my_epochs.fif").read_bytes()[:-20000])
    with pytest.raises(BrainForgeError, match=r"Cannot read cut_epochs.fif as EEG") as cut_error:
        read_recording(cut_epochs)
    assert "holds no raw recording" not in str(cut_error.value)
    mne.io.write_info(tmp_path / "info.fif", raw.info)  # measurement info, no data
    with pytest.raises(BrainForgeError, match=r"info.fif holds no raw recording, epochs or evoked responses"):
        read_recording(tmp_path / "info.fif")
    # A recording of one sample.
    one = mne.io.RawArray(np.zeros((len(NAMES_32), 1)), raw.info, verbose="error")
    with pytest.raises(BrainForgeError, match=r"holds 1 sample\(s\); a recording needs at least two"):
        read_recording(_save(one, tmp_path, "one_raw.fif"))


def test_nan_within_the_filters_reach_of_the_span_drops_its_channel():
    # NaN from 6 s on in one channel; the span ends at 4 s, but its filtered values read 3.3 s
    # further (the 1-Hz high-pass), so the channel is unusable there and is dropped.
    raw = _raw(NAMES_32, seconds=8.0)
    raw._data[0, 3000:] = np.nan
    prepared = prepare_recording(raw, 500.0, PreprocessingConfig(tmax=4.0))
    assert NAMES_32[0] not in prepared.ch_names and np.isfinite(prepared.data).all()
    assert any("with NaN or infinite values: " + NAMES_32[0] in note for note in prepared.notes)
    # Without the high-pass the reach is short, and the channel is kept.
    kept = prepare_recording(raw, 500.0, PreprocessingConfig(tmax=4.0, l_freq=None))
    assert NAMES_32[0] in kept.ch_names and np.isfinite(kept.data).all()


def test_a_recording_that_breaks_off_is_filtered_stretch_by_stretch(tmp_path):
    # An acquisition skip as MNE reads an EGI pause: channels with their own DC offsets (5 mV), a
    # zero-filled gap at 8-10 s annotated BAD_ACQ_SKIP, then the recording again.
    from brainforge.localization import localize_prepared
    from brainforge.localization.recording import FilterPlan, RecordingStream, select_channels

    names = CHANNEL_SUBSETS["1010-64"]
    raw = _raw(names, seconds=20.0, seed=3)
    raw._data += np.random.default_rng(4).normal(scale=5e-3, size=(len(names), 1))
    raw._data[:, 4000:5000] = 0.0

    def near_and_middle(prepared):
        rms = np.sqrt((prepared.data**2).mean(axis=0))
        return np.r_[rms[3500:3750], rms[5250:5500]].mean(), rms[1000:3000].mean()  # 0.5-1 s from the gap

    raw.set_annotations(mne.Annotations([8.0], [2.0], ["BAD_ACQ_SKIP"]))
    prepared = prepare_recording(raw, 500.0)
    assert prepared.breaks_s == [8.0, 10.0]
    near, middle = near_and_middle(prepared)
    assert near < 1.3 * middle  # each stretch filtered on its own, as MNE's raw.filter does
    # The same data filtered across the gap (an annotation that marks no break): the steps ring on.
    raw.set_annotations(mne.Annotations([8.0], [2.0], ["BAD_artefact"]))
    across, _ = near_and_middle(prepare_recording(raw, 500.0))
    assert across > 5 * middle
    # The peak search leaves out the gap (a bad span) and each stretch's own 0.5-s edges by it.
    result = localize_prepared(prepared, "sloreta")
    assert {(7.5, 8.0), (10.0, 10.5), (8.0, 10.0)} <= set(result.excluded_spans_s)
    assert not 7.5 <= result.peaks[0]["time_s"] < 10.5
    assert any("breaks off and resumes at 2 point(s)" in note for note in result.notes)
    # Block by block as whole, with blocks that start and end inside and beside the gap, at the
    # solver's rate and resampled from 1000 and 512 Hz.
    for sfreq in (500.0, 1000.0, 512.0):
        other = _raw(CHANNEL_SUBSETS["1010-16"], sfreq=sfreq, seconds=20.0, seed=5)
        other._data += np.random.default_rng(6).normal(scale=5e-3, size=(16, 1))
        other._data[:, round(8 * sfreq) : round(10 * sfreq)] = 0.0
        other.set_annotations(mne.Annotations([8.0], [2.0], ["BAD_ACQ_SKIP"]))
        filters = FilterPlan.make(sfreq, 500.0, PreprocessingConfig())
        stream = RecordingStream(other, select_channels(other, PreprocessingConfig()), filters)
        whole = stream.block(0, 10000)
        cuts = [(0, 3999), (3999, 4600), (4600, 5001), (5001, 10000)]
        pieces = np.concatenate([stream.block(a, b) for a, b in cuts], axis=1)
        np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-9 * np.abs(whole).max())
    # Epochs around events: the one that reaches the break (0.2 s after it) is left out.
    raw.set_annotations(mne.Annotations([8.0, 5.0, 10.2], [2.0, 0.0, 0.0], ["BAD_ACQ_SKIP", "spike", "spike"]))
    averaged = prepare_recording(raw, 500.0, PreprocessingConfig(events=("spike",)))
    used = averaged.preprocessing["events_used"]
    assert (used["n_epochs"], used["epochs_at_breaks"], used["epochs_in_bad_spans"]) == (1, 1, 0)
    assert any(note.startswith("1 epoch(s) reaching a break") for note in averaged.notes)
    # A file, localized block by block, leaves out the same spans.
    raw.set_annotations(mne.Annotations([8.0], [2.0], ["BAD_ACQ_SKIP"]))
    streamed = localize_file(_save(raw, tmp_path), tmp_path / "out", "sloreta")
    assert not 7.5 <= streamed.peaks[0]["time_s"] < 10.5
    assert any("breaks off and resumes at 2 point(s)" in note for note in streamed.notes)


def test_nan_in_a_bad_span_is_a_gap_like_an_acquisition_skip(tmp_path):
    # A dropout stored as NaN over 8-10 s, in every channel, annotated bad: the same prepared
    # EEG and breaks as a zero-filled gap annotated BAD_ACQ_SKIP, no channel dropped.
    from brainforge.localization import localize_prepared
    from brainforge.localization.recording import nan_gaps_in, recording_breaks_in

    names = CHANNEL_SUBSETS["1010-64"]
    skipped = _raw(names, seconds=20.0, seed=3)
    skipped._data[:, 4000:5000] = 0.0
    skipped.set_annotations(mne.Annotations([8.0], [2.0], ["BAD_ACQ_SKIP"]))
    dropout = skipped.copy()
    dropout._data[:, 4000:5000] = np.nan
    # An annotation that ends on the gap's last sample, not after it, still covers it.
    dropout.set_annotations(mne.Annotations([8.0], [1.998], ["BAD_dropout"]))
    gaps = nan_gaps_in(dropout, list(names))
    assert gaps == [(4000, 5000)] and recording_breaks_in(dropout, gaps) == [4000, 5000]
    assert recording_breaks_in(dropout) == []  # no annotation marks a break: the NaN does
    reference = prepare_recording(skipped, 500.0)
    prepared = prepare_recording(dropout, 500.0)
    assert prepared.ch_names == reference.ch_names == list(names)
    assert prepared.breaks_s == [8.0, 10.0]
    np.testing.assert_array_equal(prepared.data, reference.data)
    result = localize_prepared(prepared, "sloreta")
    assert np.isfinite(result.stc.data).all() and not 7.5 <= result.peaks[0]["time_s"] < 10.5
    assert any("the edges of NaN in a bad span" in note for note in result.notes)
    # NaN in a few channels only, from a file localized block by block: none is dropped.
    dropout._data[:, 4000:5000] = 0.0
    dropout._data[:3, 4100:4200] = np.nan
    streamed = localize_file(_save(dropout, tmp_path), tmp_path / "out", "sloreta")
    assert not any("NaN or infinite" in note for note in streamed.notes)
    assert not 7.7 <= streamed.peaks[0]["time_s"] < 10.0
    # Averaged epochs: the one that reaches the gap is left out, the other is finite.
    dropout._data[:, 4000:5000] = np.nan
    dropout.set_annotations(mne.Annotations([8.0, 5.0, 10.2], [2.0, 0.0, 0.0], ["BAD_dropout", "spike", "spike"]))
    averaged = prepare_recording(dropout, 500.0, PreprocessingConfig(events=("spike",)))
    assert averaged.preprocessing["events_used"]["n_epochs"] == 1 and np.isfinite(averaged.data).all()
    # A span that lies wholly in the gap (no filter reaching beyond it) stops on one line.
    with pytest.raises(BrainForgeError, match=r"Every sample of the analysed span lies in NaN within spans annotated"):
        prepare_recording(dropout, 500.0, PreprocessingConfig(tmin=8.2, tmax=9.8, l_freq=None, h_freq=None))
    # A recording that starts later than its file's first sample (cropped): the same, shifted.
    later = dropout.copy().crop(tmin=2.0)
    later._data[:, 3000:4000] = np.nan  # input samples from the crop: 8-10 s of the original
    assert later.first_time == pytest.approx(2.0)
    assert prepare_recording(later, 500.0).breaks_s == [6.0, 8.0]
    # NaN only in channels that are not used (marked bad, or excluded) makes no gap: their bad spans
    # stay ordinary data; nor does NaN under an annotation for some channels only (annotate_nan's),
    # which drops those channels as before.
    dead = skipped.copy()
    dead._data[:, 4000:5000] = dead._data[:, 6000:7000]
    dead._data[0] = np.nan
    dead.info["bads"] = [names[0]]
    dead.set_annotations(mne.Annotations([8.0], [2.0], ["BAD_muscle"]))
    assert prepare_recording(dead, 500.0).breaks_s == []
    assert prepare_recording(dead, 500.0, PreprocessingConfig(exclude=(names[0],))).breaks_s == []
    dead.info["bads"] = []
    dead.set_annotations(mne.Annotations([0.0], [20.0], ["BAD_NAN"], ch_names=[[names[0]]]))
    kept = prepare_recording(dead, 500.0)
    assert names[0] not in kept.ch_names and kept.breaks_s == [] and np.isfinite(kept.data).all()
    # NaN outside every bad span still drops its channel; in every channel it stops, naming the fix.
    dropout.set_annotations(mne.Annotations([12.0], [1.0], ["BAD_dropout"]))
    with pytest.raises(BrainForgeError, match=r"annotate that part as bad \(BAD_\.\.\.: it is then read as a gap\)"):
        prepare_recording(dropout, 500.0)


def test_breaks_fall_on_the_first_sample_after_a_joint():
    from brainforge.localization.recording import break_edge_spans_s, recording_breaks_in

    raw = _raw(NAMES_32, seconds=20.0)
    raw.set_annotations(
        mne.Annotations(
            [(3001 - 0.5) / 500, (4000 - 0.5) / 500, 3.0, 15.0],
            [0.3, 2.0, 0.0, 1.0],
            ["boundary", "BAD_ACQ_SKIP", "EDGE boundary", "BAD_blink"],
        )
    )
    # EEGLAB's joint half a sample before sample 3001 (odd: rounding to even would give 3000), its
    # duration the samples it removed (no second break); an EGI skip over samples 4000-4999; a
    # joint of concatenated recordings; a bad span, which is no break.
    assert recording_breaks_in(raw) == [1500, 3001, 4000, 5000]
    # Each stretch's own edge by a break, shortened as a short recording's are: a 1-s stretch
    # keeps none of 0.5 s (it is shorter than four), a 0.25-s one none at all.
    spans = break_edge_spans_s(1.0, [5.0, 6.0, 6.25], 0.0, 20.0, recording_s=20.0)
    assert spans == [(4.5, 5.0), (6.25, 6.75)]


def test_the_filters_edge_transient_is_left_out_of_the_peak_search(tmp_path):
    """After a 1-Hz high-pass, white noise is stronger at the recording's ends: no peak is taken there."""
    from brainforge.localization import localize_prepared
    from brainforge.localization.recording import FILTER_EDGE_S

    names = CHANNEL_SUBSETS["1010-64"]
    rms = []
    for seed in range(3):
        prepared = prepare_recording(_raw(names, seconds=10.0, seed=seed), 500.0)
        rms.append((prepared.data**2).mean(axis=0))
        assert prepared.recording_s == 10.0
        classical = localize_prepared(prepared, "sloreta")
        assert classical.excluded_spans_s == [(0.0, FILTER_EDGE_S), (10.0 - FILTER_EDGE_S, 10.0)]
        assert FILTER_EDGE_S <= classical.peaks[0]["time_s"] < 10.0 - FILTER_EDGE_S
        assert classical.times[classical.peak_index] == pytest.approx(classical.peaks[0]["time_s"], abs=1e-4)
        assert any("first and last 0.5 s were left out" in note for note in classical.notes)
        # A network scales each 1-s window back by its maximum: the whole first and last window are skipped.
        network = localize_prepared(prepared, "default")
        assert network.excluded_spans_s == [(0.0, 1.0), (9.0, 10.0)]
        assert 1.0 <= network.peaks[0]["time_s"] < 9.0
        assert any("first and last 1 s were left out" in note for note in network.notes)
    rms = np.sqrt(np.mean(rms, axis=0))
    middle = rms[1500:3500].mean()
    assert rms[:50].mean() > 1.4 * middle and rms[-50:].mean() > 1.4 * middle  # the transient is real
    assert 0.9 < rms[250:500].mean() / middle < 1.1  # and gone by FILTER_EDGE_S

    # Without a high-pass, or on a recording shorter than 4 x the edge, every sample is searched.
    def excluded(seconds, solver="sloreta", **options):
        prepared = prepare_recording(_raw(names, seconds=seconds), 500.0, PreprocessingConfig(**options))
        return localize_prepared(prepared, solver).excluded_spans_s

    assert excluded(10.0, l_freq=None) == [] and excluded(1.5) == [] and excluded(3.0, "default") == []
    # A lower high-pass has a longer transient (0.5 s / l_freq below 1 Hz), and more is left out; a
    # recording too short for four of those keeps the 1-Hz edge, or the network's window.
    from brainforge.localization.recording import filter_edge_spans_s

    assert filter_edge_spans_s(0.2, 5.0, 0.0, 5.0) == [(0.0, 0.5), (4.5, 5.0)]
    assert filter_edge_spans_s(0.2, 5.0, 0.0, 5.0, edge_s=1.0) == [(0.0, 1.0), (4.0, 5.0)]
    assert filter_edge_spans_s(0.2, 10.0, 0.0, 10.0) == [(0.0, 2.5), (7.5, 10.0)]
    assert filter_edge_spans_s(0.0, 10.0, 0.0, 10.0) == [] == filter_edge_spans_s(None, 10.0, 0.0, 10.0)
    low = [prepare_recording(_raw(names, seconds=40.0, seed=seed), 500.0, PreprocessingConfig(l_freq=0.2))
           for seed in range(2)]  # fmt: skip
    assert localize_prepared(low[0], "sloreta").excluded_spans_s == [(0.0, 2.5), (37.5, 40.0)]
    assert localize_prepared(low[0], "default").excluded_spans_s == [(0.0, 2.5), (37.5, 40.0)]
    low_rms = np.sqrt(np.mean([(p.data**2).mean(axis=0) for p in low], axis=0))
    low_middle = low_rms[5000:15000].mean()
    assert low_rms[:250].mean() > 1.4 * low_middle and low_rms[-250:].mean() > 1.4 * low_middle
    assert low_rms[500:1000].mean() > 1.1 * low_middle  # still there 1-2 s in, beyond the 1-Hz edge
    assert 0.9 < low_rms[1250:2500].mean() / low_middle < 1.1  # and gone by 2.5 s
    # Shorter than the network's 1-s window: a note says so (sLORETA needs none).
    short = prepare_recording(_raw(names, seconds=0.3), 500.0, PreprocessingConfig(l_freq=None))
    assert any("shorter than the network's 1-s window" in n for n in localize_prepared(short, "default").notes)
    assert not any("window" in n for n in localize_prepared(short, "sloreta").notes)
    # A crop away from the ends reads real data beyond it: no edge there; a crop that keeps part of
    # an edge keeps it out of the search.
    assert excluded(10.0, tmin=2.0, tmax=8.0) == []
    assert excluded(10.0, tmin=0.1, tmax=8.0) == [(0.0, FILTER_EDGE_S)]
    note = [n for n in localize_prepared(prepare_recording(_raw(names, seconds=10.0), 500.0,
            PreprocessingConfig(tmin=2.0)), "sloreta").notes if "were left out" in n]  # fmt: skip
    assert note == ["The recording's last 0.5 s were left out of the peak search: the 1-Hz high-pass filter's "
                    "edge transient inflates activity there (--l-freq 0 searches them)."]  # fmt: skip
    # The block-by-block pass agrees.
    path = _save(_raw(names, seconds=10.0, seed=1), tmp_path)
    result = localize_file(path, tmp_path / "out", "sloreta", report=False, chunk_s=2.0)
    assert FILTER_EDGE_S <= result.peaks[0]["time_s"] < 10.0 - FILTER_EDGE_S
