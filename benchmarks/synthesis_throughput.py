"""On-the-fly synthesis throughput, and the disk a materialised training set would need.

Run: ``.venv/bin/python benchmarks/synthesis_throughput.py [--samples 400] [--workers 2]``

Draws samples (64 channels x 500 samples x 1014 regions, 1-3 sources,
background included) from the default spike library, first in this process
and then through a DataLoader of ``--workers`` processes (which also moves
each dense 500 x 1014 target between processes), and prints samples per
second. Then prints the
storage of a materialised set the size of DeepSIF's 190,848-sample training
set (float32 EEG and sources) beside the zero bytes of the on-the-fly mode.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from torch.utils.data import DataLoader

    from brainforge.anatomy import make_head_model
    from brainforge.nmm import default_spike_library, read_spike_library
    from brainforge.synthesis import SampleGenerator, SynthesisConfig, SyntheticEEGDataset

    head = make_head_model("1010-64")
    library = read_spike_library(default_spike_library())
    generator = SampleGenerator(head, library, SynthesisConfig(n_sources=(1, 3)))
    generator.sample(0)
    start = time.perf_counter()
    for seed in range(args.samples // 2):
        generator.sample(seed)
    in_process = (args.samples // 2) / (time.perf_counter() - start)
    dataset = SyntheticEEGDataset(generator, n_samples=args.samples, seed=0)
    loader = DataLoader(dataset, batch_size=32, num_workers=args.workers)
    start = time.perf_counter()
    n = sum(len(batch["eeg"]) for batch in loader)
    per_second = n / (time.perf_counter() - start)
    n_times, n_channels, n_regions = 500, head.n_channels, head.n_regions
    published = 190_848
    bytes_materialised = published * n_times * (75 + 994) * 4
    bytes_ours = published * n_times * (n_channels + n_regions) * 4
    print(f"{'figure':58} {'value':>14}")
    print(f"{'samples/s, generator alone, one process':58} {in_process:14.0f}")
    print(f"{f'samples/s, DataLoader ({args.workers} workers, batches of 32)':58} {per_second:14.0f}")
    print(f"{'materialised DeepSIF training set (75 ch, 994 regions), GB':58} {bytes_materialised / 1e9:14.0f}")
    print(f"{'materialised at our size (64 ch, 1014 regions), GB':58} {bytes_ours / 1e9:14.0f}")
    print(f"{'on-the-fly training set, GB':58} {0:14d}")
    print(json.dumps({"samples_per_second": round(per_second, 1), "workers": args.workers,
                      "generator_samples_per_second_one_process": round(in_process, 1),
                      "materialised_deepsif_gb": round(bytes_materialised / 1e9, 1),
                      "materialised_ours_gb": round(bytes_ours / 1e9, 1), "on_the_fly_gb": 0}))  # fmt: skip


if __name__ == "__main__":
    main()
