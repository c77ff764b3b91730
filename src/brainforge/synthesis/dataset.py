"""On-the-fly synthetic EEG as a PyTorch IterableDataset."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .generator import SampleGenerator


def sample_seed(seed: int, index: int) -> int:
    """Seed of sample ``index`` of a dataset seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class SyntheticEEGDataset(IterableDataset):
    """Endless or finite stream of labelled samples, deterministic for a seed.

    Sample ``i`` is always drawn from ``sample_seed(seed, i)``, whichever
    DataLoader worker draws it; workers split the indices (worker ``w`` of
    ``n`` takes ``i = w, w + n, ...``), so no sample is duplicated.

    Parameters
    ----------
    generator : SampleGenerator
        Head model, spike library and sampling parameters.
    n_samples : int | None
        Samples per pass; None streams forever.
    seed : int
        Dataset seed.
    compact_targets : bool
        Yield the targets as their non-zero columns (``source_regions``,
        ``source_values``) instead of a dense (n_times, n_regions) array; batch
        them with :func:`collate_samples`. A dense target is 2 MB per sample,
        which would otherwise cross from the worker processes.

    Yields
    ------
    item : dict
        ``eeg`` (n_times, n_channels) and ``sources`` (n_times, n_regions)
        float32 tensors, ``active`` (n_regions,) bool, ``ch_pos``
        (n_channels, 3) mm, ``n_sources``, ``seed`` and ``index``. With a
        fixed montage items collate into batches with PyTorch's default
        collate.

    Notes
    -----
    Under ``torch.distributed`` (multi-GPU training) every process also takes
    its own share of the indices, so no two ranks see the same sample.
    """

    def __init__(
        self, generator: SampleGenerator, n_samples: int | None = None, seed: int = 0, compact_targets: bool = False
    ):
        super().__init__()
        self.generator = generator
        self.n_samples = n_samples
        self.seed = seed
        self.compact_targets = compact_targets

    def __len__(self) -> int:
        if self.n_samples is None:
            raise TypeError("An endless SyntheticEEGDataset has no length.")
        return self.n_samples

    def __iter__(self) -> Iterator[dict]:
        rank, world = _distributed_rank()
        info = get_worker_info()
        if info is None:
            yield from self._items(rank, world)
            return
        # Each DataLoader worker is one process: one BLAS thread each, or
        # the workers' thread pools fight over the cores (2.3x slower on 2 cores).
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(1)
        with threadpool_limits(limits=1):
            yield from self._items(rank * info.num_workers + info.id, world * info.num_workers)

    def _items(self, worker: int, n_workers: int) -> Iterator[dict]:
        index = worker
        while self.n_samples is None or index < self.n_samples:
            seed = sample_seed(self.seed, index)
            sample = self.generator.sample(seed)
            if self.compact_targets:
                targets = {
                    "source_regions": torch.from_numpy(sample.source_regions),
                    "source_values": torch.from_numpy(sample.source_values),
                }
            else:
                targets = {"sources": torch.from_numpy(sample.sources)}
            yield {
                "eeg": torch.from_numpy(sample.eeg),
                **targets,
                "active": torch.from_numpy(sample.active),
                "ch_pos": torch.from_numpy(sample.ch_pos.astype(np.float32)),
                "n_sources": len(sample.centres),
                "seed": seed,
                "index": index,
            }
            index += n_workers


def _distributed_rank() -> tuple[int, int]:
    """Return this process's rank and the world size (0, 1 outside torch.distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def collate_samples(items: list[dict]) -> dict:
    """Batch items of one montage; compact targets become a dense (B, T, R) ``sources`` tensor.

    Parameters
    ----------
    items : list of dict
        Items of :class:`SyntheticEEGDataset` (dense or compact targets).

    Returns
    -------
    batch : dict
        ``eeg`` (B, T, C), ``sources`` (B, T, R), ``active`` (B, R), ``ch_pos``
        (B, C, 3), ``n_sources``, ``seed`` and ``index`` (B,).
    """
    n_channels = {item["eeg"].shape[-1] for item in items}
    if len(n_channels) > 1:
        raise ValueError("collate_samples batches one montage; items have different channel counts.")
    active = torch.stack([item["active"] for item in items])
    if "sources" in items[0]:
        sources = torch.stack([item["sources"] for item in items])
    else:
        n_times = items[0]["source_values"].shape[0]
        sources = torch.zeros(len(items), n_times, active.shape[1])
        for row, item in zip(sources, items, strict=True):
            row[:, item["source_regions"]] = item["source_values"]
    return {
        "eeg": torch.stack([item["eeg"] for item in items]),
        "sources": sources,
        "active": active,
        "ch_pos": torch.stack([item["ch_pos"] for item in items]),
        **{key: torch.as_tensor([item[key] for item in items]) for key in ("n_sources", "seed", "index")},
    }
