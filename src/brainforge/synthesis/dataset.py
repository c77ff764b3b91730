"""On-the-fly synthetic EEG as a PyTorch IterableDataset."""

from __future__ import annotations

import math
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
        ``source_values``) instead of a dense (n_times, n_regions) array (2 MB
        per sample). Batch them with :func:`collate_compact` in the DataLoader
        and :func:`densify_sources` after the move to the device, as training
        does, so the dense target never crosses processes; or with
        :func:`collate_samples` for a dense batch.

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


def _batch_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Return an uninitialised batch tensor, made in shared memory inside a DataLoader worker.

    PyTorch's default collate does the same: a batch sent from a worker must
    live in shared memory, and allocating it there at once spares a second copy
    (and the page faults of fresh memory, which dominate the transfer cost).
    """
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    template = torch.empty(0, dtype=dtype)
    storage = template._typed_storage()._new_shared(math.prod(shape), device=template.device)
    return template.new(storage).resize_(*shape)


def collate_compact(items: list[dict]) -> dict:
    """Batch items of one montage, keeping the targets compact (the DataLoader path of training).

    Only the patch columns travel, side by side without padding: a dense
    (T, R) float32 target is 2 MB per sample (65 MB per batch of 32), which
    DataLoader workers would otherwise allocate, fill and copy into shared
    memory. :func:`densify_sources` makes the dense target where it is needed
    (for training, on the device).

    Parameters
    ----------
    items : list of dict
        Items of :class:`SyntheticEEGDataset` with ``compact_targets=True``.

    Returns
    -------
    batch : dict
        ``eeg`` (B, T, C); the targets of all items side by side:
        ``source_values`` (T, N) float32, ``source_regions`` (N,) and
        ``source_item`` (N,) int64 (the region and batch row of each column);
        ``active`` (B, R), ``ch_pos`` (B, C, 3), ``n_sources``, ``seed`` and
        ``index`` (B,).
    """
    n_channels = {item["eeg"].shape[-1] for item in items}
    if len(n_channels) > 1:
        raise ValueError("collate_compact batches one montage; items have different channel counts.")
    if "source_values" not in items[0]:
        raise ValueError("collate_compact needs items with compact targets (compact_targets=True).")
    widths = [item["source_regions"].shape[0] for item in items]
    n_times, n_columns = items[0]["source_values"].shape[0], sum(widths)
    batch = {}
    for key in ("eeg", "active", "ch_pos"):
        first = items[0][key]
        out = _batch_tensor((len(items), *first.shape), first.dtype)
        batch[key] = torch.stack([item[key] for item in items], out=out)
    values = _batch_tensor((n_times, n_columns), torch.float32)
    torch.cat([item["source_values"] for item in items], dim=1, out=values)
    regions = _batch_tensor((n_columns,), torch.int64)
    torch.cat([item["source_regions"] for item in items], out=regions)
    rows = torch.from_numpy(np.repeat(np.arange(len(items), dtype=np.int64), widths))
    batch.update(source_values=values, source_regions=regions, source_item=rows)
    for key in ("n_sources", "seed", "index"):
        batch[key] = torch.as_tensor([item[key] for item in items])
    return batch


def densify_sources(batch: dict) -> dict:
    """Replace a compact batch's targets by the dense ``sources`` (B, T, R).

    Works on the batch's device (call it after moving the batch to the GPU);
    a batch that already holds ``sources`` is returned unchanged.

    Parameters
    ----------
    batch : dict
        A batch of :func:`collate_compact`.

    Returns
    -------
    batch : dict
        The same items, with ``sources`` in place of ``source_values``,
        ``source_regions`` and ``source_item``; equal to the batch
        :func:`collate_samples` makes from the same items.
    """
    if "source_values" not in batch:
        return batch
    batch = dict(batch)
    values, regions, rows = batch.pop("source_values"), batch.pop("source_regions"), batch.pop("source_item")
    n_batch, n_regions = batch["active"].shape
    sources = torch.zeros(n_batch, values.shape[0], n_regions, dtype=values.dtype, device=values.device)
    sources[rows, :, regions] = values.T  # (row, region) pairs are distinct: a plain assignment
    batch["sources"] = sources
    return batch


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
    if "sources" not in items[0]:
        return densify_sources(collate_compact(items))
    return {
        "eeg": torch.stack([item["eeg"] for item in items]),
        "sources": torch.stack([item["sources"] for item in items]),
        "active": torch.stack([item["active"] for item in items]),
        "ch_pos": torch.stack([item["ch_pos"] for item in items]),
        **{key: torch.as_tensor([item[key] for item in items]) for key in ("n_sources", "seed", "index")},
    }
