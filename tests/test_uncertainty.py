"""The bootstrap confidence per region: reproducible, wider in noise, calibrated, written by localize."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from brainforge import BrainForgeError
from brainforge.evaluation.calibration import calibrate_confidence, conformal_margin, wilson_interval
from brainforge.inverse import make_solver
from brainforge.inverse.uncertainty import UncertaintyConfig, confidence_set, region_confidence
from brainforge.synthesis import SampleGenerator, SynthesisConfig
from brainforge.synthesis.store import write_test_set


@pytest.fixture(scope="module")
def sloreta(head64):
    return make_solver("sloreta").fit(head64)


def _segments(head, library, snr_db: float, n: int, seed: int = 0):
    config = SynthesisConfig(n_sources=(1, 1), sensor_snr_db=(snr_db, snr_db), deep_share=0.0)
    generator = SampleGenerator(head, library, config)
    for i in range(n):
        sample = generator.sample(seed + i)
        eeg = sample.eeg.T
        yield eeg - eeg.mean(axis=0), sample


def test_same_seed_same_confidence_and_other_seed_other_replicates(head64, spike_library, sloreta):
    eeg, _ = next(_segments(head64, spike_library, 5.0, 1))
    first = region_confidence(sloreta, eeg, head64.region_distance_mm, 500.0, UncertaintyConfig(seed=3))
    again = region_confidence(sloreta, eeg, head64.region_distance_mm, 500.0, UncertaintyConfig(seed=3))
    other = region_confidence(sloreta, eeg, head64.region_distance_mm, 500.0, UncertaintyConfig(seed=4))
    np.testing.assert_array_equal(first.confidence, again.confidence)
    np.testing.assert_array_equal(first.spread, again.spread)
    np.testing.assert_array_equal(first.confidence_set, again.confidence_set)
    assert not np.array_equal(first.spread, other.spread)
    # At margin 0 the confidence is the share of replicates peaking in each region.
    assert first.confidence.sum() == pytest.approx(1.0)
    assert first.spread.shape == (head64.n_regions, eeg.shape[1])


def test_confidence_is_wider_at_5_db_than_at_20_db(head64, spike_library, sloreta):
    widths = {}
    for snr in (5.0, 20.0):
        sizes, spreads = [], []
        for eeg, _ in _segments(head64, spike_library, snr, 12):
            confidence = region_confidence(sloreta, eeg, head64.region_distance_mm, 500.0, UncertaintyConfig())
            sizes.append(confidence.set_size())
            spreads.append(confidence.spread[:, confidence.peak_time].mean())
        widths[snr] = (np.mean(sizes), np.mean(spreads))
    assert widths[5.0][0] > widths[20.0][0]
    assert widths[5.0][1] > 1.5 * widths[20.0][1]


def test_confidence_set_holds_the_level_and_the_margin_widens_it(head64):
    distance = head64.region_distance_mm
    peaks = np.array([5] * 6 + [7] * 3 + [9])
    core = confidence_set(peaks, distance, 0.9, 0.0)
    assert set(core) == {5, 7}  # 9 of 10 replicate peaks
    assert set(confidence_set(peaks, distance, 0.6, 0.0)) == {5}
    wide = confidence_set(peaks, distance, 0.9, 15.0)
    assert set(core) <= set(wide)
    assert set(wide) == set(np.flatnonzero((distance[:, [5, 7]] <= 15.0).any(axis=1)))


def test_too_short_a_segment_for_a_noise_estimate_says_so(head64, sloreta):
    eeg = np.random.default_rng(0).standard_normal((head64.n_channels, 60))
    with pytest.raises(BrainForgeError, match="too few to estimate its noise"):
        region_confidence(sloreta, eeg, head64.region_distance_mm, 500.0)


def test_conformal_margin_and_wilson_interval():
    distances = np.arange(1.0, 20.0)  # 19 calibration distances
    assert conformal_margin(distances, 0.9) == 18.0  # ceil(20 * 0.9) = 18th smallest
    assert conformal_margin(distances[:5], 0.9) == np.inf
    low, high = wilson_interval(45, 50)
    assert low < 0.9 < high and 0 < low and high < 1


def test_margin_from_one_half_covers_the_other_half(head64, spike_library, sloreta, tmp_path):
    config = SynthesisConfig(n_sources=(1, 2), sensor_snr_db=(5.0, 20.0), deep_share=0.2)
    path = write_test_set(SampleGenerator(head64, spike_library, config), 24, tmp_path / "t.zarr", progress=False)
    result = calibrate_confidence(sloreta, head64, [path], UncertaintyConfig(n_resamples=10), label="sloreta")
    samples = result.samples
    calibration = samples[samples.half == "calibration"]
    evaluation = samples[samples.half == "evaluation"]
    assert len(calibration) == 12 and len(evaluation) == 12
    # The margin is the calibration half's split-conformal quantile: with 12 distances at the 0.9
    # level, the ceil(13 * 0.9) = 12th smallest, the largest.
    assert result.margin_mm == calibration.distance_mm.max() > 0
    # Coverage is measured on the other half, which the margin never saw.
    assert result.coverage == (evaluation.distance_mm <= result.margin_mm).mean()
    assert result.coverage_bare == (evaluation.distance_mm <= 0).mean()
    assert result.coverage >= result.coverage_bare
    low, high = result.coverage_interval
    assert low <= result.coverage <= high
    # Held out, the calibrated set reaches the level (within the 95 % interval of 12 samples).
    assert high >= result.level, result.to_dict()
    assert (samples.set_size >= samples.set_size_bare).all()
    assert json.dumps(result.to_dict())


def test_localize_file_writes_the_confidence(head64, spike_library, tmp_path):
    from brainforge.localization import localize_file
    from brainforge.localization.demo import simulate_recording

    raw, _ = simulate_recording(head64, spike_library, ("cortical",), seed=1)
    path = tmp_path / "rec_raw.fif"
    raw.save(path, verbose="error")
    out = tmp_path / "out"
    result = localize_file(path, out, "sloreta", uncertainty=UncertaintyConfig(n_resamples=8), report=False)
    assert {"source_spread-stc.h5", "region_confidence.csv"} <= {p.name for p in out.iterdir()}
    peaks = pd.read_csv(out / "peaks.csv")
    assert "confidence" in peaks and peaks.confidence.between(0, 1).all()
    table = pd.read_csv(out / "region_confidence.csv")
    assert table.confidence.sum() == pytest.approx(1.0, abs=1e-3)
    assert table.in_confidence_set.sum() == result.confidence.set_size()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["uncertainty"]["n_resamples"] == 8
    import mne

    spread = mne.read_source_estimate(out / "source_spread-stc.h5")
    assert spread.data.shape[0] == head64.n_sources and np.isfinite(spread.data).all()


def test_cli_uncertainty_writes_the_files_and_checks_resamples(head64, spike_library, tmp_path):
    import subprocess
    import sys

    from brainforge.localization.demo import simulate_recording

    raw, _ = simulate_recording(head64, spike_library, ("cortical",), seed=2)
    path = tmp_path / "rec_raw.fif"
    raw.save(path, verbose="error")

    def run(out, *args):
        return subprocess.run(
            [sys.executable, "-m", "brainforge.cli", "localize", str(path), "--out", str(out), "--solver", "sloreta",
             "--no-progress", *args],
            capture_output=True, text=True,
        )  # fmt: skip

    bad = run(tmp_path / "bad", "--uncertainty", "--resamples", "1")
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "--resamples must be at least 2" in lines[0], bad.stderr
    good = run(tmp_path / "good", "--uncertainty", "--resamples", "6", "--seed", "1")
    assert good.returncode == 0, good.stderr
    assert "confidence set" in good.stdout and re.search(r"confidence [01]\.\d\d", good.stdout), good.stdout
    summary = json.loads((tmp_path / "good" / "summary.json").read_text())
    assert summary["uncertainty"]["n_resamples"] == 6
    # every note reaches the terminal once: printed, or already logged (stderr)
    assert summary["notes"] and all(
        (f"Note: {note}" in good.stdout) != (note in good.stderr) for note in summary["notes"]
    ), (good.stdout, good.stderr)
    assert (tmp_path / "good" / "region_confidence.csv").is_file()


def test_calibrated_margins_are_found_whatever_the_spelling():
    """sLORETA and sloreta are one solver; the bundled network by name, folder or solver object."""
    from brainforge.inverse import ClassicalSolver, LearnedSolver, make_solver
    from brainforge.localization import default_model_dir
    from brainforge.localization.core import calibrated_margin_mm, default_uncertainty

    sloreta = calibrated_margin_mm("sloreta")
    default = calibrated_margin_mm("default")
    assert sloreta > 0 and default > 0 and sloreta != default
    assert calibrated_margin_mm("sLORETA") == calibrated_margin_mm(make_solver("SLORETA")) == sloreta
    assert default_uncertainty("sLORETA").margin_mm == sloreta
    for spelling in (str(default_model_dir()), make_solver("default"), LearnedSolver(default_model_dir())):
        assert calibrated_margin_mm(spelling) == default
    assert calibrated_margin_mm("dspm") is None and default_uncertainty("dspm").margin_mm == 0.0
    # Options that change the estimate make another solver than the one calibrated; others do not.
    from brainforge.localization.core import calibration_key

    assert calibrated_margin_mm(make_solver("default", overlap=0.5, batch_size=4)) == default
    for changed, key in (
        (make_solver("sLORETA", lambda2=0.01), "sloreta (lambda2=0.01)"),
        (make_solver("sloreta", baseline=np.ones((64, 10))), "sloreta (baseline=given)"),
        (LearnedSolver(default_model_dir(), upsample=False), "default (upsample=False)"),
    ):
        assert calibration_key(changed) == key
        assert calibrated_margin_mm(changed) is None and default_uncertainty(changed).margin_mm == 0.0

    class MySLORETA(ClassicalSolver):  # a user's subclass is checked as its base class is
        pass

    assert calibration_key(MySLORETA("sloreta")) == "sloreta"
    assert calibration_key(MySLORETA("sloreta", lambda2=0.01)) == "sloreta (lambda2=0.01)"
    assert calibration_key(make_solver("sloreta", baseline=[[0.0] * 10] * 64)) == "sloreta (baseline=given)"


def test_the_peak_time_is_searched_only_where_allowed():
    from brainforge.inverse.solvers import masked_peak_time

    activity = np.array([[1.0, -5.0, 2.0, 0.0], [0.0, 1.0, -3.0, 0.5]])
    assert masked_peak_time(activity) == 1  # the largest |value| over regions
    assert masked_peak_time(activity, np.array([True, False, True, True])) == 2
    with pytest.raises(BrainForgeError, match="No time is left to search for a peak"):
        masked_peak_time(activity, np.zeros(4, bool))
