"""Simulation campaigns: every node x setting, spikes extracted while simulating, spread with Dask."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._errors import BrainForgeError
from .._logging import verbose
from ..anatomy.connectivity import Connectivity, is_connectome_file, read_connectivity
from .library import finished_jobs, init_library, job_name, write_job
from .model import PUBLISHED_SETTINGS, JansenRitParams, check_run, n_integration_steps
from .spikes import SpikeRules, StreamingSpikeExtractor

try:  # POSIX file locks; elsewhere concurrent first builds are not guarded
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

logger = logging.getLogger("brainforge")

#: In-process campaigns integrate one block per numba thread, as long as the simulations' chunk buffers
#: stay within this many bytes.
SYNC_BUFFER_BYTES = 1 << 30


def compute_target(engine: str) -> dict:
    """Return what a job's bits depend on beyond its seed and settings (stored in each job's attributes).

    That is the engine's library version and, for the compiled engine, the CPU that numba
    compiled for: its vectorized ``exp`` and ``fastmath`` sums differ between instruction
    sets, so a job is the same bit for bit only on the same kind of CPU.
    """
    if engine != "fast":
        from importlib.metadata import version

        return {"engine": engine, "tvb_library": version("tvb-library")}
    import platform

    import llvmlite.binding
    import numba

    from .engine import VECTOR_EXP

    return {
        "engine": engine,
        "numba": numba.__version__,
        "cpu": numba.config.CPU_NAME or llvmlite.binding.get_host_cpu_name(),
        "cpu_features": numba.config.CPU_FEATURES or "host",
        "vector_exp": list(VECTOR_EXP) if VECTOR_EXP else None,
        "libc": " ".join(platform.libc_ver()),
    }


def sync_call_size(batch_size: int, n_threads: int, chunk_steps: int, n_nodes: int) -> int:
    """Return how many simulations one in-process call integrates: a block of ``batch_size`` per thread.

    Each simulation holds two float32 buffers of ``chunk_steps`` x ``n_nodes`` (noise draws,
    output); the blocks are cut to whole blocks within :data:`SYNC_BUFFER_BYTES`, one block at least.
    """
    per_simulation = 2 * 4 * max(1, chunk_steps) * n_nodes
    affordable = max(batch_size, int(SYNC_BUFFER_BYTES // per_simulation) // batch_size * batch_size)
    return min(batch_size * n_threads, affordable)


ENGINES = ("fast", "tvb")

#: Mean weighted in-degree (row sum of the weights) of DeepSIF's 998-node connectome.
DEEPSIF_998_MEAN_IN_STRENGTH = 17.9008
#: Largest weighted in-degree of DeepSIF's 998-node connectome.
DEEPSIF_998_MAX_IN_STRENGTH = 46.8883


@dataclass(frozen=True)
class CampaignConfig:
    """What a campaign simulates and how spikes are extracted.

    Parameters
    ----------
    connectome : str
        ``tvb66``/``tvb68``/``tvb76``/``tvb96``/``tvb192`` (tvb-data) or a TVB
        zip path readable by every worker.
    engine : ``"fast"`` | ``"tvb"``
        The batched numba engine or TVB itself.
    duration_ms : float
        Simulated time per node and setting, ms (the seed proposes 50 s).
    dt_ms : float
        Integration step, ms.
    settings : tuple of (mu, noise_factor)
        DeepSIF's three settings by default.
    seed : int
        Campaign seed; each job's seed derives from it, its node and setting.
    threshold : float
        Spike threshold, mV (8 as published).
    alignment : ``"block"`` | ``"peak"``
        Clip alignment.
    batch_size : int
        Simulations integrated together on one thread by the fast engine (one Dask
        task; in-process, ``scheduler="sync"``, one block per numba thread).
    n_background : int
        About this many background windows are kept (one per chosen job): every
        ``stride``-th job of one :func:`run_campaign` call, ``stride`` = jobs //
        ``n_background`` (rounded up where more are kept: 17 for the default 16),
        moved off multiples of the number of settings so that the windows cycle
        through the settings. A library built in pieces (``nodes``, ``simulate
        --regions``) chooses per piece, other clips than one built at once; build it
        in one call (Dask splits the work) to get the same library.
    chunk_ms : float
        Simulated time integrated before feeding the extractor, ms.
    normalize_coupling : bool | ``"mean"`` | ``"max"``
        Scale the global coupling so that the connectome's mean weighted
        in-degree (True or ``"mean"``), or its largest one (``"max"``), equals
        that of the published 998-node connectome (17.9 and 46.9). The
        published settings were tuned there; on tvb-data's 76-node connectome
        (mean in-degree 39.3) every node then idles above the 8 mV threshold
        and no isolated spike survives, while normalized it yields spikes.
        tvb-data's 192-node connectome needs ``"max"``: its in-degrees are far
        more uneven (0 to 133, mean 35.5), so with the mean matched its
        strongest-driven nodes (in-degree 57-67 after scaling) still idle near
        7.6 mV, about 125 regions cross 8 mV and no stimulated peak survives
        rules 3 and 4; with the largest one matched, unstimulated regions idle
        at medians below 2 mV.
    """

    connectome: str = "tvb76"
    engine: str = "fast"
    duration_ms: float = 50_000.0
    dt_ms: float = 1.0
    settings: tuple[tuple[float, float], ...] = PUBLISHED_SETTINGS
    seed: int = 0
    threshold: float = 8.0
    alignment: str = "block"
    batch_size: int = 8
    n_background: int = 64
    chunk_ms: float = 5000.0
    normalize_coupling: bool | str = False

    def __post_init__(self) -> None:
        if not isinstance(self.normalize_coupling, bool) and self.normalize_coupling not in ("mean", "max"):
            raise BrainForgeError(
                f"normalize_coupling must be False, True, 'mean' or 'max', got {self.normalize_coupling!r}."
            )
        if self.engine not in ENGINES:
            raise BrainForgeError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}.")
        check_run(self.duration_ms, self.dt_ms, self.transient_ms)
        per_sample = 2.0 / self.dt_ms  # integration steps per 2-ms sample of the 500-Hz output
        if abs(per_sample - round(per_sample)) > 1e-9 * per_sample or round(per_sample) < 1:
            raise BrainForgeError(
                f"dt {self.dt_ms:g} ms does not divide the 2-ms sample of the 500-Hz output; use a step such as "
                "0.1, 0.25, 0.5, 1 or 2 ms."
            )
        rules = self.rules()
        if self.n_times < 2 * rules.edge_samples + rules.clip_samples:
            raise BrainForgeError(
                f"duration {self.duration_ms:g} ms leaves {self.n_times} samples after the transient; "
                f"spikes need at least {2 * rules.edge_samples + rules.clip_samples}. Simulate longer."
            )
        if self.batch_size < 1:
            raise BrainForgeError("batch_size must be >= 1.")

    @property
    def n_steps(self) -> int:
        """Integration steps per simulation."""
        return n_integration_steps(self.duration_ms, self.dt_ms)

    @property
    def n_times(self) -> int:
        """Samples of a run after dropping the transient and downsampling."""
        rules = self.rules()
        return (self.n_steps - rules.transient_samples + rules.downsample - 1) // rules.downsample

    @property
    def transient_ms(self) -> float:
        """Simulated time that spike extraction drops (1000 integration steps)."""
        return 1000 * self.dt_ms

    def rules(self) -> SpikeRules:
        """Return the published rules, downsampling to 500 Hz (factor 4 at dt 0.5 ms, 2 at dt 1 ms)."""
        return SpikeRules(
            threshold=self.threshold, downsample=max(1, round(2.0 / self.dt_ms)), alignment=self.alignment
        )

    def params(self, conn: Connectivity) -> JansenRitParams:
        """Model constants, with the coupling normalized when asked for."""
        if not self.normalize_coupling:
            return JansenRitParams()
        in_strength = np.asarray(conn.weights).sum(axis=1)
        if self.normalize_coupling == "max":
            return JansenRitParams(coupling_a=DEEPSIF_998_MAX_IN_STRENGTH / float(in_strength.max()))
        return JansenRitParams(coupling_a=DEEPSIF_998_MEAN_IN_STRENGTH / float(in_strength.mean()))

    def metadata(self, conn: Connectivity) -> dict:
        """Everything that defines the library's content (checked on resume)."""
        from .. import __version__

        connectome = self.connectome  # a file as an absolute path: the library is read from other folders
        if is_connectome_file(connectome):
            connectome = str(Path(connectome).resolve())
        return {
            "connectome": connectome,
            "n_nodes": conn.n_nodes,
            "labels": list(conn.labels),
            "centres": np.asarray(conn.centres, float).round(3).tolist(),
            "engine": self.engine,
            "duration_ms": self.duration_ms,
            "dt_ms": self.dt_ms,
            "settings": [list(s) for s in self.settings],
            "seed": self.seed,
            "params": asdict(self.params(conn)),
            "rules": asdict(self.rules()),
            "n_background": self.n_background,
            "sfreq_hz": 1000.0 / (self.dt_ms * self.rules().downsample),
            "package_version": __version__,
        }


def job_seed(seed: int, node: int, setting: int) -> int:
    """Seed of one simulation, independent of batching and scheduling."""
    return int(np.random.SeedSequence([seed, node, setting]).generate_state(1)[0])


def parse_nodes(text: str | None, n_nodes: int) -> list[int]:
    """Parse ``"0-9,15,20"`` into node indices (all nodes when empty)."""
    if not text:
        return list(range(n_nodes))
    nodes: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                nodes.extend(range(lo, hi + 1))
            elif part:
                nodes.append(int(part))
        except ValueError as err:
            raise BrainForgeError(f"Cannot read regions {text!r}: use a list like 0-9,15,20.") from err
        if "-" in part and lo > hi:
            raise BrainForgeError(f"Regions {part}: give the range low end first, as in 0-9.")
    if not nodes:
        raise BrainForgeError(f"Regions {text!r} name no region: use a list like 0-9,15,20, or leave it out for all.")
    bad = [n for n in nodes if not 0 <= n < n_nodes]
    if bad:
        raise BrainForgeError(f"Regions {bad[:5]} are outside the connectome's 0..{n_nodes - 1}.")
    return sorted(set(nodes))


def _background_start(config: CampaignConfig) -> int:
    return config.n_times // 2 - config.rules().clip_samples // 2


def background_stride(n_jobs: int, n_background: int, n_settings: int) -> int:
    """Return the step between jobs that keep a background window (0: none).

    Jobs run node by node, each node under every setting in turn, so a step
    sharing a factor with ``n_settings`` would take every window from some of
    the settings only; the step is lengthened until it shares none.
    """
    if not n_background:
        return 0
    stride = max(1, n_jobs // n_background)
    while math.gcd(stride, n_settings) > 1:  # coprime: consecutive picks step through every setting
        stride += 1
    return stride


def run_jobs(config: dict, jobs: Sequence[tuple[int, int, bool]], out: str) -> list[dict]:
    """Simulate a batch of jobs, extract their spikes while simulating, write each job.

    Runs on a Dask worker (or in-process). ``jobs`` holds ``(node,
    setting, keep_background)``. Returns one summary per job.
    """
    config_obj = CampaignConfig(**{**config, "settings": tuple(tuple(s) for s in config["settings"])})
    conn = read_connectivity(config_obj.connectome)
    rules = config_obj.rules()
    start = time.perf_counter()
    extractors = [
        StreamingSpikeExtractor(conn.n_nodes, node, rules, [_background_start(config_obj)] if keep else [])
        for node, _, keep in jobs
    ]
    nodes = [node for node, _, _ in jobs]
    mus = [config_obj.settings[s][0] for _, s, _ in jobs]
    factors = [config_obj.settings[s][1] for _, s, _ in jobs]
    seeds = [job_seed(config_obj.seed, node, s) for node, s, _ in jobs]
    params = config_obj.params(conn)
    if config_obj.engine == "fast":
        from .engine import FastJansenRit

        engine = FastJansenRit(conn, config_obj.dt_ms, params=params, block=config_obj.batch_size)
        chunk_steps = max(1, round(config_obj.chunk_ms / config_obj.dt_ms))
        chunks = engine.simulate(
            nodes, mus, factors, config_obj.duration_ms, seeds=seeds, chunk_steps=chunk_steps, reuse_output=True
        )
        for chunk in chunks:
            for lane, extractor in enumerate(extractors):
                extractor.feed(chunk[:, :, lane])
    else:
        from .tvb_backend import simulate_tvb

        for lane, extractor in enumerate(extractors):
            for chunk in simulate_tvb(
                conn, nodes[lane], mus[lane], factors[lane], config_obj.duration_ms,
                dt_ms=config_obj.dt_ms, params=params, seed=seeds[lane],
                chunk_ms=config_obj.chunk_ms,
            ):  # fmt: skip
                extractor.feed(chunk)
    seconds = (time.perf_counter() - start) / len(jobs)
    results = []
    for (node, setting, _), extractor, seed in zip(jobs, extractors, seeds, strict=True):
        spikes, background = extractor.finish()
        nbytes = write_job(
            out, node, setting, spikes.waveforms, spikes.peak_times, spikes.peak_amplitudes, background,
            {"mu": config_obj.settings[setting][0], "noise_factor": config_obj.settings[setting][1],
             "seed": seed, "n_spikes": len(spikes), "n_times": spikes.n_times, "seconds": seconds,
             "machine": compute_target(config_obj.engine)},
        )  # fmt: skip
        results.append({"node": node, "setting": setting, "n_spikes": len(spikes), "bytes": nbytes})
    return results


@dataclass
class CampaignSummary:
    """What a campaign produced.

    Attributes
    ----------
    spikes_per_node : array of int, shape (n_nodes,)
        Spikes in the library per node (all settings).
    nodes_without_spikes : list of int
        Requested nodes that produced no spike.
    jobs_run, jobs_skipped : int
        Jobs simulated now, and finished jobs found from an earlier run.
    wall_seconds : float
        Wall time of this call.
    bytes_on_disk : int
        Size of the library folder.
    """

    spikes_per_node: np.ndarray
    nodes_without_spikes: list[int]
    jobs_run: int
    jobs_skipped: int
    wall_seconds: float
    bytes_on_disk: int
    requested_nodes: list[int] = field(default_factory=list)

    @property
    def spike_yield(self) -> float:
        """Fraction of requested nodes with at least one spike."""
        if not self.requested_nodes:
            return 0.0
        return 1.0 - len(self.nodes_without_spikes) / len(self.requested_nodes)

    def as_dict(self) -> dict:
        """JSON-friendly summary."""
        counts = self.spikes_per_node[self.requested_nodes] if self.requested_nodes else self.spikes_per_node
        return {
            "nodes": len(self.requested_nodes),
            "jobs_run": self.jobs_run,
            "jobs_skipped": self.jobs_skipped,
            "spikes": int(counts.sum()),
            "spikes_per_node_mean": round(float(counts.mean()), 2) if len(counts) else 0.0,
            "nodes_with_spikes_fraction": round(self.spike_yield, 4),
            "nodes_without_spikes": len(self.nodes_without_spikes),
            "wall_seconds": round(self.wall_seconds, 1),
            "bytes_on_disk": self.bytes_on_disk,
        }


def _batches(todo: list[tuple[int, int, bool]], size: int) -> list[list[tuple[int, int, bool]]]:
    return [todo[i : i + size] for i in range(0, len(todo), size)]


@verbose
def run_campaign(
    config: CampaignConfig,
    out: str | Path,
    *,
    nodes: Sequence[int] | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    verbose: bool | str | int | None = None,
) -> CampaignSummary:
    """Simulate every requested node under every setting and build a spike library.

    Parameters
    ----------
    config : CampaignConfig
        What to simulate.
    out : path
        The library folder (``.zarr``). Rerunning with the same config skips
        finished jobs; an interrupt loses nothing finished.
    nodes : list of int | None
        Stimulated nodes (all by default).
    scheduler : str | None
        None: a local Dask cluster with one single-threaded worker per core.
        ``"sync"``: in this process, one batch after another (numba uses all
        cores). Otherwise the address of a Dask scheduler
        (``tcp://host:8786``) whose workers can import BrainForge and read
        ``out``.
    progress : bool
        Show a progress bar.
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    summary : CampaignSummary
    """
    from tqdm.auto import tqdm

    from .library import read_spike_library

    start = time.perf_counter()
    conn = read_connectivity(config.connectome)
    nodes = list(range(conn.n_nodes)) if nodes is None else [int(n) for n in nodes]
    # Absolute paths: Dask workers on other machines resolve relative ones against their own folder.
    out = init_library(Path(out).resolve(), config.metadata(conn))
    done = set(finished_jobs(out))
    all_jobs = [(node, s) for node in nodes for s in range(len(config.settings))]
    stride = background_stride(len(all_jobs), config.n_background, len(config.settings))
    todo = [
        (node, s, bool(stride) and k % stride == 0)
        for k, (node, s) in enumerate(all_jobs)
        if job_name(node, s) not in done
    ]
    size = config.batch_size if config.engine == "fast" else 1
    if config.engine == "fast" and scheduler == "sync":
        # In-process, one call integrates a block of batch_size per thread, blocks in parallel:
        # every core works (a simulation's result does not depend on its batch or block).
        import numba

        size = sync_call_size(size, numba.get_num_threads(), round(config.chunk_ms / config.dt_ms), conn.n_nodes)
    batches = _batches(todo, size)
    config_dict = asdict(config)
    if is_connectome_file(config.connectome):
        config_dict["connectome"] = str(Path(config.connectome).resolve())
    bar = tqdm(total=len(todo), desc="simulating", unit="sim", disable=not progress or not todo)
    if batches and scheduler == "sync":
        for batch in batches:
            run_jobs(config_dict, batch, str(out))
            bar.update(len(batch))
    elif batches:
        _run_with_dask(config_dict, batches, str(out), scheduler, bar)
    bar.close()
    library = read_spike_library(out)
    counts = library.spikes_per_node()
    return CampaignSummary(
        spikes_per_node=counts,
        nodes_without_spikes=[n for n in nodes if counts[n] == 0],
        jobs_run=len(todo),
        jobs_skipped=len(all_jobs) - len(todo),
        wall_seconds=time.perf_counter() - start,
        bytes_on_disk=sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file()),
        requested_nodes=nodes,
    )


def _run_with_dask(config: dict, batches, out: str, scheduler: str | None, bar) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler is None:
        cluster = LocalCluster(
            n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
            dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"},
        )  # fmt: skip
        client = Client(cluster)
    else:
        cluster = None
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, ValueError, TypeError) as err:  # unreachable, or not an address
            raise BrainForgeError(
                f"--scheduler {scheduler}: no Dask scheduler answers there ({type(err).__name__}: {err}); give "
                "the address a running `dask scheduler` prints (tcp://HOST:8786), sync, or leave it out for a "
                "local cluster."
            ) from err
    try:
        futures = [client.submit(run_jobs, config, batch, out, pure=False) for batch in batches]
        for future in as_completed(futures):
            bar.update(len(future.result()))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


#: The template library: tvb-data's 76-node connectome (coupling normalized to
#: the 998 connectome's strength), every node x DeepSIF's 3 settings x 20 s.
DEFAULT_LIBRARY_CONFIG = CampaignConfig(
    connectome="tvb76", duration_ms=20_000.0, normalize_coupling=True, n_background=16
)


@verbose
def default_spike_library(
    *,
    scheduler: str | None = "sync",
    progress: bool = False,
    verbose: bool | str | int | None = None,
) -> Path:
    """Return the default spike library, building it in the cache on first use (about a minute).

    Parameters
    ----------
    scheduler : str | None
        As in :func:`run_campaign` (in-process by default).
    progress : bool
        Show a progress bar while building.
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    path : Path
        The library folder; read it with :func:`~brainforge.nmm.read_spike_library`.
    """
    from .._cache import get_cache_dir, hash_inputs

    settings = asdict(DEFAULT_LIBRARY_CONFIG)
    # Hashed under the field's earlier name, so libraries cached before the rename are found.
    settings["normalise_coupling"] = settings.pop("normalize_coupling")
    key = hash_inputs("spike-library-2", settings)
    out = get_cache_dir() / "spikes" / f"tvb76-{key}.zarr"
    out.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time (two `brainforge` processes, or ranks started together, on an empty cache):
    # the others wait, then find every job done.
    try:
        lock = open(out.parent / f"{out.name}.lock", "w")  # held across the build
    except OSError:  # a cache the user may read but not write: a finished library needs no lock
        lock = None
    try:
        if lock is not None and fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        run_campaign(DEFAULT_LIBRARY_CONFIG, out, scheduler=scheduler, progress=progress)
    finally:
        if lock is not None:
            lock.close()
    return out
