"""Formats that need the optional readers: EGI .mff (mffpy) and ANT .cnt (antio), on files the tests write."""

from __future__ import annotations

import ctypes
import shutil
from datetime import UTC, datetime
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest

from brainforge.localization import localize_file, read_recording, simulate_recording
from brainforge.localization.core import head_model_for
from brainforge.localization.recording import PreprocessingConfig, prepare_recording

MFF_DEVICE = "HydroCel GSN 128 1.0"


def write_mff(path: Path, data_v: np.ndarray, sfreq: float, device: str = MFF_DEVICE) -> Path:
    """Write an EGI MFF folder with mffpy (data in V, one channel per sensor of ``device`` plus VREF)."""
    mffpy = pytest.importorskip("mffpy")
    shutil.rmtree(path, ignore_errors=True)
    writer = mffpy.Writer(str(path))
    writer.addxml("fileInfo", recordTime=datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    writer.add_coordinates_and_sensor_layout(device)
    signal = mffpy.bin_writer.BinWriter(int(sfreq), data_type="EEG")
    signal.add_block((data_v * 1e6).astype(np.float32))  # MFF stores microvolts
    writer.addbin(signal)
    writer.write()
    return path


def test_egi_coordinates_xml_gives_the_positions_mnes_mff_reader_gives(tmp_path):
    """``--positions coordinates.xml`` (an EGI net's, on its own) agrees with MNE's MFF reader, name by name."""
    from brainforge.localization import read_positions
    from brainforge.localization.positions import file_positions_m

    mff = write_mff(tmp_path / "layout.mff", np.zeros((129, 500)), 500.0)
    raw = read_recording(mff)
    expected = dict(zip(raw.ch_names, file_positions_m(raw.info), strict=True))
    positions, notes = read_positions(mff / "coordinates.xml")
    assert len(positions) == 129 and set(positions) <= set(expected), sorted(set(positions) - set(expected))
    np.testing.assert_allclose(
        np.array(list(positions.values())),
        np.array([expected[n] for n in positions]),
        atol=1e-6,  # MNE keeps float32 positions
    )
    assert not any("lacks the nasion" in note for note in notes)
    # The same net exported without positions (EDF: E1 ... E128): names no standard montage knows, placed by the file.
    names = [f"E{number}" for number in range(1, 129)]
    data = np.random.default_rng(0).normal(scale=1e-5, size=(128, 1000))
    exported = mne.io.RawArray(data, mne.create_info(names, 500.0, "eeg"), verbose="error")
    config = PreprocessingConfig(positions=str(mff / "coordinates.xml"), l_freq=None)
    prepared = prepare_recording(exported, 500.0, config)
    assert prepared.ch_names == names
    assert "Electrode positions from coordinates.xml, projected onto the template head." in prepared.notes


def write_ant_cnt(path: Path, raw: mne.io.BaseRaw) -> Path:
    """Write an ANT Neuro .cnt file through antio's libeep (microvolts, one trigger per annotation).

    CNT trigger codes hold at most 8 characters, so annotations arrive truncated
    (``spike_cortical`` -> ``spike_co``).
    """
    antio = pytest.importorskip("antio")
    lib = ctypes.CDLL(str(Path(antio.__file__).parent / "libeep" / "libEep.so"))
    lib.libeep_add_trigger.argtypes = [ctypes.c_int, ctypes.c_uint64, ctypes.c_char_p]
    lib.libeep_set_start_time.argtypes = [ctypes.c_int, ctypes.c_int64]
    lib.libeep_init()
    channels = lib.libeep_create_channel_info()
    for name in raw.ch_names:
        lib.libeep_add_channel(channels, name.encode(), b"ref", b"uV")
    path.unlink(missing_ok=True)
    handle = lib.libeep_write_cnt(str(path).encode(), int(raw.info["sfreq"]), channels, 0)
    samples = np.ascontiguousarray((raw.get_data() * 1e6).T, dtype=np.float32)  # (n_times, n_channels)
    lib.libeep_add_samples(handle, samples.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), len(samples))
    for annotation in raw.annotations:
        sample = round(annotation["onset"] * raw.info["sfreq"])
        lib.libeep_add_trigger(handle, sample, annotation["description"].encode())
    # antio reads the recording info (and crashes without it), as ANT's own software writes it.
    info = lib.libeep_create_recinfo()
    lib.libeep_set_start_time(info, 1767605400)
    lib.libeep_set_date_of_birth(info, 1980, 1, 2)
    lib.libeep_add_recording_info(handle, info)
    lib.libeep_close(handle)
    lib.libeep_close_channel_info(channels)
    return path


@pytest.fixture(scope="module")
def spikes_500(head64, spike_library):
    """Four seconds of 64-channel EEG with one spike per second, at 500 Hz."""
    return simulate_recording(head64, spike_library, ("cortical", "deep", "cortical", "cortical"), seed=7)


def test_ant_cnt_reads_like_fif(spikes_500, tmp_path):
    """The same recording as ANT .cnt and as FIF localizes alike; the .cnt triggers serve as --events."""
    pytest.importorskip("antio")
    raw, truth = spikes_500
    fif = tmp_path / "spikes_raw.fif"
    raw.save(fif, verbose="error")
    cnt = write_ant_cnt(tmp_path / "spikes.cnt", raw)
    assert type(read_recording(cnt, preload=False)).__name__ == "RawANT"
    tables = []
    for name, path in (("fif", fif), ("cnt", cnt)):
        localize_file(path, tmp_path / name, "sloreta", report=False)
        tables.append(pd.read_parquet(tmp_path / name / "region_timecourses.parquet").to_numpy()[:, 1:])
    from_fif, from_cnt = tables
    # .cnt stores integers of 1/128 uV: a tiny quantization against 20-uV EEG.
    np.testing.assert_allclose(from_cnt, from_fif, rtol=0, atol=2e-3 * np.abs(from_fif).max())
    events = localize_file(cnt, tmp_path / "events", "sloreta", events=("spike_co",), tmin=-0.1, tmax=0.1)
    inside = [t for t in truth if t.kind == "cortical" and 0.1 <= t.time_s <= raw.times[-1] - 0.1]
    assert events.prepared.preprocessing["events_used"]["n_epochs"] == len(inside) >= 2


def test_egi_mff_uses_the_file_positions_and_finds_the_source(spike_library, tmp_path):
    """A 128-channel HydroCel MFF: positions from the file, the flat reference dropped, a cortical spike found."""
    pytest.importorskip("mffpy")
    layout = read_recording(write_mff(tmp_path / "layout.mff", np.zeros((129, 500)), 500.0))
    layout.load_data()._data[:] = np.random.default_rng(0).normal(scale=1e-5, size=layout._data.shape)
    head = head_model_for(prepare_recording(layout, 500.0))  # the head model localize builds from the file
    assert head.n_channels == 129
    raw, truth = simulate_recording(head, spike_library, ("cortical", "cortical"), snr_db=15.0, seed=3)
    data = raw.get_data()
    data[-1] = 0.0  # VREF: the recording reference, flat in the file
    mff = write_mff(tmp_path / "spikes.mff", data, 500.0)
    result = localize_file(mff, tmp_path / "out", "sloreta", report=False)
    assert "Electrode positions from the file, projected onto the template head." in result.prepared.notes
    assert not any("not co-registered" in note for note in result.prepared.notes)
    assert len(result.prepared.ch_names) == 128 and "VREF" not in result.prepared.ch_names
    summary = (tmp_path / "out" / "summary.json").read_text()
    assert "VREF" in summary  # reported as dropped
    peak = result.peaks[0]
    centres = result.head.region_centres_mm[[t.centre for t in truth]]
    assert np.linalg.norm(centres - result.head.region_centres_mm[peak["region"]], axis=1).min() < 25.0
