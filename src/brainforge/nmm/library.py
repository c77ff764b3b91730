"""The spike library on disk (Zarr): isolated spike waveforms and background activity.

Layout of ``LIBRARY.zarr``::

    zarr.json            root attributes: connectome, engine, parameters, rules, seed, version
    jobs/n0005_s1/       one finished simulation (node 5, setting 1), written atomically:
        waveforms        (n_spikes, clip_samples) float32, mV: the stimulated node's clips
        peak_times       (n_spikes,) int64, in preprocessed samples
        amplitudes       (n_spikes,) float32, mV at the peak
        background       (n_windows, clip_samples, n_nodes) float32, optional
        attributes       node, setting, mu, noise_factor, seed, n_spikes, n_times, complete

A job directory is first written under a temporary name and renamed into
place, so it either exists whole or not at all; a job without
``complete = True`` (or that cannot be opened) is treated as missing and
redone on resume.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._cache import durable_replace
from .._errors import BrainForgeError
from ..anatomy.connectivity import is_connectome_file

logger = logging.getLogger("brainforge")

FORMAT_VERSION = 1


def job_name(node: int, setting: int) -> str:
    """Folder name of one job."""
    return f"n{node:04d}_s{setting}"


def _open_root(path: Path, mode: str):
    import zarr

    try:
        return zarr.open_group(str(path), mode=mode)
    except Exception as err:
        raise BrainForgeError(f"{path} is not a readable spike library ({err}).") from err


def init_library(path: str | Path, metadata: dict) -> Path:
    """Create a library, or check that an existing one was made with the same metadata.

    Leftover temporary job folders of an interrupted run are removed.
    """
    path = Path(path)
    metadata = {**metadata, "format_version": FORMAT_VERSION}
    if (path / "zarr.json").exists():
        root = _open_root(path, "r")
        existing = dict(root.attrs).get("brainforge_spike_library")
        if existing is None:
            raise BrainForgeError(f"{path} exists but is not a BrainForge spike library; choose another --out.")
        if _comparable(existing) != _comparable(metadata):
            raise BrainForgeError(
                f"{path} was made with other parameters; resume with the same ones or choose another --out."
            )
    else:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise BrainForgeError(
                f"{path} exists and is not a spike library (no zarr.json); choose a new or empty folder for --out."
            )
        root = _open_root(path, "w")
        root.attrs["brainforge_spike_library"] = json.loads(json.dumps(metadata))
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    for leftover in (path / "jobs").glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return path


def _comparable(metadata: dict) -> dict:
    """Metadata without fields that may differ between resumed runs; a connectome file as an absolute path.

    (Libraries made before 2026-12-08 recorded a connectome file as given; resumed from the same folder,
    it is the same file.)
    """
    comparable = {k: v for k, v in json.loads(json.dumps(metadata)).items() if k not in ("package_version", "nodes")}
    connectome = comparable.get("connectome")
    if isinstance(connectome, str) and is_connectome_file(connectome):
        comparable["connectome"] = str(Path(connectome).resolve())
    return comparable


def _is_complete(folder: Path) -> bool:
    """Whether a job folder opens and says it is complete."""
    import zarr

    try:
        return bool(zarr.open_group(str(folder), mode="r").attrs.get("complete", False))
    except Exception:  # unreadable means incomplete
        return False


def finished_jobs(path: str | Path, *, remove_incomplete: bool = True) -> list[str]:
    """Names of complete jobs, sorted; incomplete or unreadable ones are deleted unless told otherwise."""
    done = []
    for folder in sorted((Path(path) / "jobs").glob("n*_s*")):
        if _is_complete(folder):
            done.append(folder.name)
        elif remove_incomplete:
            logger.warning("Job %s is incomplete or corrupt; it will be redone.", folder.name)
            shutil.rmtree(folder, ignore_errors=True)
    return done


def write_job(
    path: str | Path,
    node: int,
    setting: int,
    waveforms: np.ndarray,
    peak_times: np.ndarray,
    amplitudes: np.ndarray,
    background: np.ndarray | None,
    attributes: dict,
) -> int:
    """Write one finished job atomically; return its size on disk in bytes."""
    import zarr

    jobs = Path(path) / "jobs"
    final = jobs / job_name(node, setting)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=jobs))
    try:
        group = zarr.open_group(str(tmp), mode="w")
        clip = waveforms.shape[1]
        group.create_array("waveforms", data=np.asarray(waveforms, np.float32), chunks=(max(1, len(waveforms)), clip))
        group.create_array("peak_times", data=np.asarray(peak_times, np.int64))
        group.create_array("amplitudes", data=np.asarray(amplitudes, np.float32))
        if background is not None and len(background):
            group.create_array("background", data=np.asarray(background, np.float32))
        group.attrs.update({**attributes, "node": int(node), "setting": int(setting), "complete": True})
        if final.exists():
            shutil.rmtree(final)
        durable_replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return sum(f.stat().st_size for f in final.rglob("*") if f.is_file())


@dataclass
class SpikeLibrary:
    """Read access to a spike library.

    Attributes
    ----------
    waveforms : array, shape (n_spikes, clip_samples)
        Every isolated spike of every job, float32, mV.
    nodes : array of int, shape (n_spikes,)
        Connectome node that produced each spike.
    settings : array of int, shape (n_spikes,)
        Index of the (mu, noise) setting of each spike.
    amplitudes : array, shape (n_spikes,)
        Peak value of each spike, mV.
    background : array, shape (n_windows, clip_samples, n_nodes)
        Background activity of every node, mV. Each window comes from a run
        in which one node was made to spike; that node's column holds its
        activity from another window, where it stays below the spike
        threshold (:func:`quiet_background_spikes`, as is any other node's
        that crosses it), so that no spike is
        left unlabelled in the background.
    background_nodes : array of int, shape (n_windows,)
        The stimulated node of the run each window comes from.
    metadata : dict
        Connectome, engine, parameters, rules, seed, versions.
    n_jobs : int
        Complete jobs.
    """

    waveforms: np.ndarray
    nodes: np.ndarray
    settings: np.ndarray
    amplitudes: np.ndarray
    background: np.ndarray
    background_nodes: np.ndarray
    metadata: dict
    n_jobs: int

    @property
    def n_nodes(self) -> int:
        """Nodes of the connectome the library was simulated on."""
        return int(self.metadata["n_nodes"])

    def spikes_per_node(self) -> np.ndarray:
        """Count the spikes of each node, shape (n_nodes,)."""
        return np.bincount(self.nodes, minlength=self.n_nodes)

    def waveforms_of(self, node: int) -> np.ndarray:
        """Spike waveforms of one node, shape (n, clip_samples)."""
        return self.waveforms[self.nodes == node]


def quiet_background_spikes(background: np.ndarray, stimulated: np.ndarray, threshold_mv: float) -> np.ndarray:
    """Return background windows in which no node crosses the spike threshold.

    A window is cut from a run in which one node's excitability was raised
    so that it spikes; left in, those spikes would be an unlabelled source
    in every sample drawn on the window (in the default library the node
    spiked in 12 of 17 windows, with peaks of 11-12 mV, and carried up to
    68 % of a window's EEG power; once another node followed it to
    10.9 mV). The column of the stimulated node, and of any node that
    crosses ``threshold_mv``, is replaced by the same node's activity in the
    next window, in cyclic order, where that node was not stimulated and
    stays below the threshold: the node's own background under the same
    coupling. With no such window the column is held at its median.

    Parameters
    ----------
    background : array, shape (n_windows, n_times, n_nodes)
        Windows as the campaign stored them, mV.
    stimulated : array of int, shape (n_windows,)
        Each window's stimulated node.
    threshold_mv : float
        The library's spike threshold, mV.

    Returns
    -------
    background : array, shape (n_windows, n_times, n_nodes)
        A copy; every other column is unchanged.
    """
    quiet = background.copy()
    n_windows = len(background)
    below = background.max(axis=1) < threshold_mv  # (n_windows, n_nodes)
    for window, node_stimulated in enumerate(stimulated):
        loud = set(np.flatnonzero(~below[window]).tolist()) | {int(node_stimulated)}
        for node in sorted(loud):
            for step in range(1, n_windows):
                other = (window + step) % n_windows
                if stimulated[other] != node and below[other, node]:
                    quiet[window, :, node] = background[other, :, node]
                    break
            else:
                quiet[window, :, node] = np.median(background[window, :, node])
    return quiet


def read_spike_library(path: str | Path) -> SpikeLibrary:
    """Open a spike library written by ``brainforge simulate``.

    Parameters
    ----------
    path : path
        The ``.zarr`` folder.

    Returns
    -------
    library : SpikeLibrary
    """
    import zarr

    path = Path(path)
    if not (path / "zarr.json").exists():
        raise BrainForgeError(f"Spike library not found: {path}. Make one with `brainforge simulate`.")
    try:
        root = _open_root(path, "r")
        metadata = dict(root.attrs).get("brainforge_spike_library")
        if metadata is not None:
            clip, n_nodes = int(metadata["rules"]["clip_samples"]), int(metadata["n_nodes"])
            threshold_mv = float(metadata["rules"]["threshold"])
    except BrainForgeError:
        raise
    except Exception as err:  # a broken zarr.json, or a record without its rules
        raise BrainForgeError(
            f"{path} is damaged ({type(err).__name__}: {err}); copy it again, or simulate it again with "
            "`brainforge simulate`."
        ) from err
    if metadata is None:
        raise BrainForgeError(f"{path} is not a BrainForge spike library.")
    waves, nodes, settings, amps, backgrounds, bg_nodes = [], [], [], [], [], []
    names = finished_jobs(path, remove_incomplete=False)
    for name in names:
        try:
            group = zarr.open_group(str(path / "jobs" / name), mode="r")
            n = int(group.attrs["n_spikes"])
            waves.append(group["waveforms"][:] if n else np.zeros((0, clip), np.float32))
            amps.append(group["amplitudes"][:])
            nodes.append(np.full(n, int(group.attrs["node"])))
            settings.append(np.full(n, int(group.attrs["setting"])))
            if "background" in group:
                bg = group["background"][:]
                backgrounds.append(bg)
                bg_nodes.append(np.full(len(bg), int(group.attrs["node"])))
        except Exception as err:  # a lost array, or a chunk that does not decode
            raise BrainForgeError(
                f"Job {name} of spike library {path} is damaged ({type(err).__name__}: {err}); delete "
                f"{path / 'jobs' / name} and run the command again: the default library in the cache rebuilds "
                "what is missing, a library of your own is redone by the same `brainforge simulate` command."
            ) from err
    background = np.concatenate(backgrounds) if backgrounds else np.zeros((0, clip, n_nodes), np.float32)
    background_nodes = np.concatenate(bg_nodes) if bg_nodes else np.zeros(0, np.int64)
    return SpikeLibrary(
        waveforms=np.concatenate(waves) if waves else np.zeros((0, clip), np.float32),
        nodes=np.concatenate(nodes).astype(np.int64) if nodes else np.zeros(0, np.int64),
        settings=np.concatenate(settings).astype(np.int64) if settings else np.zeros(0, np.int64),
        amplitudes=np.concatenate(amps) if amps else np.zeros(0, np.float32),
        background=quiet_background_spikes(background, background_nodes, threshold_mv),
        background_nodes=background_nodes,
        metadata=metadata,
        n_jobs=len(names),
    )
