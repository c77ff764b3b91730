"""Fixed synthetic test sets on disk (Zarr), made by the same generator as the on-the-fly data."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._cache import durable_replace
from .._errors import BrainForgeError
from .._logging import verbose
from .dataset import sample_seed
from .generator import SampleGenerator

logger = logging.getLogger("brainforge")

NOISE_CODES = {"white": 0, "pink": 1, "realistic": 2}


#: Samples per chunk of every array along the sample axis, and per resumable step of :func:`write_test_set`.
BLOCK_SAMPLES = 64

#: Marks the folder an unfinished ``write_test_set`` writes beside ``out``: ``.NAME.brainforge-partial``.
PARTIAL_MARK = ".brainforge-partial"


def check_test_set_out(out: str | Path) -> None:
    """Stop when ``out`` exists: a test set is written to a new folder only."""
    if Path(out).exists():
        raise BrainForgeError(f"{out} exists; choose another --out or delete it.")


@verbose
def write_test_set(
    generator: SampleGenerator,
    n_samples: int,
    out: str | Path,
    *,
    seed: int = 0,
    description: dict | None = None,
    progress: bool = True,
    verbose: bool | str | int | None = None,
) -> Path:
    """Draw ``n_samples`` samples and store them, with their metadata, in a Zarr folder.

    Sample ``i`` is the sample the on-the-fly dataset with the same seed
    yields at index ``i``. The set is written into ``.NAME.brainforge-partial``
    beside ``out``, :data:`BLOCK_SAMPLES` samples at a time, and renamed to
    ``out`` when complete, so a test set is either whole or absent. An
    interrupted run is resumable: the same call again (same generator, seed,
    size and description) continues after the last whole block; a different
    one starts the partial folder afresh.

    Parameters
    ----------
    generator : SampleGenerator
        Head model, spike library and sampling parameters (a fixed montage).
    n_samples : int
        Samples to store.
    out : path
        Destination ``.zarr`` folder (must not exist).
    seed : int
        Dataset seed.
    description : dict | None
        Extra metadata (for example the forward-model mismatch).
    progress : bool
        Show a progress bar.
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    out : Path
    """
    out = Path(out)
    if n_samples < 1:
        raise BrainForgeError(f"n_samples must be >= 1, got {n_samples}.")
    check_test_set_out(out)
    if generator.config.n_channels is not None:
        raise BrainForgeError("A stored test set needs a fixed montage: pick channels instead of n_channels.")
    first = generator.sample(sample_seed(seed, 0))
    metadata = _test_set_metadata(generator, first, n_samples, seed, description)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}{PARTIAL_MARK}"
    root, written = _open_partial(partial, metadata)
    if written is None:
        root = _create_arrays(partial, metadata, first, n_samples, generator.config.n_sources[1], generator.head)
        written = 0
    elif written:
        logger.info("Resuming %s after %d of %d samples.", out, written, n_samples)
    bar = tqdm(total=n_samples, initial=written, desc="synthesizing", unit="sample", disable=not progress)
    for start in range(written, n_samples, BLOCK_SAMPLES):
        stop = min(n_samples, start + BLOCK_SAMPLES)
        samples = [first if i == 0 else generator.sample(sample_seed(seed, i)) for i in range(start, stop)]
        _write_block(root, start, samples)
        root.attrs["brainforge_partial"] = {"metadata": metadata, "written": stop}  # after the block's chunks
        bar.update(stop - start)
    bar.close()
    attrs = dict(root.attrs)
    attrs.pop("brainforge_partial", None)
    attrs["brainforge_test_set"] = metadata
    root.attrs.put(attrs)
    durable_replace(partial, out)
    return out


def _test_set_metadata(generator: SampleGenerator, first, n_samples: int, seed: int, description) -> dict:
    """Return a test set's metadata (JSON types): what it holds and how it was drawn."""
    from .. import __version__

    head = generator.head
    return json.loads(
        json.dumps(
            {
                "n_samples": n_samples,
                "seed": seed,
                "ch_names": first.ch_names,
                "ch_pos_mm": first.ch_pos_mm.tolist(),
                "region_names": head.region_names,
                "n_deep_regions": head.n_deep_regions,
                "sfreq_hz": generator.sfreq,
                "head": head.description,
                "head_config": None if head.config is None else asdict(head.config),
                "region_centres_mm": head.region_centres_mm.round(3).tolist(),
                "synthesis": asdict(generator.config),
                "spike_library": {k: generator.library.metadata.get(k) for k in ("connectome", "engine", "seed")},
                "noise_codes": NOISE_CODES,
                "package_version": __version__,
                **(description or {}),
            },
            default=str,
        )
    )


def _open_partial(partial: Path, metadata: dict):
    """Return (root, samples written) of an unfinished set made with ``metadata``; (None, None) to start afresh."""
    import zarr

    if not partial.exists():
        return None, None
    try:
        root = zarr.open_group(str(partial), mode="r+")
        state = dict(root.attrs).get("brainforge_partial") or {}
    except Exception:  # an unreadable leftover is started again
        state = {}
    if state.get("metadata") == metadata:
        return root, int(state.get("written", 0))
    logger.info("Starting %s afresh: it was begun with other settings or is unreadable.", partial)
    shutil.rmtree(partial)
    return None, None


def _create_arrays(partial: Path, metadata: dict, first, n_samples: int, k_max: int, head):
    """Create the partial folder and its empty arrays, chunked by :data:`BLOCK_SAMPLES` along the samples."""
    import zarr

    n_times, n_channels = first.eeg.shape
    n_regions, block = head.n_regions, BLOCK_SAMPLES
    root = zarr.open_group(str(partial), mode="w")
    shapes = {
        "eeg": ((n_samples, n_times, n_channels), "f4", (block, n_times, n_channels), 0.0),
        "sources": ((n_samples, n_times, n_regions), "f4", (1, n_times, n_regions), 0.0),
        "active": ((n_samples, n_regions), "bool", (block, n_regions), False),
        "patch_regions": ((n_samples, k_max, n_regions), "bool", (block, k_max, n_regions), False),
        "centres": ((n_samples, k_max), "i8", (block, k_max), -1),
        "onsets": ((n_samples, k_max), "i8", (block, k_max), -1),
        "source_snr_db": ((n_samples, k_max), "f8", (block, k_max), np.nan),
        "sensor_snr_db": ((n_samples,), "f8", (block,), 0.0),
        "noise_type": ((n_samples,), "i1", (block,), 0),
        "seed": ((n_samples,), "i8", (block,), 0),
    }
    for name, (shape, dtype, chunks, fill) in shapes.items():
        root.create_array(name, shape=shape, dtype=dtype, chunks=chunks, fill_value=fill)
    root.attrs["brainforge_partial"] = {"metadata": metadata, "written": 0}
    return root


def _write_block(root, start: int, samples: list) -> None:
    """Write samples ``start``, ``start + 1``, ... into every array (whole chunks)."""
    n, k_max, n_regions = len(samples), root["centres"].shape[1], root["active"].shape[1]
    stop = start + n
    patch_regions = np.zeros((n, k_max, n_regions), bool)
    centres, onsets = np.full((n, k_max), -1, np.int64), np.full((n, k_max), -1, np.int64)
    source_snr = np.full((n, k_max), np.nan)
    for i, sample in enumerate(samples):
        k = len(sample.centres)
        for j, patch in enumerate(sample.patches):
            patch_regions[i, j, patch] = True
        centres[i, :k], onsets[i, :k], source_snr[i, :k] = sample.centres, sample.onsets, sample.source_snr_db
    root["eeg"][start:stop] = np.stack([sample.eeg for sample in samples])
    root["sources"][start:stop] = np.stack([sample.sources for sample in samples])
    root["active"][start:stop] = np.stack([sample.active for sample in samples])
    root["patch_regions"][start:stop] = patch_regions
    root["centres"][start:stop], root["onsets"][start:stop] = centres, onsets
    root["source_snr_db"][start:stop] = source_snr
    root["sensor_snr_db"][start:stop] = [sample.sensor_snr_db for sample in samples]
    root["noise_type"][start:stop] = [NOISE_CODES[sample.noise_type] for sample in samples]
    root["seed"][start:stop] = [sample.seed for sample in samples]


@dataclass
class TestSet:
    """A stored test set; arrays are Zarr arrays read on access.

    Attributes
    ----------
    eeg : zarr array, shape (n_samples, n_times, n_channels)
    sources : zarr array, shape (n_samples, n_times, n_regions)
    active : array of bool, shape (n_samples, n_regions)
    patch_regions : array of bool, shape (n_samples, max_sources, n_regions)
        Regions of each patch (all False for absent patches).
    centres, onsets : arrays of int, shape (n_samples, max_sources), -1 padded
    source_snr_db : array, shape (n_samples, max_sources), NaN padded
    sensor_snr_db : array, shape (n_samples,)
    metadata : dict
    """

    __test__ = False  # not a pytest class

    eeg: object
    sources: object
    active: np.ndarray
    patch_regions: np.ndarray
    centres: np.ndarray
    onsets: np.ndarray
    source_snr_db: np.ndarray
    sensor_snr_db: np.ndarray
    metadata: dict

    def __len__(self) -> int:
        return int(self.metadata["n_samples"])

    @property
    def sfreq(self) -> float:
        """Sampling rate, Hz."""
        return float(self.metadata.get("sfreq_hz", 500.0))

    def patches(self, index: int) -> list[np.ndarray]:
        """Region indices of each patch of sample ``index``."""
        n_sources = int((self.centres[index] >= 0).sum())
        return [np.flatnonzero(self.patch_regions[index, j]) for j in range(n_sources)]


def read_test_set(path: str | Path) -> TestSet:
    """Open a test set written by :func:`write_test_set` or ``brainforge synth``."""
    import zarr

    path = Path(path)
    if not (path / "zarr.json").exists():
        raise BrainForgeError(f"Test set not found: {path}. Make one with `brainforge synth`.")
    damaged = f"{path} is damaged (a copy cut short, or files lost); copy it again or re-create it (brainforge synth)"
    try:
        root = zarr.open_group(str(path), mode="r")
        metadata = dict(root.attrs).get("brainforge_test_set")
    except Exception as err:  # zarr raises JSON, value and key errors for a broken zarr.json
        raise BrainForgeError(f"{damaged} ({type(err).__name__}: {err}).") from err
    if metadata is None:
        raise BrainForgeError(f"{path} is not a BrainForge test set.")
    if not (path / "patch_regions").exists():  # a folder of the store: its member, whole or not
        if not (path / "sources").exists():  # later arrays gone too: a copy cut short
            raise BrainForgeError(f"{damaged} (its arrays from patch_regions on are missing).")
        raise BrainForgeError(
            f"{path} was written by an older BrainForge without per-patch regions; "
            "re-create it with `brainforge synth`."
        )
    try:
        test_set = TestSet(
            eeg=root["eeg"],
            sources=root["sources"],
            active=root["active"][:],
            patch_regions=root["patch_regions"][:],
            centres=root["centres"][:],
            onsets=root["onsets"][:],
            source_snr_db=root["source_snr_db"][:],
            sensor_snr_db=root["sensor_snr_db"][:],
            metadata=metadata,
        )
    except Exception as err:  # a lost array, or a chunk that does not decode
        raise BrainForgeError(f"{damaged} ({type(err).__name__}: {err}).") from err
    n_samples = metadata.get("n_samples", len(test_set.centres))
    if {test_set.eeg.shape[0], test_set.sources.shape[0], len(test_set.centres)} != {n_samples}:
        raise BrainForgeError(f"{damaged} (its arrays do not hold the {n_samples} samples it records).")
    try:  # every EEG chunk holds data (never only zeros), so each is stored: a lost one is a lost file
        lost = test_set.eeg.nchunks - test_set.eeg.nchunks_initialized
    except Exception:  # a store that cannot list its chunks: not checked
        lost = 0
    if lost:
        raise BrainForgeError(f"{damaged} ({lost} of its {test_set.eeg.nchunks} EEG chunks are missing).")
    return test_set


def check_test_set_reuse(
    path: str | Path,
    *,
    n_samples: int,
    seed: int,
    synthesis: dict | None = None,
    metadata: dict | None = None,
    ch_names: Sequence[str] | None = None,
    channel_order: bool = False,
) -> None:
    """Refuse to reuse a stored test set drawn with other settings than those asked for.

    Parameters
    ----------
    path : path
        The stored test set.
    n_samples : int
        Samples asked for.
    seed : int
        Dataset seed asked for.
    synthesis : dict | None
        Synthesis settings to compare (keys of :class:`SynthesisConfig`, as
        stored in the set's ``synthesis`` metadata).
    metadata : dict | None
        Other top-level metadata to compare (for example ``forward_mismatch``).
    ch_names : list of str | None
        Channels asked for; None does not compare them.
    channel_order : bool
        Compare the channels' order too, not only their set.

    Raises
    ------
    BrainForgeError
        Naming each setting that differs.
    """
    stored = read_test_set(path).metadata
    asked = json.loads(json.dumps({"synthesis": synthesis or {}, "metadata": metadata or {}}, default=str))
    differences = []
    if stored["n_samples"] != n_samples:
        differences.append(f"{stored['n_samples']} samples, not {n_samples}")
    if stored["seed"] != seed:
        differences.append(f"seed {stored['seed']}, not {seed}")
    for key, value in asked["synthesis"].items():
        if stored.get("synthesis", {}).get(key) != value:
            differences.append(f"{key} {stored.get('synthesis', {}).get(key)}, not {value}")
    for key, value in asked["metadata"].items():
        if stored.get(key) != value:
            differences.append(f"{key} {stored.get(key)}, not {value}")
    if ch_names is not None:
        same = list(stored["ch_names"]) == list(ch_names) if channel_order else set(stored["ch_names"]) == set(ch_names)
        if not same:
            differences.append(f"{len(stored['ch_names'])} other channels, not the {len(ch_names)} asked for")
    if differences:
        raise BrainForgeError(
            f"{path} was drawn with {'; '.join(differences)}; choose another output folder or delete it."
        )
