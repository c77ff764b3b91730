"""Lightning data module: fresh on-the-fly samples every epoch, a fixed validation set."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from .._errors import BrainForgeError
from ..synthesis import SampleGenerator, SyntheticEEGDataset
from ..synthesis.dataset import SyntheticBatchLoader, collate_samples, sample_seed
from .config import TrainingConfig
from .metrics import centre_mask

#: Index that derives the validation seed from the run seed (training epochs use 0, 1, 2, ...).
_VALIDATION_INDEX = 2**32 - 1


def validation_seed(seed: int) -> int:
    """Seed of the fixed validation set of a run seeded with ``seed``."""
    return sample_seed(seed, _VALIDATION_INDEX)


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the training samples of ``epoch``."""
    return sample_seed(seed, epoch)


def refuse_empty_validation_shares(val_samples: int, world_size: int) -> None:
    """Stop with a one-line error when a DDP rank would get no validation sample.

    Every rank must validate at least one batch: DDP copies rank 0's buffers
    (BatchNorm's statistics) at a validation's first forward, a collective that
    every rank joins, and the metrics are summed over the ranks at its end.
    """
    if val_samples < world_size:
        raise BrainForgeError(
            f"--val-samples {val_samples} is fewer than the {world_size} training processes; "
            f"give each at least one (--val-samples {world_size} or more)."
        )


def collate_validation(items: list[dict]) -> dict:
    """Batch validation items as :func:`collate_samples` does, plus their patch centres as a (B, R) bool ``centre``."""
    batch = collate_samples(items)
    batch["centre"] = centre_mask(batch["centres"], batch["active"].shape[1])
    return batch


class SyntheticDataModule(pl.LightningDataModule):
    """Training data drawn on the fly (new samples each epoch, deterministic given the seed).

    Parameters
    ----------
    generator : SampleGenerator
        Head model, spike library and synthesis parameters.
    config : TrainingConfig
        Batch size, samples per epoch, validation size, workers, seed.
    """

    def __init__(self, generator: SampleGenerator, config: TrainingConfig):
        super().__init__()
        self.generator = generator
        self.config = config
        self._validation: list[dict] | None = None

    def setup(self, stage: str | None = None) -> None:
        """Draw the validation set once (kept in memory with compact targets).

        The whole set on every rank of a distributed run, for :meth:`val_dataloader` to split among them
        (iterating the dataset there would give each rank a share, which the sampler would split again).
        """
        if self._validation is None:
            dataset = SyntheticEEGDataset(
                self.generator, self.config.val_samples, validation_seed(self.config.seed), compact_targets=True
            )
            self._validation = [dataset.item(index) for index in range(self.config.val_samples)]

    def train_dataloader(self) -> SyntheticBatchLoader:
        """Return this epoch's samples; Lightning reloads it every epoch.

        Workers make whole batches (``SyntheticEEGDataset(batch_size=...)``)
        in shared memory that they reuse (``SyntheticEEGDataset.loader``).
        """
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        dataset = SyntheticEEGDataset(
            self.generator,
            self.config.samples_per_epoch,
            epoch_seed(self.config.seed, epoch),
            batch_size=self.config.batch_size,
        )
        return dataset.loader(num_workers=self.config.num_workers)

    def val_dataloader(self) -> DataLoader:
        """Return the fixed validation set; under DDP, this rank's share of it.

        The ranks split the set without repeats (Lightning's default sampler
        pads a set that does not divide by the rank count with repeats of its
        first samples, which then count twice in the metrics). Shares, and so
        the ranks' numbers of batches, may then differ: validation has no
        gradient synchronization, and
        :class:`~brainforge.training.module.SourceLocalizer` sums the ranks'
        metrics once at the end. Every rank still needs one sample or more
        (:func:`refuse_empty_validation_shares`): DDP
        copies rank 0's buffers at a validation's first forward, on every rank.
        """
        self.setup()
        return DataLoader(
            self._validation,
            batch_size=self.config.batch_size,
            sampler=self._validation_sampler(),
            collate_fn=collate_validation,
        )

    def _validation_sampler(self) -> UnrepeatedDistributedSampler | None:
        """Return this rank's unpadded share of the validation set under DDP, else None (the whole set, in order)."""
        world_size = 1 if self.trainer is None else self.trainer.world_size
        if world_size == 1:
            return None
        refuse_empty_validation_shares(len(self._validation), world_size)
        return UnrepeatedDistributedSampler(
            self._validation, num_replicas=world_size, rank=self.trainer.global_rank, shuffle=False
        )

    def validation_arrays(self) -> dict[str, np.ndarray]:
        """Return the validation set as dense arrays (for tests and reports), with the ``centre`` masks."""
        self.setup()
        batch = collate_validation(self._validation)
        return {key: value.numpy() for key, value in batch.items()}
