"""Train a tiny CNN-Transformer with DDP on two CPU processes (run as a script by test_training.py).

Lightning's DDP launcher starts rank 1 by running this script again; each rank
writes the sample indices its training batches held, so the test can check that
the ranks split every epoch without overlap; without a budget each rank also
validates the exported model on the whole set by itself (``validated_alone``), for
the test to compare with the metrics the ranks summed. With a second argument, a budget
(``cpu:S``, S s of CPU time as ``--max-cpu-time``; ``wall:S``, S s of wall time as
``--max-time``), the run is 100 longer epochs (about 900 CPU-s on this machine's two cores) that the
budget cuts, however fast the machine, and each rank
also writes where it stopped and the CPU time it counted. ``epochs:N`` trains N
epochs; ``resume:N`` resumes the run in the folder up to N epochs, as ``--resume``.

One sample in ten has no source (``background_share=0.1``). With seed 28 the
validation set's only such sample is its sixth, which rank 1 validates: the
ranks' validation batches differ in what they hold, as in real runs (this once
hung the run: rank 1 logged one metric more, and each is a collective). The set's
65 samples give rank 0 two batches (32 and 1) and rank 1 one (32): the ranks
validate different numbers of batches, as an odd set's unpadded shares may.
"""

import json
import os
import sys
import warnings

from brainforge.anatomy import make_head_model
from brainforge.nmm import default_spike_library, read_spike_library
from brainforge.synthesis import SampleGenerator, SynthesisConfig
from brainforge.training import TrainingConfig, train
from brainforge.training import data as data_module
from brainforge.training.module import SourceLocalizer

SEEN: list[list[int]] = []
SEEN_EPOCHS: list[int] = []  # the epoch index of each list in SEEN
VALIDATED: list[list[int]] = []
_train_dataloader = data_module.SyntheticDataModule.train_dataloader
_validation_step = SourceLocalizer.validation_step


def _recording_validation_step(self, batch, batch_index):
    """The validation step, recording each validation's [sample index, has a source] pairs (one list per epoch)."""
    if batch_index == 0:
        VALIDATED.append([])
    VALIDATED[-1].extend(
        [int(i), bool(active.any())] for i, active in zip(batch["index"], batch["active"], strict=True)
    )
    return _validation_step(self, batch, batch_index)


def _recording_train_dataloader(self):
    loader = _train_dataloader(self)
    epoch: list[int] = []
    SEEN.append(epoch)
    SEEN_EPOCHS.append(self.trainer.current_epoch)

    class Recorder:
        def __iter__(self):
            for batch in loader:
                epoch.extend(int(i) for i in batch["index"])
                yield batch

        def __len__(self):
            return len(loader)

    return Recorder()


def _validate_alone(model, generator, config, head) -> dict[str, float]:
    """The exported model's validation metrics over the whole set, computed in this process alone."""
    import torch
    from torch.utils.data import DataLoader

    from brainforge.training.data import collate_validation

    module = SourceLocalizer(model, config, head.region_distance_mm, head.region_leadfield).eval()
    logged: dict[str, float] = {}
    module.log = lambda name, value, **kwargs: logged.update({name: float(value)})
    data = data_module.SyntheticDataModule(generator, config)
    data.setup()
    module.on_validation_epoch_start()
    with torch.inference_mode():
        loader = DataLoader(data._validation, batch_size=config.batch_size, collate_fn=collate_validation)
        for index, batch in enumerate(loader):
            _validation_step(module, batch, index)
    module.on_validation_epoch_end()
    return logged


#: Epochs of a budgeted run: so many that no machine finishes them within the tests' budgets.
BUDGETED_EPOCHS = 100


if __name__ == "__main__":
    # Arguments: the run folder, then optionally a budget, cpu:S or wall:S (longer epochs, cut by the budget), or
    # epochs:N (N epochs) or resume:N (resume to N epochs).
    warnings.filterwarnings("ignore")
    data_module.SyntheticDataModule.train_dataloader = _recording_train_dataloader
    SourceLocalizer.validation_step = _recording_validation_step
    out = sys.argv[1]
    kind, _, seconds = sys.argv[2].partition(":") if len(sys.argv) > 2 else ("", "", "")
    cpu_budget_s = float(seconds) if kind == "cpu" else None
    max_time = f"00:00:00:{int(seconds):02d}" if kind == "wall" else None
    budgeted = kind in ("cpu", "wall")
    epochs = int(seconds) if kind in ("epochs", "resume") else (BUDGETED_EPOCHS if budgeted else 2)
    head = make_head_model("1010-64", n_regions=100)
    generator = SampleGenerator(
        head, read_spike_library(default_spike_library()), SynthesisConfig(n_sources=(1, 1), background_share=0.1)
    )
    config = TrainingConfig(
        samples_per_epoch=64 * 32 if budgeted else 288, val_samples=65, batch_size=32,
        max_epochs=epochs, crop_samples=16, num_workers=1, seed=28,
    )  # fmt: skip
    params = {"grid_size": 16, "conv_channels": (8,), "d_model": 32, "n_heads": 2, "n_layers": 1}
    result = train("cnn_transformer", generator, out, config, accelerator="cpu", devices=2, progress=False,
                   model_params=params, max_cpu_time_s=cpu_budget_s, max_time=max_time,
                   resume=kind == "resume")  # fmt: skip
    rank = int(os.environ.get("LOCAL_RANK", 0))
    alone = None if budgeted else _validate_alone(result.model, generator, config, head)
    with open(os.path.join(out, f"seen_rank{rank}.json"), "w") as f:
        json.dump({"epochs": result.epochs, "seen": SEEN, "seen_epochs": SEEN_EPOCHS, "validated": VALIDATED,
                   "best_metrics": result.best_metrics, "global_step": result.global_step,
                   "stopped_by": result.stopped_by, "cpu_seconds": result.cpu_seconds,
                   "validated_alone": alone}, f)  # fmt: skip
