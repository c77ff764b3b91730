import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from brainforge import BrainForgeError
from brainforge.anatomy import make_head_model
from brainforge.synthesis import SampleGenerator, SynthesisConfig, SyntheticEEGDataset, normalize_eeg
from brainforge.synthesis._kernels import _windowed_snr
from brainforge.synthesis.dataset import collate_compact, collate_samples, densify_sources, sample_seed
from brainforge.synthesis.generator import SOURCE_SNR_HALF_WINDOW
from brainforge.synthesis.noise import pink_noise, snr_db
from brainforge.synthesis.patches import grow_patch, is_connected


@pytest.fixture(scope="module")
def generator(head64, spike_library):
    return SampleGenerator(head64, spike_library, SynthesisConfig(n_sources=(1, 3), deep_share=0.2))


def test_sample_shapes_and_normalization(generator, head64):
    sample = generator.sample(1)
    assert sample.eeg.shape == (500, 64) and sample.eeg.dtype == np.float32
    assert sample.sources.shape == (500, head64.n_regions) and sample.sources.dtype == np.float32
    assert np.abs(sample.eeg).max() == pytest.approx(1.0) and np.abs(sample.sources).max() == pytest.approx(1.0)
    np.testing.assert_allclose(sample.eeg.mean(axis=1), 0, atol=1e-6)  # channel mean removed last
    assert sample.ch_names == head64.ch_names
    # Targets live only on the patches.
    assert not sample.sources[:, ~sample.active].any()
    assert set(np.flatnonzero(sample.active)) == set(np.concatenate(sample.patches))


def test_recorded_peak_time_is_the_targets_peak(generator, head64, spike_library):
    overlapping = SampleGenerator(head64, spike_library, SynthesisConfig(n_sources=(2, 3), overlap=True))
    for gen in (generator, overlapping):
        for seed in range(40):
            sample = gen.sample(seed)
            assert sample.peak_time == int(np.abs(sample.sources).max(axis=1).argmax())


@pytest.mark.parametrize("convention,offset", [("power", 0.0), ("deepsif", 10 * np.log10(2))])
def test_realized_snrs_match_the_request(head64, spike_library, convention, offset):
    config = SynthesisConfig(sensor_snr_db=(12.0, 12.0), source_snr_db=(15.0, 15.0), snr_convention=convention)
    gen = SampleGenerator(head64, spike_library, config)
    for seed in range(5):
        sample = gen.sample(seed, keep_parts=True)
        parts = sample.parts
        # Recompute from the parts with the module's definitions.
        assert abs(snr_db(parts["clean"], parts["noise"]) - (12.0 + offset)) < 0.5
        assert sample.sensor_snr_db == pytest.approx(snr_db(parts["clean"], parts["noise"]))
        for (patch_eeg, window), reported in zip(parts["patch_eeg"], sample.source_snr_db, strict=True):
            assert window.stop - window.start <= 2 * SOURCE_SNR_HALF_WINDOW
            recomputed = _windowed_snr(patch_eeg, parts["background_eeg"], window)
            assert abs(recomputed - 15.0) < 0.5 and reported == pytest.approx(recomputed)


@pytest.mark.parametrize("noise_bank_segments", [0, 8192])
def test_the_sensor_snr_is_that_of_the_average_referenced_eeg(head64, spike_library, noise_bank_segments):
    # On 8 channels, the average reference removes an eighth of white noise's power (0.58 dB):
    # the SNR asked for is the one the sample's EEG has after it, as normalize_eeg() references it.
    config = SynthesisConfig(sensor_snr_db=(12.0, 12.0), n_channels=(8, 8), noise_bank_segments=noise_bank_segments)
    gen = SampleGenerator(head64, spike_library, config)
    for seed in range(3):
        sample = gen.sample(seed, keep_parts=True)
        assert sample.eeg.shape[1] == 8

        def referenced_power(x):
            x = x - x.mean(axis=0)
            return np.mean((x - x.mean(axis=1, keepdims=True)) ** 2)

        realized = 10 * np.log10(referenced_power(sample.parts["clean"]) / referenced_power(sample.parts["noise"]))
        assert realized == pytest.approx(12.0, abs=1e-6) and sample.sensor_snr_db == pytest.approx(12.0, abs=1e-6)


def test_a_library_whose_connectome_file_moved_says_so(head64, spike_library, tmp_path):
    from dataclasses import replace

    gone = str(tmp_path / "my76.zip")
    moved = replace(spike_library, metadata={**spike_library.metadata, "connectome": gone})
    with pytest.raises(BrainForgeError, match=r"simulated on the connectome file .*my76.zip, which is not there now"):
        SampleGenerator(head64, moved, SynthesisConfig())


def test_patches_are_contiguous_distinct_and_bounded(head64, spike_library):
    gen = SampleGenerator(head64, spike_library, SynthesisConfig(n_sources=(3, 3), max_patch_regions=20))
    for seed in range(30):
        sample = gen.sample(seed)
        assert len(sample.patches) == 3 == len(set(sample.centres.tolist()))
        for patch, centre in zip(sample.patches, sample.centres, strict=True):
            assert patch[0] == centre and len(patch) <= 20
            assert is_connected(head64.region_adjacency, patch)
        everything = np.concatenate(sample.patches)
        assert len(everything) == len(np.unique(everything))  # no overlap unless asked


def test_overlap_when_asked(head64, spike_library):
    gen = SampleGenerator(head64, spike_library, SynthesisConfig(n_sources=(3, 3), overlap=True))
    overlaps = 0
    for seed in range(40):
        patches = gen.sample(seed).patches
        everything = np.concatenate(patches)
        overlaps += len(everything) > len(np.unique(everything))
    assert overlaps > 0


def test_deep_sources_and_onset_delays(head64, spike_library):
    config = SynthesisConfig(n_sources=(2, 2), deep_share=1.0, max_onset_delay_ms=200.0)
    gen = SampleGenerator(head64, spike_library, config)
    samples = [gen.sample(seed) for seed in range(10)]
    assert all(head64.region_is_deep[s.centres].all() for s in samples)
    onsets = np.concatenate([s.onsets for s in samples])
    assert onsets.max() > 0 and onsets.max() <= 100  # 200 ms at 500 Hz


def test_same_seed_same_sample_bit_for_bit(generator):
    a, b = generator.sample(42), generator.sample(42)
    np.testing.assert_array_equal(a.eeg, b.eeg)
    np.testing.assert_array_equal(a.sources, b.sources)
    assert not np.array_equal(a.eeg, generator.sample(43).eeg)


def test_montage_subsets(head64, spike_library):
    gen = SampleGenerator(head64, spike_library, SynthesisConfig(n_channels=(16, 32)))
    sizes = set()
    for seed in range(10):
        sample = gen.sample(seed)
        sizes.add(sample.eeg.shape[1])
        assert 16 <= sample.eeg.shape[1] <= 32 and len(sample.ch_names) == sample.eeg.shape[1]
        index = [head64.ch_names.index(n) for n in sample.ch_names]
        np.testing.assert_array_equal(sample.ch_pos_mm, head64.ch_pos_mm[index])
    assert len(sizes) > 1


def test_mismatched_forward_model_changes_the_eeg_not_the_labels(head64, spike_library):
    jittered = make_head_model("1010-64", electrode_jitter_mm=10.0, jitter_seed=1)
    matched = SampleGenerator(head64, spike_library).sample(5)
    other = SampleGenerator(jittered, spike_library).sample(5)
    np.testing.assert_array_equal(matched.active, other.active)
    np.testing.assert_array_equal(matched.centres, other.centres)
    # Each patch keeps its activity; only its gain (set by the SNR on that forward model) may change.
    for patch in matched.patches:
        a, b = matched.sources[:, patch].ravel(), other.sources[:, patch].ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.999999
    assert not np.allclose(matched.eeg, other.eeg)


def test_dataset_is_deterministic_across_workers(generator):
    dataset = SyntheticEEGDataset(generator, n_samples=8, seed=3)
    single = {int(item["index"]): item for item in dataset}
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    multi = {int(item["index"]): item for item in loader}
    assert sorted(single) == sorted(multi) == list(range(8))
    for i in range(8):
        assert int(multi[i]["seed"]) == sample_seed(3, i)
        assert torch.equal(single[i]["eeg"], multi[i]["eeg"])
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch["eeg"].shape == (4, 500, 64)


def test_compact_batches_densify_to_the_dense_targets(generator):
    dense = list(SyntheticEEGDataset(generator, n_samples=6, seed=4))
    compact = SyntheticEEGDataset(generator, n_samples=6, seed=4, compact_targets=True)
    # Through worker processes, as training batches them; patches differ in size, so the batch is padded.
    batches = list(DataLoader(compact, batch_size=3, num_workers=2, collate_fn=collate_compact))
    assert "sources" not in batches[0] and batches[0]["source_waves"].dtype == torch.float32
    assert len({len(item["source_regions"]) for item in compact}) > 1
    assert sorted(int(i) for batch in batches for i in batch["index"]) == list(range(6))
    for batch in batches:  # each worker batches its own indices
        dense_batch = collate_samples([dense[int(i)] for i in batch["index"]])
        densified = densify_sources(batch)
        assert set(densified) == set(dense_batch)
        for key, value in dense_batch.items():
            assert torch.equal(densified[key], value), key
    assert densify_sources(dense_batch) is dense_batch  # already dense: unchanged
    assert torch.equal(collate_samples(list(compact)[:3])["sources"], collate_samples(dense[:3])["sources"])
    with pytest.raises(ValueError, match="compact"):
        collate_compact(dense[:2])


def test_whole_batches_equal_the_items_and_survive_buffer_reuse(generator, monkeypatch):
    """Batches made in workers that reuse their memory (loader()) hold exactly the per-sample items."""
    n_samples, batch_size = 70, 4  # 18 batches: more than the 8 buffer slots of each worker, the last one partial
    items = list(SyntheticEEGDataset(generator, n_samples=n_samples, seed=6))
    dataset = SyntheticEEGDataset(generator, n_samples=n_samples, seed=6, batch_size=batch_size)
    messages = []
    claim = SyntheticEEGDataset.claim
    monkeypatch.setattr(SyntheticEEGDataset, "claim", lambda self, batch: messages.append(batch) or claim(self, batch))
    loader = dataset.loader(num_workers=2, prefetch_factor=2)
    claimed = list(loader)  # all kept while the workers went on reusing their buffers
    assert len(loader) == len(claimed) == 18
    # Only where each batch lies crossed processes; the buffers only on a slot's first use, so slots were reused.
    assert all(set(m) <= {"slot", "shapes", "buffers"} for m in messages)
    assert sum("buffers" in m for m in messages) < len(messages) and len({m["slot"] for m in messages}) > 2
    indices = [int(i) for batch in claimed for i in batch["index"]]
    assert sorted(indices) == list(range(n_samples)) and len(claimed[-1]["index"]) in (2, batch_size)
    plain = {int(b["index"][0]): b for b in DataLoader(dataset, batch_size=None, num_workers=2)}  # no reuse
    for batch in claimed:
        assert set(batch) == set(plain[int(batch["index"][0])]) and "slot" not in batch
        expected = collate_samples([items[int(i)] for i in batch["index"]])
        dense = densify_sources(batch)
        assert set(dense) == set(expected)
        for key, value in expected.items():
            assert torch.equal(dense[key], value), key
            assert torch.equal(densify_sources(plain[int(batch["index"][0])])[key], value), key
    # Without workers the same batches come out.
    local = list(SyntheticEEGDataset(generator, n_samples=8, seed=6, batch_size=batch_size).loader())
    assert torch.equal(local[1]["eeg"], torch.stack([it["eeg"] for it in items[4:8]]))
    varying = SampleGenerator(generator.head, generator.library, SynthesisConfig(n_channels=(16, 64)))
    with pytest.raises(BrainForgeError, match="one montage"):
        SyntheticEEGDataset(varying, n_samples=8, batch_size=4)
    with pytest.raises(BrainForgeError, match="batch_size"):
        SyntheticEEGDataset(generator, n_samples=8).loader()


def test_a_worker_that_is_not_its_owners_child_ends_when_the_owner_dies(generator):
    """A forkserver's worker outlives a rank killed with SIGKILL unless it watches the rank itself."""
    import pickle
    import subprocess
    import sys
    import time

    # The owner a worker watches is whoever pickled the dataset for it, last.
    dataset = SyntheticEEGDataset(generator, 4, seed=0)
    dataset._owner_pid = -1  # as if unpickled from another process
    assert pickle.loads(pickle.dumps(dataset))._owner_pid == os.getpid()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    watch = (
        "import time\nfrom brainforge.synthesis.dataset import _exit_with_owner\n"
        f"_exit_with_owner({owner.pid})\nprint('watching', flush=True)\ntime.sleep(120)"
    )
    worker = subprocess.Popen([sys.executable, "-c", watch], stdout=subprocess.PIPE, text=True)  # a sibling
    try:
        assert worker.stdout.readline().strip() == "watching"
        time.sleep(2.5)  # two checks
        assert worker.poll() is None, "the worker ended while its owner lived"
        owner.kill()  # left a zombie until waited for: the worker must see that too
        worker.wait(timeout=30)
        assert worker.returncode == 0
    finally:
        for process in (owner, worker):
            process.kill()
            process.wait()


def test_distributed_workers_start_from_a_forkserver_and_keep_the_rank(generator, tmp_path, monkeypatch):
    """In a process group, workers start from a forkserver (a fork can hang there, gh-112275) and serve their rank."""
    import torch.distributed as dist

    from brainforge.synthesis import dataset as dataset_module

    assert dataset_module.worker_start_method() is None  # no process group: the platform's default start
    expected = list(SyntheticEEGDataset(generator, n_samples=16, seed=8, batch_size=4).loader())
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert dataset_module.worker_start_method() == "forkserver"
        # Rank 1 of 2 here only: a worker from the forkserver imports the module afresh, so only the rank
        # recorded in the dataset it receives can give it rank 1's share (batches 1 and 3 of 4).
        monkeypatch.setattr(dataset_module, "_distributed_rank", lambda: (1, 2))
        loader = SyntheticEEGDataset(generator, n_samples=16, seed=8, batch_size=4).loader(num_workers=1)
        batches = list(loader)
    finally:
        dist.destroy_process_group()
    assert len(loader) == len(batches) == 2
    for batch, reference in zip(batches, [expected[1], expected[3]], strict=True):
        assert set(batch) == set(reference)
        for key, value in reference.items():
            assert torch.equal(batch[key], value), key


def test_noise_bank_gives_independent_white_and_pink_channels(head64, spike_library):
    from brainforge.synthesis import NoiseBank

    bank = NoiseBank(n_segments=512, seed=3)
    rng = np.random.default_rng(0)
    white = np.concatenate([bank.draw("white", 500, 64, rng) for _ in range(8)])
    # Unit variance, no correlation between channels, a flat spectrum.
    assert abs(white.var() - 1.0) < 0.05
    correlation = np.corrcoef(white.T)[np.triu_indices(64, 1)]
    assert np.abs(correlation).max() < 0.1
    white_spectrum = (np.abs(np.fft.rfft(white[:500], axis=0)) ** 2).mean(axis=1)[1:]
    white_slope = np.polyfit(np.log(np.arange(1, len(white_spectrum) + 1)), np.log(white_spectrum), 1)[0]
    assert abs(white_slope) < 0.1, white_slope
    picked, shifts, signs = bank.pick(64, 500, np.random.default_rng(1))  # distinct segments per sample
    assert len(set(picked.tolist())) == 64 and shifts.max() < 500 and set(signs.tolist()) == {-1.0, 1.0}
    pink = bank.draw("pink", 500, 64, np.random.default_rng(2))
    spectrum = (np.abs(np.fft.rfft(pink, axis=0)) ** 2).mean(axis=1)[1:]
    slope = np.polyfit(np.log(np.arange(1, len(spectrum) + 1)), np.log(spectrum), 1)[0]
    assert -1.2 < slope < -0.8
    # Same seeds, same noise; the moments the generator uses match the drawn noise.
    again = NoiseBank(n_segments=512, seed=3).draw("pink", 500, 64, np.random.default_rng(2))
    np.testing.assert_array_equal(pink, again)
    means, powers = bank.moments("pink", 500)
    picked, _, signs = bank.pick(64, 500, np.random.default_rng(2))
    np.testing.assert_allclose(pink.mean(axis=0), signs * means[picked], atol=1e-12)
    np.testing.assert_allclose(np.mean(powers[picked]), np.mean((pink - pink.mean(axis=0)) ** 2), rtol=1e-9)
    with pytest.raises(BrainForgeError, match="independent channels"):
        bank.pick(513, 500, rng)
    with pytest.raises(BrainForgeError, match="noise_bank_segments"):
        SampleGenerator(head64, spike_library, SynthesisConfig(noise_bank_segments=32))


def test_fresh_noise_option_matches_the_bank_statistics(head64, spike_library):
    """noise_bank_segments=0 draws fresh noise per sample; SNRs and normalization are the same either way."""
    config = dict(sensor_snr_db=(8.0, 8.0), noise_types=("pink",))
    for segments in (0, 8192):
        gen = SampleGenerator(head64, spike_library, SynthesisConfig(noise_bank_segments=segments, **config))
        sample = gen.sample(4, keep_parts=True)
        assert abs(snr_db(sample.parts["clean"], sample.parts["noise"]) - 8.0) < 1e-6
        # The compiled assembly equals the definition: normalize_eeg(clean + noise).
        expected = normalize_eeg(sample.parts["clean"] + sample.parts["noise"])
        np.testing.assert_allclose(sample.eeg, expected, rtol=0, atol=1e-6)
        assert np.abs(sample.eeg).max() == pytest.approx(1.0)


def test_cached_background_clips_change_nothing(head64, spike_library):
    """A generator's first samples (clips not yet projected) equal later ones and an uncached generator's."""
    for config in (SynthesisConfig(n_sources=(1, 3)), SynthesisConfig(n_channels=(16, 64))):
        warm = SampleGenerator(head64, spike_library, config)
        for seed in range(40):
            warm.sample(seed)
        assert warm._projected and (config.n_channels is not None or warm._full_montage)
        uncached = SampleGenerator(head64, spike_library, config)
        uncached._cache_clips = False
        for seed in (3, 17):
            cold = SampleGenerator(head64, spike_library, config).sample(seed)
            for other in (warm.sample(seed), uncached.sample(seed)):
                np.testing.assert_array_equal(cold.eeg, other.eeg)
                np.testing.assert_array_equal(cold.source_values, other.source_values)
                np.testing.assert_array_equal(cold.source_snr_db, other.source_snr_db)
        assert not uncached._projected


def _grow_patch_reference(adjacency, centres_mm, centre, rng, max_regions=70, excluded=None):
    """The recipe written with NumPy and sparse products (the compiled grow_patch must match it)."""
    n_regions = adjacency.shape[0]
    free = np.ones(n_regions, bool) if excluded is None else ~excluded
    inside = np.zeros(n_regions, bool)
    inside[centre] = True
    order = [np.array([centre])]

    def add(candidates):
        candidates = candidates[free[candidates] & ~inside[candidates]]
        inside[candidates] = True
        order.append(candidates)
        return candidates

    ring = np.sort(add(adjacency.indices[adjacency.indptr[centre] : adjacency.indptr[centre + 1]].astype(np.int64)))
    order[-1] = ring
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    for ring_index in (2, 3):
        if ring_index == 3 and rng.random() >= 0.3:
            break
        indicator = np.zeros(n_regions)
        indicator[ring] = 1.0
        candidates = np.flatnonzero((adjacency @ indicator > 0) & free & ~inside)
        if not len(candidates):
            break
        offsets = centres_mm[candidates] - centres_mm[centre]
        norms = np.linalg.norm(offsets, axis=1)
        cosine = np.where(norms > 0, offsets @ direction / np.where(norms > 0, norms, 1.0), 0.0)
        ring = add(candidates[rng.random(len(candidates)) < (1.0 + cosine) / 2.0])
    inside_neighbours = adjacency @ inside.astype(float)
    degree = np.diff(adjacency.indptr)
    border = np.flatnonzero((inside_neighbours > 0) & free & ~inside)
    add(border[inside_neighbours[border] >= 0.75 * degree[border]])
    return np.concatenate(order)[:max_regions]


def test_compiled_patch_growth_matches_the_numpy_recipe(head64):
    """Same patches and the same draws from the generator, on plain and weighted graphs, with exclusions."""
    adjacency = head64.region_adjacency.astype(np.float64).tocsr()
    weighted = adjacency.copy()
    weighted.data = np.random.default_rng(0).uniform(0.5, 2.0, weighted.nnz)
    weighted = ((weighted + weighted.T) / 2).tocsr()
    centres = head64.region_centres_mm
    for graph in (adjacency, weighted):
        for seed in range(300):
            excluded = np.random.default_rng(seed + 1000).random(graph.shape[0]) < 0.2 * (seed % 2)
            centre = (7 * seed) % graph.shape[0]
            excluded[centre] = False
            size = 70 if seed % 3 else 25
            rng, reference_rng = np.random.default_rng(seed), np.random.default_rng(seed)
            patch = grow_patch(graph, centres, centre, rng, max_regions=size, excluded=excluded)
            np.testing.assert_array_equal(
                patch, _grow_patch_reference(graph, centres, centre, reference_rng, size, excluded)
            )
            assert rng.random() == reference_rng.random()
            assert patch[0] == centre and len(patch) <= size and not excluded[patch].any()
    # Any sparse format or dtype is accepted.
    bool_coo = head64.region_adjacency.tocoo()
    np.testing.assert_array_equal(
        grow_patch(bool_coo, centres, 5, np.random.default_rng(1)),
        grow_patch(adjacency, centres, 5, np.random.default_rng(1)),
    )


def test_pink_noise_has_a_1_over_f_spectrum():
    noise = pink_noise(4096, 8, np.random.default_rng(0))
    spectrum = (np.abs(np.fft.rfft(noise, axis=0)) ** 2).mean(axis=1)[1:]
    freqs = np.arange(1, len(spectrum) + 1)
    slope = np.polyfit(np.log(freqs), np.log(spectrum), 1)[0]
    assert -1.2 < slope < -0.8


def test_bad_parameters(head64, spike_library):
    with pytest.raises(BrainForgeError, match="low <= high"):
        SynthesisConfig(sensor_snr_db=(20.0, 5.0))
    with pytest.raises(BrainForgeError, match="range of numbers"):
        SynthesisConfig(sensor_snr_db=(float("nan"), 5.0))  # NaN compares false with everything
    for delay_ms, message in ((-5.0, "finite delay >= 0 ms"), (1000.0, "out of the 1000-ms segment")):
        with pytest.raises(BrainForgeError, match=message):
            SampleGenerator(head64, spike_library, SynthesisConfig(max_onset_delay_ms=delay_ms))
    with pytest.raises(BrainForgeError, match="only 1000 regions to centre them on"):  # deep_share 0: cortical
        SampleGenerator(head64, spike_library, SynthesisConfig(n_sources=(1, 2000)))
    with pytest.raises(BrainForgeError, match="another connectome"):
        SampleGenerator(head64, spike_library, region_node=np.arange(head64.n_regions))
    with pytest.raises(BrainForgeError, match="realistic"):
        SampleGenerator(head64, spike_library, SynthesisConfig(noise_types=("realistic",)))
    with pytest.raises(BrainForgeError, match="noise_types"):
        SynthesisConfig(noise_types=("brown",))


def test_stored_test_set_equals_the_stream(generator, tmp_path):
    from brainforge.synthesis.store import read_test_set, write_test_set

    n = 67  # a whole 64-sample EEG chunk and part of the next
    path = write_test_set(generator, n, tmp_path / "test.zarr", seed=9, progress=False)
    stored = read_test_set(path)
    streamed = list(SyntheticEEGDataset(generator, n_samples=n, seed=9))
    assert len(stored) == n and stored.metadata["ch_names"] == generator.head.ch_names
    np.testing.assert_array_equal(stored.eeg[:], np.stack([item["eeg"].numpy() for item in streamed]))
    for i, item in list(enumerate(streamed))[:: n // 6]:
        np.testing.assert_array_equal(stored.eeg[i], item["eeg"].numpy())
        np.testing.assert_array_equal(stored.sources[i], item["sources"].numpy())
        np.testing.assert_array_equal(stored.active[i], item["active"].numpy())
        drawn = generator.sample(sample_seed(9, i))
        assert [p.tolist() for p in stored.patches(i)] == [sorted(np.asarray(p).tolist()) for p in drawn.patches]
    assert stored.sfreq == generator.sfreq == 500.0
    with pytest.raises(BrainForgeError, match="exists"):
        write_test_set(generator, 2, path, progress=False)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left beside it


def test_an_interrupted_test_set_resumes_after_its_last_whole_block(generator, tmp_path):
    from brainforge.synthesis.store import PARTIAL_MARK, read_test_set, write_test_set

    class Interrupted:  # the generator, stopped after 100 samples
        def __init__(self):
            self.calls = 0

        def __getattr__(self, name):
            return getattr(generator, name)

        def sample(self, seed):
            self.calls += 1
            if self.calls > 100:
                raise KeyboardInterrupt
            return generator.sample(seed)

    out = tmp_path / "set.zarr"
    with pytest.raises(KeyboardInterrupt):
        write_test_set(Interrupted(), 150, out, seed=4, progress=False)
    partial = tmp_path / f".set.zarr{PARTIAL_MARK}"
    assert not out.exists() and partial.is_dir()
    import zarr

    assert dict(zarr.open_group(str(partial), mode="r").attrs)["brainforge_partial"]["written"] == 64
    write_test_set(generator, 150, out, seed=4, progress=False)  # the same call again: blocks 2 and 3
    whole = write_test_set(generator, 150, tmp_path / "whole.zarr", seed=4, progress=False)
    resumed, reference = read_test_set(out), read_test_set(whole)
    for name in ("eeg", "sources"):
        np.testing.assert_array_equal(getattr(resumed, name)[:], getattr(reference, name)[:])
    for name in ("active", "patch_regions", "centres", "onsets", "source_snr_db", "sensor_snr_db"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(reference, name))
    assert resumed.metadata == reference.metadata and not partial.exists()
    # A leftover begun with other settings is started afresh, not continued.
    with pytest.raises(KeyboardInterrupt):
        write_test_set(Interrupted(), 150, tmp_path / "other.zarr", seed=4, progress=False)
    write_test_set(generator, 150, tmp_path / "other.zarr", seed=5, progress=False)
    other = read_test_set(tmp_path / "other.zarr")
    np.testing.assert_array_equal(other.eeg[0], generator.sample(sample_seed(5, 0)).eeg)


def test_cli_synth(head64, spike_library, tmp_path, cli_in_process):
    import json
    from types import SimpleNamespace

    def run(*args):
        code, stdout, stderr = cli_in_process("synth", *args)
        return SimpleNamespace(returncode=code, stdout=stdout, stderr=stderr)

    out = tmp_path / "cli.zarr"
    result = run("--n", "4", "--sources", "2", "--snr", "10", "--out", str(out))
    assert result.returncode == 0, result.stderr
    from brainforge.synthesis.store import read_test_set

    stored = read_test_set(out)
    assert stored.eeg.shape == (4, 500, 64) and (stored.centres[:, :2] >= 0).all()
    assert json.loads(json.dumps(stored.metadata))["synthesis"]["sensor_snr_db"] == [10.0, 10.0]
    # --noise-bank-seed draws another noise bank: the same sources, other sensor noise.
    other = tmp_path / "other_noise.zarr"
    result = run("--n", "4", "--sources", "2", "--snr", "10", "--noise-bank-seed", "1", "--out", str(other))
    assert result.returncode == 0, result.stderr
    other_set = read_test_set(other)
    assert other_set.metadata["synthesis"]["noise_bank_seed"] == 1
    np.testing.assert_array_equal(other_set.sources[:], stored.sources[:])
    assert not np.allclose(other_set.eeg[:], stored.eeg[:])
    for args, message in [
        (["--snr", "20,5", "--out", str(tmp_path / "a.zarr")], "give the range low end first"),
        (["--forward-mismatch", "fem", "--out", str(tmp_path / "b.zarr")], "forward-mismatch"),
        (["--sources", "1,5000", "--out", str(tmp_path / "c.zarr")], "regions"),
        (["--spikes", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "d.zarr")], "not found"),
        (["--out", str(out)], "exists"),
        (["--head", "subject.fif", "--out", str(tmp_path / "e.zarr")], "or a head model .npz from `brainforge head"),
        (
            ["--noise", "realistic", "--realistic-noise", str(tmp_path), "--out", str(tmp_path / "f.zarr")],
            "Realistic-noise file missing",
        ),
    ]:
        result = run("--n", "2", *args)
        lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


def test_realistic_noise_from_the_deepsif_folder(deepsif_dir, spike_library, tmp_path):
    from brainforge.synthesis import load_deepsif_noise

    noise = load_deepsif_noise(deepsif_dir)
    assert noise.segments.shape == (4, 500, 75)
    assert load_deepsif_noise(deepsif_dir / "realistic_noise.mat").ch_names == noise.ch_names  # the file itself
    import shutil

    shutil.copy(deepsif_dir / "electrode_75.mat", tmp_path / "electrode_75.mat")
    (tmp_path / "realistic_noise.mat").write_text("<html>a page saved instead of the file</html>")
    with pytest.raises(BrainForgeError, match=r"Cannot read DeepSIF's realistic noise from \S*realistic_noise.mat \("):
        load_deepsif_noise(tmp_path)
    with pytest.raises(BrainForgeError, match=r"takes the folder that holds DeepSIF's realistic_noise.mat"):
        load_deepsif_noise(tmp_path / "elsewhere")
    head = make_head_model("1010-32")
    gen = SampleGenerator(head, spike_library, SynthesisConfig(noise_types=("realistic",)), realistic_noise=noise)
    sample = gen.sample(0, keep_parts=True)
    assert sample.noise_type == "realistic"
    assert abs(snr_db(sample.parts["clean"], sample.parts["noise"]) - sample.sensor_snr_db) < 1e-9


def test_background_only_samples(head64, spike_library):
    config = SynthesisConfig(n_sources=(1, 2), background_share=0.5)
    gen = SampleGenerator(head64, spike_library, config)
    samples = [gen.sample(seed) for seed in range(40)]
    background = [s for s in samples if len(s.centres) == 0]
    spiking = [s for s in samples if len(s.centres)]
    assert 8 <= len(background) <= 32 and spiking  # about half
    for s in background:
        assert s.source_waves.shape == (500, 0) and s.source_weights.shape == (0, 0)
        assert not s.sources.any() and not s.active.any() and s.peak_time == 0
        # Still a normalized EEG segment: background activity plus sensor noise.
        assert np.abs(s.eeg).max() == pytest.approx(1.0) and np.isfinite(s.eeg).all()
        np.testing.assert_allclose(s.eeg.mean(axis=1), 0, atol=1e-6)
    for s in spiking:
        assert np.abs(s.sources).max() == pytest.approx(1.0)
    # A share of 0 draws nothing extra (one integer, as before), so existing seeds keep their samples.
    plain = SampleGenerator(head64, spike_library, SynthesisConfig(n_sources=(1, 2)))
    drawn, reference = np.random.default_rng(5), np.random.default_rng(5)
    assert plain._n_sources(drawn) == int(reference.integers(1, 3))
    assert drawn.bit_generator.state == reference.bit_generator.state
    # Mixed batches pad and densify: background rows are all zero.
    items = list(SyntheticEEGDataset(gen, n_samples=8, seed=1, compact_targets=True))
    batch = densify_sources(collate_compact(items))
    for row, item in enumerate(items):
        assert bool(batch["sources"][row].any()) == (int(item["n_sources"]) > 0)
    with pytest.raises(BrainForgeError, match="background_share"):
        SynthesisConfig(background_share=1.0)


def test_more_sources_than_their_pool_holds_stop_instead_of_drawing_forever(head64, spike_library):
    n_deep = int(head64.region_is_deep.sum())
    for share, pool in ((1.0, n_deep), (0.0, head64.n_regions - n_deep)):
        config = SynthesisConfig(n_sources=(1, pool + 1), deep_share=share)
        with pytest.raises(BrainForgeError, match=f"only {pool} regions to centre them on"):
            SampleGenerator(head64, spike_library, config)
    assert len(SampleGenerator(head64, spike_library, SynthesisConfig(n_sources=(n_deep, n_deep), deep_share=1.0))
               .sample(0).centres) == n_deep  # fmt: skip
    # Nearly all deep, more sources than deep regions: once the deep pool is taken, the rest are
    # cortical (each further draw was rejected with probability 1 - 1e-12 before).
    config = SynthesisConfig(n_sources=(n_deep + 3, n_deep + 3), deep_share=1.0 - 1e-12)
    centres = SampleGenerator(head64, spike_library, config).sample(0).centres
    assert len(set(centres)) == n_deep + 3 and head64.region_is_deep[centres].sum() == n_deep
