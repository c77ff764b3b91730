"""On-the-fly synthesis throughput, and the disk a materialized training set would need.

Run: ``.venv/bin/python benchmarks/synthesis_throughput.py [--samples 6400] [--workers 2]``

Draws samples (64 channels x 500 samples x 1014 regions, 1-3 sources,
background included) from the default spike library:

1. with the generator alone, in this process, one BLAS thread (as in a
   worker); once more with fresh sensor noise per sample
   (``noise_bank_segments=0``) instead of the noise bank;
2. through the DataLoader path training uses (``brainforge.training``'s data
   module): ``SyntheticEEGDataset(batch_size=32).loader(num_workers)``:
   ``--workers`` processes write whole batches with factored targets into a
   few shared-memory buffers each, which they reuse once this process has
   copied the batch out; only the buffer's number crosses processes. The
   dense target is made on the device after the transfer, by
   ``densify_sources``;
3. the same batches with their dense targets made in this process, for a
   ``--crop``-sample window around each peak (what CPU-only training adds);
4. with the default forward bank on (``make_forward_bank``: every sample
   draws its skull conductivity and cap placement): the generator alone and
   the training DataLoader path, with what the bank costs to build (first
   run; later runs read it from the cache) and adds per sample;
5. earlier paths for comparison: per-sample items batched by
   ``collate_compact`` in the workers, and dense 500 x 1014 targets (2 MB per
   sample) batched by PyTorch's default collate.

Each DataLoader figure is given as samples per second of wall time and as
samples per CPU-second of all processes (this one and the workers), which
other load on the machine hardly changes; the load average is printed too.
Then prints the storage of a materialized set the size of DeepSIF's
190,848-sample training set (float32 EEG and sources) beside the zero bytes of
the on-the-fly mode. The last line is one JSON object; ``samples_per_second``
is figure 2.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable, Iterable


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (DataLoader workers), s."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _measure(batches: Callable[[], Iterable[int]]) -> tuple[float, float]:
    """Return (samples per wall second, samples per CPU-second) of iterating ``batches()`` (batch sizes)."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    n = sum(batches())
    return n / (time.perf_counter() - wall), n / (_cpu_seconds() - cpu)


def _crop_and_densify(batch: dict, length: int) -> dict:
    """Dense targets of a ``length``-sample window around each sample's peak (``SourceLocalizer._crop``)."""
    import torch

    from brainforge.synthesis.dataset import densify_sources

    n_times = batch["eeg"].shape[1]
    starts = (batch["peak_time"] - length // 2).clamp(0, n_times - length)
    window = starts[:, None] + torch.arange(length)
    rows = torch.arange(len(starts))[:, None]
    return densify_sources(
        {**batch, "eeg": batch["eeg"][rows, window], "source_waves": batch["source_waves"][rows, window]}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--crop", type=int, default=16, help="training window, samples (as `brainforge train --crop`)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from threadpoolctl import threadpool_limits
    from torch.utils.data import DataLoader

    from brainforge.anatomy import make_forward_bank, make_head_model
    from brainforge.nmm import default_spike_library, read_spike_library
    from brainforge.synthesis import SampleGenerator, SynthesisConfig, SyntheticEEGDataset
    from brainforge.synthesis.dataset import collate_compact

    head = make_head_model("1010-64")
    library = read_spike_library(default_spike_library())
    generator = SampleGenerator(head, library, SynthesisConfig(n_sources=(1, 3))).prepare()
    fresh_noise = SampleGenerator(head, library, SynthesisConfig(n_sources=(1, 3), noise_bank_segments=0)).prepare()
    bank_start = time.perf_counter()
    bank = make_forward_bank(head)
    bank_seconds = time.perf_counter() - bank_start
    banked = SampleGenerator(head, library, SynthesisConfig(n_sources=(1, 3)), forward_bank=bank).prepare()
    generator.sample(0)
    banked.sample(0)
    load_before = os.getloadavg()[0]

    n_alone = args.samples // 2

    def alone(gen: SampleGenerator) -> Callable[[], Iterable[int]]:
        def samples() -> Iterable[int]:
            with threadpool_limits(limits=1):
                for seed in range(n_alone):
                    gen.sample(seed)
                    yield 1

        return samples

    def loader(mode: str, densify: bool = False, gen: SampleGenerator = generator) -> Callable[[], Iterable[int]]:
        def batches() -> Iterable[int]:
            extra = {"prefetch_factor": 4} if args.workers else {}  # as the training data module
            if mode == "batches":
                dataset = SyntheticEEGDataset(gen, n_samples=args.samples, seed=0, batch_size=args.batch_size)
                stream = dataset.loader(num_workers=args.workers)
            else:
                compact = mode == "items"
                dataset = SyntheticEEGDataset(generator, n_samples=args.samples, seed=0, compact_targets=compact)
                if mode == "items":
                    extra["collate_fn"] = collate_compact
                stream = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, **extra)
            for batch in stream:
                if densify:  # as CPU training does: a window around each peak, then dense targets
                    batch = _crop_and_densify(batch, args.crop)
                yield len(batch["eeg"])

        return batches

    in_process = _measure(alone(generator))
    in_process_fresh = _measure(alone(fresh_noise))
    whole = _measure(loader("batches"))
    in_process_bank = _measure(alone(banked))
    whole_bank = _measure(loader("batches", gen=banked))
    densified = _measure(loader("batches", densify=True))
    items = _measure(loader("items"))
    dense = _measure(loader("dense"))
    load_after = os.getloadavg()[0]

    n_times, n_channels, n_regions = 500, head.n_channels, head.n_regions
    published = 190_848
    bytes_materialized = published * n_times * (75 + 994) * 4
    bytes_ours = published * n_times * (n_channels + n_regions) * 4
    w, b = args.workers, args.batch_size
    rows = [
        ("generator alone, one process, one BLAS thread", in_process),
        ("  the same with fresh sensor noise per sample (noise_bank_segments=0)", in_process_fresh),
        (f"DataLoader, training path: whole batches ({w} workers, batches of {b})", whole),
        (f"  + dense targets of {args.crop}-sample windows in this process (CPU training)", densified),
        ("generator alone with the forward bank, one process", in_process_bank),
        (f"DataLoader, training path with the forward bank ({w} workers)", whole_bank),
        ("DataLoader, per-sample items + collate_compact (earlier path)", items),
        ("DataLoader, dense targets, default collate (first path)", dense),
    ]
    print(f"{'samples/s':72} {'wall':>8} {'per CPU-s':>10}")
    for name, (per_wall, per_cpu) in rows:
        print(f"{name:72} {per_wall:8.0f} {per_cpu:10.0f}")
    added_us = 1e6 * (1 / in_process_bank[0] - 1 / in_process[0])
    print(f"{'forward bank: models / build (or cache read) time, s':72} {bank.n_placements:8d} {bank_seconds:10.1f}")
    print(f"{'forward bank: time it adds per sample (generator alone), us':72} {added_us:8.0f}")
    print(f"{'forward bank: memory of its dense leadfields, MB':72} {bank.scalp_leadfield.nbytes / 1e6:8.0f}")
    print(f"{'load average (1 min) before / after':72} {load_before:8.1f} {load_after:10.1f}")
    print(f"{'materialized DeepSIF training set (75 ch, 994 regions), GB':72} {bytes_materialized / 1e9:8.0f}")
    print(f"{'materialized at our size (64 ch, 1014 regions), GB':72} {bytes_ours / 1e9:8.0f}")
    print(f"{'on-the-fly training set, GB':72} {0:8d}")
    print(json.dumps({
        "samples_per_second": round(whole[0], 1), "samples_per_cpu_second": round(whole[1], 1),
        "path": "SyntheticEEGDataset(batch_size=32).loader(workers)", "workers": w, "batch_size": b,
        "samples": args.samples, "cpu_count": os.cpu_count(),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "generator_samples_per_second_one_process": round(in_process[0], 1),
        "forward_bank_samples_per_second": round(whole_bank[0], 1),
        "forward_bank_generator_samples_per_second_one_process": round(in_process_bank[0], 1),
        "forward_bank_added_us_per_sample": round(added_us, 1), "forward_bank_models": bank.n_placements,
        "forward_bank_build_or_read_seconds": round(bank_seconds, 1),
        "generator_samples_per_cpu_second_one_process": round(in_process[1], 1),
        "generator_fresh_noise_samples_per_second_one_process": round(in_process_fresh[0], 1),
        "densified_in_main_samples_per_second": round(densified[0], 1),
        "per_sample_items_samples_per_second": round(items[0], 1),
        "dense_targets_samples_per_second": round(dense[0], 1),
        "dense_targets_samples_per_cpu_second": round(dense[1], 1),
        "materialized_deepsif_gb": round(bytes_materialized / 1e9, 1),
        "materialized_ours_gb": round(bytes_ours / 1e9, 1), "on_the_fly_gb": 0,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
