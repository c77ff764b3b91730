"""On-the-fly synthetic EEG as a PyTorch IterableDataset."""

from __future__ import annotations

import copy
import itertools
import math
import os
import threading
import time
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .._errors import BrainForgeError
from .generator import SampleGenerator
from .sample import source_activity

#: Shared-memory batch buffers of each DataLoader worker, reused once the main process releases them.
_SLOTS_PER_WORKER = 8

#: Workers (per process) that get reusable buffers; more draw fresh shared memory for every batch.
_MAX_SLOTTED_WORKERS = 64

#: Integers an item carries and a batch holds as one int64 tensor each.
_PER_ITEM_SCALARS = ("n_sources", "peak_time", "seed", "index")


def sample_seed(seed: int, index: int) -> int:
    """Seed of sample ``index`` of a dataset seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class SyntheticEEGDataset(IterableDataset):
    """Endless or finite stream of labelled samples, deterministic for a seed.

    Sample ``i`` is always drawn from ``sample_seed(seed, i)``, whichever
    DataLoader worker draws it; workers split the indices (worker ``w`` of
    ``n`` takes ``i = w, w + n, ...``, or whole batches ``w, w + n, ...`` with
    ``batch_size``), so no sample is duplicated.

    Parameters
    ----------
    generator : SampleGenerator
        Head model, spike library and sampling parameters.
    n_samples : int | None
        Samples per pass; None streams forever.
    seed : int
        Dataset seed.
    compact_targets : bool
        Yield the targets in factored form instead of a dense (n_times,
        n_regions) array (2 MB per sample): ``source_regions`` (the patch
        regions), ``source_waves`` (n_times, n_sources) and
        ``source_weights`` (n_sources, n_regions of the patches), whose
        product is the activity of those regions (6 kB instead of ~200 kB per
        sample for the activity of the patch columns alone). Batch them with
        :func:`collate_compact` and make the dense target with
        :func:`densify_sources` after the move to the device, as training
        does, so it never crosses processes; or with :func:`collate_samples`
        for a dense batch.
    batch_size : int | None
        Yield whole batches of this many consecutive samples, as
        :func:`collate_compact` makes them (use ``DataLoader(dataset,
        batch_size=None)``): each worker writes the EEG of its samples straight
        into the batch's shared memory, sparing the per-sample items and the
        copy of collating them. Needs a fixed montage and implies
        ``compact_targets``. Iterate it with :meth:`loader`, which also lets
        the workers reuse their shared memory.

    Yields
    ------
    item : dict
        ``eeg`` (n_times, n_channels) and ``sources`` (n_times, n_regions)
        float32 tensors (or the compact targets), ``active`` (n_regions,)
        bool, ``ch_pos_mm`` (n_channels, 3) mm, ``n_sources``, ``centres``
        (the patch-centre regions, -1 padded to the most patches), ``peak_time``
        (the time sample of the largest |target|), ``seed`` and
        ``index``. With a fixed montage items collate into batches with
        PyTorch's default collate. With ``batch_size``, batches instead.

    Notes
    -----
    Under ``torch.distributed`` (multi-GPU training) every process also takes
    its own share of the indices, so no two ranks see the same sample.
    """

    def __init__(
        self,
        generator: SampleGenerator,
        n_samples: int | None = None,
        seed: int = 0,
        compact_targets: bool = False,
        batch_size: int | None = None,
    ):
        super().__init__()
        if batch_size is not None:
            if batch_size < 1:
                raise BrainForgeError(f"batch_size must be 1 or more, got {batch_size}.")
            if generator.config.n_channels is not None:
                raise BrainForgeError(
                    "Whole batches need one montage; use n_channels=None (pick montage subsets per batch instead)."
                )
            compact_targets = True
            # Project the background clips and draw the noise banks here, once, so that
            # DataLoader workers forked from this process share them instead of each
            # making its own (a forkserver's workers, in distributed runs, get a copy).
            generator.prepare()
        self.generator = generator
        self.n_samples = n_samples
        self.seed = seed
        self.compact_targets = compact_targets
        self.batch_size = batch_size
        self._rank_world: tuple[int, int] | None = None
        self._owner_pid: int | None = None  # the process that last pickled it, for a worker (see __getstate__)
        self._use_slots(False)

    def _use_slots(self, reuse_memory: bool) -> None:
        """Set up (or not) the reusable worker memory of :meth:`loader` and :meth:`claim`.

        With it: which slots the main process still reads (1) or has released
        (0), in shared memory made before the workers start so they see the
        releases; each worker's buffers, and which it has already sent; the
        buffers the main process has received.
        """
        self._reuse_memory = reuse_memory
        n_slots = _MAX_SLOTTED_WORKERS * _SLOTS_PER_WORKER
        self._slot_busy = torch.zeros(n_slots, dtype=torch.uint8).share_memory_() if reuse_memory else None
        self._slot_buffers: dict[int, dict[str, torch.Tensor]] = {}  # worker side
        self._slot_sent: set[int] = set()  # worker side
        self._slot_mapped: dict[int, dict[str, torch.Tensor]] = {}  # main side

    def loader(self, num_workers: int = 0, prefetch_factor: int = 4) -> SyntheticBatchLoader:
        """Return an iterable over the batches of a ``batch_size`` dataset, made by DataLoader workers.

        Each worker fills a few shared-memory buffers in turn and sends only
        which one holds the next batch (the buffers themselves travel once);
        the iterable copies the batch out and releases the buffer. Sending
        every batch's tensors instead (a plain ``DataLoader``) costs a file
        descriptor per tensor, passed through a helper thread, plus fresh
        shared memory to fault in: more than making the samples.

        Parameters
        ----------
        num_workers : int
            DataLoader worker processes (0: batches made in this process).
        prefetch_factor : int
            Batches each worker prepares ahead.

        Returns
        -------
        loader : SyntheticBatchLoader
            Yields batches as :func:`collate_compact` makes them; has a
            length when the dataset is finite.
        """
        if self.batch_size is None:
            raise BrainForgeError("loader() needs a dataset made with batch_size.")
        return SyntheticBatchLoader(self, num_workers, prefetch_factor)

    def claim(self, batch: dict) -> dict:
        """Return the batch a worker left in reusable memory as private tensors, and release that memory.

        :meth:`loader` calls it for every batch; batches that do not come
        from reusable memory are returned unchanged.

        Parameters
        ----------
        batch : dict
            A batch as the DataLoader delivered it.

        Returns
        -------
        batch : dict
            The batch, its tensors private to this process.
        """
        if "slot" not in batch:
            return batch
        slot = int(batch["slot"])
        if "buffers" in batch:  # the slot's first batch brings its buffers, kept mapped here
            self._slot_mapped[slot] = batch["buffers"]
        buffers = self._slot_mapped[slot]
        # A NumPy copy is one plain memcpy; Tensor.clone() may start PyTorch's thread pool,
        # whose threads spin against the busy workers.
        claimed = {
            key: torch.from_numpy(_batch_view(buffers, key, shape, None).numpy().copy())
            for key, shape in batch["shapes"].items()
        }
        self._slot_busy[slot] = 0
        return claimed

    def __len__(self) -> int:
        """Return the samples per pass; with ``batch_size``, the batches this process yields (its DDP share)."""
        if self.n_samples is None:
            raise TypeError("An endless SyntheticEEGDataset has no length.")
        if self.batch_size is not None:
            return len(self._rank_batches(*self._rank_and_world()))
        return self.n_samples

    def _rank_batches(self, rank: int, world: int) -> range | itertools.count:
        """Return the indices of the batches of distributed rank ``rank`` of ``world``.

        Rank ``r`` takes batches ``r, r + world, ...``; under DDP every rank
        takes the same number (the last ``n_batches % world`` are left out),
        since a rank with one batch more would wait forever for the others
        at its gradient synchronization.
        """
        if self.n_samples is None:
            return itertools.count(rank, world)
        n_batches = math.ceil(self.n_samples / self.batch_size)
        return range(rank, rank + world * (n_batches // world), world)

    def _rank_and_world(self) -> tuple[int, int]:
        """Return the distributed rank and world size this dataset serves (see :func:`_distributed_rank`).

        Those recorded when it was pickled or copied (:meth:`__getstate__`)
        come first: a worker started by a forkserver or by spawn has no
        process group of its own.
        """
        return self._rank_world if self._rank_world is not None else _distributed_rank()

    def __getstate__(self) -> dict:
        """Return the state to pickle or copy, with the process group's rank and world size recorded in it.

        Only inside a process group: a dataset pickled before one starts
        (``ddp_spawn``, ``mp.spawn``) still looks its rank up where it runs.
        Also this process's id, which a worker that is not its child watches
        (:func:`_exit_with_owner`).
        """
        state = dict(self.__dict__)
        if state["_rank_world"] is None and _in_process_group():
            state["_rank_world"] = _distributed_rank()
        state["_owner_pid"] = os.getpid()  # the process a worker unpickling this serves
        return state

    def __iter__(self) -> Iterator[dict]:
        rank, world = self._rank_and_world()
        info = get_worker_info()
        if info is None:
            yield from self._stream(rank, world, local_worker=None)
            return
        _exit_with_owner(self._owner_pid)
        # Each DataLoader worker is one process: one BLAS thread each, or
        # the workers' thread pools fight over the cores (2.3x slower on 2 cores).
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(1)
        with threadpool_limits(limits=1):
            yield from self._stream(rank * info.num_workers + info.id, world * info.num_workers, local_worker=info.id)

    def _stream(self, worker: int, n_workers: int, local_worker: int | None) -> Iterator[dict]:
        if self.batch_size is None:
            yield from self._items(worker, n_workers)
            return
        # Whole batches: split among ranks first (_rank_batches), then among this rank's workers.
        rank, world = self._rank_and_world()
        n_local = n_workers // world
        batches = itertools.islice(self._rank_batches(rank, world), worker - rank * n_local, None, n_local)
        yield from self._batches(batches, local_worker)

    def item(self, index: int) -> dict:
        """Return the item of sample ``index`` (as iteration yields it), on any rank.

        Iteration gives each rank of a distributed run its own share; this does
        not. Every rank can so hold a whole fixed set, such as a validation set
        that Lightning's sampler then splits among the ranks.
        """
        return self._item(index)

    def _item(self, index: int, out: np.ndarray | None = None) -> dict:
        seed = sample_seed(self.seed, index)
        sample = self.generator.sample(seed, out=out)
        if self.compact_targets:
            targets = {
                "source_regions": torch.from_numpy(sample.source_regions),
                "source_waves": torch.from_numpy(sample.source_waves),
                "source_weights": torch.from_numpy(sample.source_weights),
            }
        else:
            targets = {"sources": torch.from_numpy(sample.sources)}
        return {
            "eeg": torch.from_numpy(sample.eeg),
            **targets,
            "active": torch.from_numpy(sample.active),
            "ch_pos_mm": torch.from_numpy(sample.ch_pos_mm.astype(np.float32)),
            "n_sources": len(sample.centres),
            "centres": self._padded_centres(sample.centres),
            "peak_time": sample.peak_time,
            "seed": seed,
            "index": index,
        }

    def _padded_centres(self, centres: np.ndarray) -> torch.Tensor:
        """Patch-centre regions, -1 padded to the most patches a sample can have (so items stack)."""
        padded = np.full(self.generator.config.n_sources[1], -1, dtype=np.int64)
        padded[: len(centres)] = centres
        return torch.from_numpy(padded)

    def _items(self, worker: int, n_workers: int) -> Iterator[dict]:
        index = worker
        while self.n_samples is None or index < self.n_samples:
            yield self._item(index)
            index += n_workers

    def _batches(self, batches: Iterator[int], local_worker: int | None) -> Iterator[dict]:
        head = self.generator.head
        n_times = self.generator.library.background.shape[1]
        n_patches = self.generator.config.n_sources[1]
        for batch in batches:
            start = batch * self.batch_size
            stop = start + self.batch_size if self.n_samples is None else min(start + self.batch_size, self.n_samples)
            slot = self._free_slot(local_worker) if self._reuse_memory else None
            buffers = None if slot is None else self._buffers(slot, n_times, head.n_channels, head.n_regions)
            eeg = _batch_view(buffers, "eeg", (stop - start, n_times, head.n_channels), torch.float32)
            rows = eeg.numpy()
            items = [self._item(index, out=rows[i]) for i, index in enumerate(range(start, stop))]
            collated = _collate_compact(items, eeg=eeg, n_patches=n_patches, buffers=buffers)
            if slot is None:
                yield collated
            else:  # only where the batch lies travels (claim() rebuilds it), with the buffers the first time
                message = {"slot": slot, "shapes": {key: tuple(value.shape) for key, value in collated.items()}}
                if slot not in self._slot_sent:
                    message["buffers"] = buffers
                    self._slot_sent.add(slot)
                yield message

    def _free_slot(self, local_worker: int | None) -> int | None:
        """Mark and return a released buffer slot of this worker; None outside workers or when all are busy."""
        if local_worker is None or local_worker >= _MAX_SLOTTED_WORKERS:
            return None
        first = local_worker * _SLOTS_PER_WORKER
        busy = self._slot_busy[first : first + _SLOTS_PER_WORKER].numpy()
        free = np.flatnonzero(busy == 0)
        if not len(free):
            return None
        slot = first + int(free[0])
        self._slot_busy[slot] = 1
        return slot

    def _buffers(self, slot: int, n_times: int, n_channels: int, n_regions: int) -> dict[str, torch.Tensor]:
        """Return the shared-memory buffers of ``slot`` (made on first use), each flat and large enough for a batch."""
        if slot not in self._slot_buffers:
            n, k = self.batch_size, self.generator.config.n_sources[1]
            max_columns = n * k * self.generator.config.max_patch_regions
            sizes = {
                "eeg": (n * n_times * n_channels, torch.float32),
                "active": (n * n_regions, torch.bool),
                "ch_pos_mm": (n * n_channels * 3, torch.float32),
                "centres": (n * k, torch.int64),
                "source_waves": (n * n_times * k, torch.float32),
                "source_weights": (k * max_columns, torch.float32),
                "source_regions": (max_columns, torch.int64),
                "source_item": (max_columns, torch.int64),
                **{key: (n, torch.int64) for key in _PER_ITEM_SCALARS},
            }
            self._slot_buffers[slot] = {key: _batch_tensor((size,), dtype) for key, (size, dtype) in sizes.items()}
        return self._slot_buffers[slot]


class SyntheticBatchLoader:
    """Batches of a whole-batch :class:`SyntheticEEGDataset` from DataLoader workers that reuse their memory.

    Made by :meth:`SyntheticEEGDataset.loader`; iterate it like a DataLoader
    (PyTorch Lightning accepts it as a training dataloader).

    Parameters
    ----------
    dataset : SyntheticEEGDataset
        A dataset made with ``batch_size``.
    num_workers : int
        Worker processes.
    prefetch_factor : int
        Batches each worker prepares ahead.
    """

    def __init__(self, dataset: SyntheticEEGDataset, num_workers: int = 0, prefetch_factor: int = 4):
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor

    def __iter__(self) -> Iterator[dict]:
        # A copy of the dataset per pass, with its own buffer bookkeeping, made before the
        # workers start: the dataset itself keeps sending whole batches to plain DataLoaders.
        dataset = copy.copy(self.dataset)  # records this process's rank for the workers (__getstate__)
        dataset._use_slots(self.num_workers > 0)
        prefetch = self.prefetch_factor if self.num_workers else None
        context = worker_start_method() if self.num_workers else None
        loader = DataLoader(
            dataset, batch_size=None, num_workers=self.num_workers, prefetch_factor=prefetch,
            multiprocessing_context=context,
        )  # fmt: skip
        for batch in loader:
            yield dataset.claim(batch)

    def __len__(self) -> int:
        return len(self.dataset)


def worker_start_method() -> str | None:
    """Return how DataLoader workers start: ``"forkserver"`` in a distributed run, else None.

    In a distributed run, threads started by C++ code can enter Python, which
    takes Python's thread-state lock; a ``fork`` that lands while one holds it
    gives a child that hangs before running any code (CPython gh-112275;
    ``scripts/fork_hang_probe.py`` hung 14 of 6,000 children on Python 3.11.7,
    none on 3.12.1 or 3.13.0). A two-process CPU run of the test suite hung in
    that place at its first epoch. A forkserver is a fresh process that only
    forks, so no thread there is inside Python at a fork; its workers receive
    the dataset pickled, with the rank it recorded, and the server imports
    brainforge's synthesis once for all of them. Other hazards of forking
    beside threads remain on newer Pythons too.

    Returns
    -------
    method : str | None
        ``"forkserver"``, or None for the platform's default (fork on Linux
        before Python 3.14).
    """
    if not _in_process_group():
        return None
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "brainforge.synthesis"])
    return "forkserver"


#: How often a worker that is not the child of the process it serves checks that process, s.
OWNER_CHECK_INTERVAL_S = 1.0
_watched_owner: list[int] = []  # the owner this worker process watches, once started


def _exit_with_owner(owner_pid: int | None) -> None:
    """End this DataLoader worker when the process it serves has died, where PyTorch would not notice.

    PyTorch's workers check that their parent is alive. A worker started by a
    forkserver (distributed runs, :func:`worker_start_method`) is the
    forkserver's child, so when a rank is killed (``kill -9``) its workers and
    the forkserver would live on, each holding a copy of the generator (about
    half a GB with a forward bank). A daemon thread checks the rank every
    :data:`OWNER_CHECK_INTERVAL_S` and ends the worker once it is gone (or a
    zombie). Nothing happens for a forked worker, whose parent is its owner.
    """
    if owner_pid is None or owner_pid == os.getppid() or _watched_owner:
        return
    import psutil

    try:
        owner = psutil.Process(owner_pid)
    except psutil.NoSuchProcess:
        os._exit(0)

    def watch() -> None:
        while True:
            time.sleep(OWNER_CHECK_INTERVAL_S)
            try:
                alive = owner.is_running() and owner.status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                alive = False
            if not alive:
                os._exit(0)

    _watched_owner.append(owner_pid)
    threading.Thread(target=watch, name="brainforge-owner-watch", daemon=True).start()


def _in_process_group() -> bool:
    """Whether this process belongs to an initialized torch.distributed process group."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _distributed_rank() -> tuple[int, int]:
    """Return this process's rank and the world size (0, 1 outside torch.distributed)."""
    if _in_process_group():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _batch_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Return an uninitialized batch tensor, made in shared memory inside a DataLoader worker.

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

    Only the factored targets travel: a dense (T, R) float32 target is 2 MB
    per sample (65 MB per batch of 32), which DataLoader workers would
    otherwise allocate, fill and copy into shared memory.
    :func:`densify_sources` makes the dense target where it is needed (for
    training, on the device).

    Parameters
    ----------
    items : list of dict
        Items of :class:`SyntheticEEGDataset` with ``compact_targets=True``.

    Returns
    -------
    batch : dict
        ``eeg`` (B, T, C); ``source_waves`` (B, T, K) float32, each item's
        patch waveforms padded with zero columns to the batch's largest
        number of patches K; the patch regions of all items side by side:
        ``source_weights`` (K, N) float32 (each patch's weight on each
        region), ``source_regions`` (N,) and ``source_item`` (N,) int64 (the
        region and batch row of each); ``active`` (B, R), ``ch_pos_mm``
        (B, C, 3), ``centres`` (B, most patches; -1 padded), ``n_sources``, ``peak_time``, ``seed``
        and ``index`` (B,).
    """
    return _collate_compact(items)


def _batch_view(
    buffers: dict[str, torch.Tensor] | None, key: str, shape: tuple[int, ...], dtype: torch.dtype | None
) -> torch.Tensor:
    """Return the start of flat buffer ``buffers[key]`` shaped ``shape``, or a new batch tensor without buffers."""
    if buffers is None:
        return _batch_tensor(shape, dtype)
    return buffers[key][: math.prod(shape)].view(shape)


def _collate_compact(
    items: list[dict],
    eeg: torch.Tensor | None = None,
    n_patches: int | None = None,
    buffers: dict[str, torch.Tensor] | None = None,
) -> dict:
    """Batch as :func:`collate_compact`, with options for whole-batch datasets.

    The EEG batch may be made already (``eeg``), waveforms get at least
    ``n_patches`` columns, and the batch is written into ``buffers`` (flat
    tensors, see ``SyntheticEEGDataset._buffers``) when given.
    """
    n_channels = {item["eeg"].shape[-1] for item in items}
    if len(n_channels) > 1:
        raise ValueError("collate_compact batches one montage; items have different channel counts.")
    if "source_waves" not in items[0]:
        raise ValueError("collate_compact needs items with compact targets (compact_targets=True).")
    widths = [item["source_regions"].shape[0] for item in items]
    n_times, n_columns = items[0]["source_waves"].shape[0], sum(widths)
    n_patches = max([n_patches or 0] + [item["source_waves"].shape[1] for item in items])
    batch = {}
    keys = ("active", "ch_pos_mm", "centres") if eeg is not None else ("eeg", "active", "ch_pos_mm", "centres")
    for key in keys:
        first = items[0][key]
        out = _batch_view(buffers, key, (len(items), *first.shape), first.dtype)
        batch[key] = torch.stack([item[key] for item in items], out=out)
    if eeg is not None:
        batch["eeg"] = eeg
    waves = _batch_view(buffers, "source_waves", (len(items), n_times, n_patches), torch.float32)
    weights = _batch_view(buffers, "source_weights", (n_patches, n_columns), torch.float32)
    waves.zero_()
    weights.zero_()
    column = 0
    for row, (item, width) in enumerate(zip(items, widths, strict=True)):
        k = item["source_waves"].shape[1]
        waves[row, :, :k] = item["source_waves"]
        weights[:k, column : column + width] = item["source_weights"]
        column += width
    regions = _batch_view(buffers, "source_regions", (n_columns,), torch.int64)
    torch.cat([item["source_regions"] for item in items], out=regions)
    rows = _batch_view(buffers, "source_item", (n_columns,), torch.int64)
    rows.numpy()[:] = np.repeat(np.arange(len(items), dtype=np.int64), widths)
    batch.update(source_waves=waves, source_weights=weights, source_regions=regions, source_item=rows)
    for key in _PER_ITEM_SCALARS:
        batch[key] = _batch_view(buffers, key, (len(items),), torch.int64)
        batch[key].numpy()[:] = [item[key] for item in items]
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
        The same items, with ``sources`` in place of ``source_waves``,
        ``source_weights``, ``source_regions`` and ``source_item``; equal to
        the batch :func:`collate_samples` makes from the same items.
    """
    if "source_waves" not in batch:
        return batch
    # Each patch region's activity (N, T): its item's waveforms weighted by its patch weights.
    values = source_activity(batch["source_waves"][batch["source_item"]], batch["source_weights"].T[:, :, None])[..., 0]
    batch = dict(batch)
    waves = batch.pop("source_waves")
    del batch["source_weights"]
    regions, rows = batch.pop("source_regions"), batch.pop("source_item")
    n_batch, n_regions = batch["active"].shape
    sources = torch.zeros(n_batch, waves.shape[1], n_regions, dtype=waves.dtype, device=waves.device)
    sources[rows, :, regions] = values  # (row, region) pairs are distinct: a plain assignment
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
        ``eeg`` (B, T, C), ``sources`` (B, T, R), ``active`` (B, R), ``ch_pos_mm``
        (B, C, 3), ``centres`` (B, most patches; -1 padded), ``n_sources``, ``peak_time``, ``seed``
        and ``index`` (B,).
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
        "ch_pos_mm": torch.stack([item["ch_pos_mm"] for item in items]),
        "centres": torch.stack([item["centres"] for item in items]),
        **{key: torch.as_tensor([item[key] for item in items]) for key in _PER_ITEM_SCALARS},
    }
