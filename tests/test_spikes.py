import numpy as np
import pytest

from brainforge import BrainForgeError
from brainforge.nmm import (
    SpikeRules,
    StreamingSpikeExtractor,
    extract_spikes,
    find_spike_peaks,
    preprocess_run,
    select_isolated_peaks,
)

N_TIMES, N_REGIONS = 5000, 4


def bump(run, t, region, amplitude=12.0, width=5.0):
    """Add a smooth spike peaking exactly at sample ``t``."""
    x = np.arange(len(run))
    run[:, region] += amplitude * np.exp(-0.5 * ((x - t) / width) ** 2)
    return run


def make_run(*spikes):
    run = np.zeros((N_TIMES, N_REGIONS))
    for t, region, *amp in spikes:
        bump(run, t, region, *amp)
    return run


def test_preprocessing_drops_the_transient_and_downsamples():
    chunks = [np.arange(3000.0)[:, None].repeat(2, 1), np.arange(3000.0, 5000.0)[:, None].repeat(2, 1)]
    run = preprocess_run(chunks)
    np.testing.assert_array_equal(run[:, 0], np.arange(1000.0, 5000.0, 4))
    with pytest.raises(BrainForgeError, match="transient"):
        preprocess_run(np.zeros((900, 3)))


def test_threshold():
    run = make_run((1000, 0, 7.9), (2000, 0, 8.5), (3000, 1, 30.0))
    times, regions = find_spike_peaks(run)
    assert times.tolist() == [2000, 3000] and regions.tolist() == [0, 1]
    times, _ = find_spike_peaks(run, SpikeRules(threshold=7.0))
    assert times.tolist() == [1000, 2000, 3000]


def test_flat_top_counts_once_at_its_centre():
    run = np.zeros((N_TIMES, 1))
    run[1000:1005, 0] = 10.0
    times, _ = find_spike_peaks(run)
    assert times.tolist() == [1002]


def test_ends():
    # Kept: 249 <= t <= n - 252.
    run = make_run(
        (248, 0, 12.0, 1.0), (249, 1, 12.0, 1.0), (N_TIMES - 252, 2, 12.0, 1.0), (N_TIMES - 251, 3, 12.0, 1.0)
    )
    times, regions = find_spike_peaks(run, SpikeRules(refractory_samples=0))
    assert times.tolist() == [249, N_TIMES - 252] and regions.tolist() == [1, 2]


def test_refractory_gap_spans_regions():
    run = make_run((1000, 0), (1100, 1), (1201, 2), (1302, 0))
    times, regions = find_spike_peaks(run)
    # 1100 is exactly 100 after 1000: dropped; 1201 is 101 after 1100 (the previous peak, even though dropped): kept.
    assert times.tolist() == [1000, 1201, 1302] and regions.tolist() == [0, 2, 0]


def test_stimulated_region_rule():
    run = make_run((1000, 0), (2500, 1), (4000, 0))
    times, regions = find_spike_peaks(run)
    kept = select_isolated_peaks(run, times, regions, stimulated=0)
    assert kept.tolist() == [1000, 4000]
    assert select_isolated_peaks(run, times, regions, stimulated=1).tolist() == [2500]


@pytest.mark.parametrize(
    "other_time,isolated",
    [(1000 - 201, True), (1000 - 200, False), (1000 + 699, False), (1000 + 700, True)],
)
def test_isolation_window(other_time, isolated):
    run = make_run((1000, 0))
    run[other_time, 2] = 8.0  # one sample of another region at the threshold
    times, regions = find_spike_peaks(run, SpikeRules(refractory_samples=0))
    kept = select_isolated_peaks(run, times, regions, stimulated=0)
    assert (1000 in kept) is isolated


def test_block_aligned_clips():
    run = make_run((1234, 0), (2998, 0), (3499, 0))
    spikes = extract_spikes(run, stimulated=0)
    # start = floor((t + 1) / 500) * 500: MATLAB's floor(t/500)*500 + 1 with 1-based t.
    assert spikes.starts.tolist() == [1000, 2500, 3500]
    assert spikes.waveforms.shape == (3, 500) and spikes.waveforms.dtype == np.float32
    for clip, start in zip(spikes.waveforms, spikes.starts, strict=True):
        np.testing.assert_array_equal(clip, run[start : start + 500, 0].astype(np.float32))
    np.testing.assert_allclose(spikes.peak_amplitudes, 12.0, rtol=1e-6)


def test_peak_centred_clips():
    run = make_run((1234, 0), (2998, 0))
    spikes = extract_spikes(run, stimulated=0, rules=SpikeRules(alignment="peak"))
    assert spikes.starts.tolist() == [1234 - 249, 2998 - 249]
    assert (np.argmax(spikes.waveforms, axis=1) == 249).all()


def test_block_clip_past_the_end_is_dropped():
    run = make_run((4499, 0))
    assert len(extract_spikes(run, 0)) == 1  # its block [4500, 5000) fits a 5000-sample run
    short = run[:4751]  # the block no longer fits; the peak still passes the ends rule (t <= n - 252)
    assert find_spike_peaks(short)[0].tolist() == [4499]
    assert len(extract_spikes(short, 0)) == 0


def test_bad_input():
    with pytest.raises(BrainForgeError, match="stimulated region 9"):
        extract_spikes(make_run((1000, 0)), stimulated=9)
    with pytest.raises(BrainForgeError, match="finite"):
        extract_spikes(np.full((3000, 2), np.nan), stimulated=0)
    with pytest.raises(BrainForgeError, match="alignment"):
        SpikeRules(alignment="middle")


def _stream(raw, stimulated, rules, chunk_sizes, background_starts=()):
    extractor = StreamingSpikeExtractor(raw.shape[1], stimulated, rules, background_starts)
    start = 0
    for size in chunk_sizes:
        extractor.feed(raw[start : start + size])
        start += size
    extractor.feed(raw[start:])
    return extractor


@pytest.mark.parametrize("alignment", ["block", "peak"])
def test_streaming_equals_batch_extraction(alignment):
    rng = np.random.default_rng(0)
    rules = SpikeRules(downsample=2, alignment=alignment)
    n_raw = 1000 + 2 * 6000
    raw = np.zeros((n_raw, N_REGIONS))
    x = np.arange(n_raw)
    # Spikes of the stimulated region every ~1000 raw samples; two other regions spike near some of them.
    events = [(t + int(rng.integers(-100, 100)), 0) for t in range(1600, n_raw - 400, 1000)]
    events += [(4600, 2), (9300, 3)]
    for t, region in events:
        raw[:, region] += rng.uniform(9, 20) * np.exp(-0.5 * ((x - t) / 12.0) ** 2)
    raw += rng.normal(0, 0.05, raw.shape)
    # Plateaus straddling chunk boundaries (chunk edges at multiples of 997 raw samples).
    for edge in (997 * 3, 997 * 7):
        raw[edge - 6 : edge + 6, 1] = 30.0
        raw[edge - 7, 1] = raw[edge + 6, 1] = 29.0
    batch = extract_spikes(preprocess_run(raw, rules), 0, rules)
    assert len(batch) >= 3
    streamed = _stream(raw, 0, rules, [997] * 12)
    spikes, _ = streamed.finish()
    np.testing.assert_array_equal(spikes.peak_times, batch.peak_times)
    np.testing.assert_array_equal(spikes.waveforms, batch.waveforms)
    full = preprocess_run(raw, rules)
    summary = streamed.summary()
    from brainforge.nmm.spikes import thresholded_maxima

    times, regions = thresholded_maxima(full, rules)
    np.testing.assert_array_equal(summary.peak_times, times)
    np.testing.assert_array_equal(summary.peak_regions, regions)
    assert (times[regions == 1] == (997 * 3 - 1000) // 2).sum() == 1  # the plateau counts once, and is found


def test_streaming_keeps_background_windows():
    rules = SpikeRules(downsample=1, transient_samples=100)
    raw = np.random.default_rng(1).normal(size=(3100, 5))
    extractor = _stream(raw, 2, rules, [333] * 8, background_starts=[0, 1200, 2800])
    _, background = extractor.finish()
    full = preprocess_run(raw, rules)
    assert background.shape == (2, 500, 5)  # the window at 2800 runs past the end: dropped
    np.testing.assert_array_equal(background[1], full[1200:1700].astype(np.float32))


def test_streaming_finds_a_peak_on_a_chunk_edge_whose_next_sample_is_below_threshold():
    from brainforge.nmm.spikes import thresholded_maxima

    rules = SpikeRules(transient_samples=0, downsample=1)
    raw = np.zeros((4000, N_REGIONS))
    raw[1997:2000, 2] = [8.5, 9.0, 10.0]  # rises to the chunk's last sample; the next chunk starts at 5
    raw[2000, 2] = 5.0
    times, regions = thresholded_maxima(preprocess_run(raw, rules), rules)
    assert (1999, 2) in set(zip(times.tolist(), regions.tolist(), strict=True))
    summary = _stream(raw, 0, rules, [2000]).summary()
    np.testing.assert_array_equal(summary.peak_times, times)
    np.testing.assert_array_equal(summary.peak_regions, regions)
