"""What a DataLoader worker started by a forkserver receives: the pickled training dataset, per epoch.

Under DDP the workers start from a forkserver (``worker_start_method``), so each
receives the dataset pickled at the start of every epoch instead of sharing
the parent's memory as a forked worker does. This rebuilds a training run's
generator from its ``run.json`` (head model, spike library, forward bank:
the bank takes about 12 minutes on two cores from an empty cache), prepares it
as training does, and times pickling and unpickling the epoch's dataset.

Run: ``python scripts/worker_copy_probe.py training_runs/default-v26``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

from brainforge._config import config_from_dict
from brainforge.cli import training_generator
from brainforge.synthesis import SynthesisConfig, SyntheticEEGDataset


def main() -> None:
    """Print the pickled size and the pickling and unpickling times of the run's per-epoch dataset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a training run folder (its run.json)")
    args = parser.parse_args()
    run = json.loads((args.run / "run.json").read_text())
    synthesis = config_from_dict(SynthesisConfig, run["data"]["synthesis"])
    start = time.perf_counter()
    generator = training_generator(run["cli"], synthesis)
    training = run["training"]
    dataset = SyntheticEEGDataset(generator, training["samples_per_epoch"], 0, batch_size=training["batch_size"])
    print(f"generator built and prepared in {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    payload = pickle.dumps(dataset, protocol=pickle.HIGHEST_PROTOCOL)
    pickled_s = time.perf_counter() - start
    start = time.perf_counter()
    pickle.loads(payload)
    print(
        f"per worker and epoch: {len(payload) / 1e6:.0f} MB pickled in {pickled_s:.2f} s, "
        f"unpickled in {time.perf_counter() - start:.2f} s"
    )


if __name__ == "__main__":
    main()
