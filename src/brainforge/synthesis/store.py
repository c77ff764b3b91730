"""Fixed synthetic test sets on disk (Zarr), made by the same generator as the on-the-fly data."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._errors import BrainForgeError
from .._logging import verbose
from .dataset import sample_seed
from .generator import SampleGenerator

NOISE_CODES = {"white": 0, "pink": 1, "realistic": 2}


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
    yields at index ``i``. The folder is written under a temporary name and
    renamed when complete, so a test set is either whole or absent.

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
    import zarr

    out = Path(out)
    if n_samples < 1:
        raise BrainForgeError(f"n_samples must be >= 1, got {n_samples}.")
    if out.exists():
        raise BrainForgeError(f"{out} exists; choose another --out or delete it.")
    if generator.config.n_channels is not None:
        raise BrainForgeError("A stored test set needs a fixed montage: pick channels instead of n_channels.")
    head = generator.head
    k_max = generator.config.n_sources[1]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        root = zarr.open_group(str(tmp), mode="w")
        first = generator.sample(sample_seed(seed, 0))
        n_times, n_channels = first.eeg.shape
        block = 64  # samples per EEG chunk, written whole (a chunk written sample by sample is recompressed 64 times)
        eeg = root.create_array(
            "eeg", shape=(n_samples, n_times, n_channels), dtype="f4", chunks=(block, n_times, n_channels)
        )
        eeg_block = np.zeros((block, n_times, n_channels), np.float32)
        sources = root.create_array(
            "sources", shape=(n_samples, n_times, head.n_regions), dtype="f4", chunks=(1, n_times, head.n_regions)
        )
        active = np.zeros((n_samples, head.n_regions), bool)
        patch_regions = np.zeros((n_samples, k_max, head.n_regions), bool)
        centres = np.full((n_samples, k_max), -1, np.int64)
        onsets = np.full((n_samples, k_max), -1, np.int64)
        source_snr = np.full((n_samples, k_max), np.nan)
        sensor_snr = np.zeros(n_samples)
        noise = np.zeros(n_samples, np.int8)
        seeds = np.zeros(n_samples, np.int64)
        for i in tqdm(range(n_samples), desc="synthesizing", unit="sample", disable=not progress):
            sample = first if i == 0 else generator.sample(sample_seed(seed, i))
            eeg_block[i % block] = sample.eeg
            if i % block == block - 1 or i == n_samples - 1:
                eeg[i - i % block : i + 1] = eeg_block[: i % block + 1]
            sources[i] = sample.sources
            active[i] = sample.active
            k = len(sample.centres)
            for j, patch in enumerate(sample.patches):
                patch_regions[i, j, patch] = True
            centres[i, :k], onsets[i, :k], source_snr[i, :k] = sample.centres, sample.onsets, sample.source_snr_db
            sensor_snr[i], noise[i], seeds[i] = sample.sensor_snr_db, NOISE_CODES[sample.noise_type], sample.seed
        for name, data in [
            ("active", active), ("patch_regions", patch_regions), ("centres", centres), ("onsets", onsets),
            ("source_snr_db", source_snr),
            ("sensor_snr_db", sensor_snr), ("noise_type", noise), ("seed", seeds),
        ]:  # fmt: skip
            root.create_array(name, data=data)
        from .. import __version__

        root.attrs["brainforge_test_set"] = json.loads(
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
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


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
    root = zarr.open_group(str(path), mode="r")
    metadata = dict(root.attrs).get("brainforge_test_set")
    if metadata is None:
        raise BrainForgeError(f"{path} is not a BrainForge test set.")
    if "patch_regions" not in root:
        raise BrainForgeError(
            f"{path} was written by an older BrainForge without per-patch regions; "
            "re-create it with `brainforge synth`."
        )
    return TestSet(
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
