"""Train a network with Lightning: resumable, early-stopped, exported as safetensors + JSON."""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping

from .. import __version__
from .._cache import atomic_path
from .._errors import BrainForgeError
from .._logging import verbose
from ..models import ChannelCountRouter, ChannelCountRouterConfig, build_model, load_weights, save_model
from ..synthesis import SampleGenerator
from ..topomap import Montage
from .checkpoint_io import SafetensorsCheckpointIO
from .config import TrainingConfig
from .data import SyntheticDataModule, refuse_empty_validation_shares
from .module import SourceLocalizer

logger = logging.getLogger("brainforge")


class _DropAdverts(logging.Filter):
    """Lightning advertises a cloud logger on every run; keep its useful lines only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_DropAdverts())

#: Resumable state, relative to the run folder.
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
#: The run's settings, written when it starts (``--resume`` reads them back).
RUN_FILE = "run.json"


@dataclass
class TrainingResult:
    """What a training run produced.

    Attributes
    ----------
    out_dir : Path
        Run folder: ``model.safetensors`` + ``config.json`` (best model),
        ``checkpoints/last.ckpt`` (resume), ``logs/`` (CSV), ``run.json``.
    best_metrics : dict
        Validation metrics of the exported model.
    epochs : int
        Whole epochs over all sessions of the run: epochs that a time or CPU
        budget cut part-way (``cut_epochs``) are left out.
    model : SourceModel
        The trained network (best weights, eval mode).
    global_step : int
        Optimizer steps taken over all sessions of the run.
    cpu_seconds : float | None
        CPU time spent over all sessions (main process and its data workers;
        under DDP, all ranks' as of the last step), when ``max_cpu_time``
        measured it.
    stopped_by : str
        ``"max_epochs"``, ``"early_stopping"``, ``"max_time"`` or ``"max_cpu_time"``.
    partial_epoch : tuple of (int, int) | None
        When a time or CPU budget stopped this session inside an epoch: the
        steps that epoch took and the steps of a whole one (Lightning ends,
        validates and checkpoints it as if it were whole). None when this
        session's last epoch ran to its end, or it took no step.
    cut_epochs : tuple of (int, int, int)
        Every epoch of the run, this session's and earlier ones', that a
        budget cut part-way: its index, the steps it took, the steps of a
        whole one (:class:`CutEpochRecord`, kept in the checkpoint).
    """

    out_dir: Path
    best_metrics: dict
    epochs: int
    model: object
    global_step: int = 0
    cpu_seconds: float | None = None
    stopped_by: str = "max_epochs"
    partial_epoch: tuple[int, int] | None = None
    cut_epochs: tuple[tuple[int, int, int], ...] = ()


class ExportBestModel(Callback):
    """Write the release checkpoint (safetensors + JSON) whenever validation improves.

    A fine-tune scores its starting model first (``trainer.validate``, recorded
    as epoch -1 and exported as it is): an epoch is exported only if it beats
    the model it started from, so a run whose every epoch is worse than its
    start hands back the start, and says so.
    """

    def __init__(self, out_dir: Path, info: dict, monitor: str):
        self.out_dir = Path(out_dir)
        self.info = info
        self.monitor = monitor
        self.best: float = float("inf")
        self.best_metrics: dict = {}

    def on_validation_end(self, trainer: pl.Trainer, module: SourceLocalizer) -> None:
        """Export when the monitored metric improved (rank 0 only)."""
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if not value < self.best:
            return
        self.best = value
        starting_model = trainer.state.fn == "validate"
        self.best_metrics = {
            **{k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")},
            "epoch": -1 if starting_model else trainer.current_epoch,
            "global_step": trainer.global_step,
        }
        if trainer.is_global_zero:
            save_model(module.model, self.out_dir, {**self.info, "metrics": self.best_metrics})

    def state_dict(self) -> dict:
        """Best score so far (survives resume)."""
        return {"best": self.best, "best_metrics": self.best_metrics}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.best = float(state["best"])
        self.best_metrics = dict(state["best_metrics"])


class EpochCheckpoint(Checkpoint):
    """Write the resumable state to ``path`` at the end of every epoch (after its validation), atomically.

    Lightning's ``ModelCheckpoint(save_top_k=0, save_last=True)`` writes
    ``last.ckpt`` only when training ends, so a killed run could not resume.
    Being a :class:`~lightning.pytorch.callbacks.Checkpoint`, this callback runs
    after the others (early stopping, export), so their state is in the file.
    The file is written to a temporary name and renamed
    (:class:`SafetensorsCheckpointIO`), so a kill during the write leaves the
    previous epoch's state intact.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Save the state of the epoch that just ended."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Optimizer state included; said explicitly, so Lightning does not log its default every epoch.
        trainer.save_checkpoint(self.path, weights_only=False)


class CutEpochRecord(Callback):
    """Record the epochs that a budget cut part-way, in the checkpoint, so that the record spans resumes.

    Lightning ends an epoch stopped part-way as if it were whole and the run
    resumes at the next one, so its epoch count alone cannot tell a cut epoch
    from a whole one once a session has ended.
    """

    def __init__(self):
        self.cut_epochs: list[tuple[int, int, int]] = []  # over all sessions (saved in the checkpoint)
        self.cut_this_session: tuple[int, int] | None = None  # steps taken, steps of a whole epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Note the epoch that just ended if it took fewer steps than a whole one (before its checkpoint)."""
        partial = _partial_epoch(trainer)
        if partial is not None:
            self.cut_epochs.append((trainer.current_epoch, *partial))
            self.cut_this_session = partial

    def state_dict(self) -> dict:
        """Return the cut epochs so far: index, steps taken, steps of a whole epoch."""
        return {"cut_epochs": [list(cut) for cut in self.cut_epochs]}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (a checkpoint written before this record holds none)."""
        self.cut_epochs = [tuple(int(v) for v in cut) for cut in state.get("cut_epochs", [])]


def process_cpu_seconds(exclude_pids: Collection[int] = ()) -> float:
    """CPU time (user + system, s) of this process and its descendants, live or waited for.

    DataLoader workers make the samples; their time is part of what training
    costs. A descendant that has ended counts through the process that waited
    for it, while that one is still here: a distributed run's workers are
    children of its forkserver (:func:`~brainforge.synthesis.dataset.worker_start_method`),
    not of the training process.

    Parameters
    ----------
    exclude_pids : collection of int
        Leave out these descendants and everything below them: under DDP,
        the other ranks that this rank launched (counted by their own rank).

    Returns
    -------
    seconds : float
    """
    import psutil

    def own_and_waited(times) -> float:
        return times.user + times.system + times.children_user + times.children_system

    process = psutil.Process()
    total = own_and_waited(process.cpu_times())
    below = process.children()
    while below:
        child = below.pop()
        if child.pid in exclude_pids:
            continue
        try:
            total += own_and_waited(child.cpu_times())
            below.extend(child.children())
        except psutil.Error:  # ended between the listing and the query
            continue
    return total


def _launched_rank_pids(trainer: pl.Trainer) -> set[int]:
    """Return the process ids of the ranks this process launched (Lightning starts ranks 1.. from rank 0)."""
    return {proc.pid for proc in getattr(trainer.strategy.launcher, "procs", None) or ()}


def _cpu_process_group():
    """Return a new gloo process group of all ranks, for sums of CPU tensors beside the training's own group.

    Every rank must call it, in the same order. A group of its own, even where
    training's is gloo too, so that one code path serves CPUs and GPUs.
    """
    import torch.distributed as dist

    return dist.new_group(backend="gloo")


class StepBudget(Callback):
    """Stop training once a budget of seconds is spent, checked about once per ``check_interval_s`` of wall time.

    The base of :class:`CpuTimeBudget` and :class:`WallTimeBudget`; a subclass
    says what this rank has spent this session (:meth:`_rank_spent`) and how
    the ranks' amounts combine (:meth:`_combine_ranks`). Under DDP the ranks
    add up what they spent and their wall times per step at each check (one
    all-reduce, on the CPU through a gloo group of their own, so on GPUs it
    does not wait for the device's queue), so all of them see one total and
    stop at the same step: a rank that stopped alone would leave the others
    waiting forever at their next gradient synchronization.

    A check costs about 2 ms with two data workers
    (``benchmarks/cpu_budget_check.py``): nothing beside a CPU step of seconds,
    but a few per cent of a GPU step of tens of ms. So each check sets the
    step of the next from the wall time per step since the last one (under
    DDP the ranks' mean, the same on every rank, so all of them check at the
    same steps). The budget is overshot by what the steps planned at the last
    check spend, about ``check_interval_s`` at the pace then measured (more
    where steps then slow down, for example while an epoch's new workers
    start).

    Parameters
    ----------
    max_seconds : float
        The budget, s.
    check_interval_s : float
        Wall time between checks to aim for, s (0: check at every step).
    """

    def __init__(self, max_seconds: float, check_interval_s: float = 1.0):
        self.max_seconds = float(max_seconds)
        self.check_interval_s = float(check_interval_s)
        self.used_before = 0.0
        self._session_start: float | None = None  # this rank's clock at the session's start (set by _start)
        self._distributed = False
        self._group = None  # under DDP: a gloo group of the ranks, for the CPU-side sum
        self._session_total = 0.0  # under DDP: this session's amount over all ranks, at the last check
        self._last_check = (0, 0.0)  # global step and wall clock (perf_counter, s) of the last check
        self.next_check_step = 0
        self.exhausted = False

    def _start(self, trainer: pl.Trainer) -> None:
        """Start this rank's count for the session: set ``_session_start``."""
        raise NotImplementedError

    def _rank_spent(self) -> float:
        """Return what this rank has spent this session, s."""
        raise NotImplementedError

    def _combine_ranks(self, total: float, world_size: int) -> float:
        """Return the run's amount this session from the ranks' ``total``."""
        raise NotImplementedError

    @property
    def used(self) -> float:
        """Seconds used so far by the run (under DDP: by all its ranks together, as of the last check)."""
        if self._session_start is None:
            return self.used_before
        if self._distributed:
            return self.used_before + self._session_total
        return self.used_before + self._rank_spent()

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Start this session's count (a resumed run may hold ``used_before`` from its checkpoint)."""
        self._distributed = trainer.world_size > 1
        if self._distributed:
            self._group = _cpu_process_group()
        self._start(trainer)
        self._last_check = (trainer.global_step, time.perf_counter())
        self._check(trainer)

    def on_train_batch_end(self, trainer: pl.Trainer, module, outputs, batch, batch_idx: int) -> None:
        """Stop when the budget is spent (checked about once per ``check_interval_s``)."""
        if trainer.global_step >= self.next_check_step:
            self._check(trainer)

    def _check(self, trainer: pl.Trainer) -> None:
        """Stop every rank at the same step once the run has spent the budget; plan the next check."""
        step, now = trainer.global_step, time.perf_counter()
        last_step, last_time = self._last_check
        seconds_per_step = max((now - last_time) / (step - last_step), 1e-9) if step > last_step else float("inf")
        if self._distributed:
            import torch.distributed as dist

            values = torch.tensor([self._rank_spent(), min(seconds_per_step, 1e9)], dtype=torch.float64)
            dist.all_reduce(values, op=dist.ReduceOp.SUM, group=self._group)
            self._session_total = self._combine_ranks(float(values[0]), trainer.world_size)
            seconds_per_step = float(values[1]) / trainer.world_size
        if self.used >= self.max_seconds:
            self.exhausted = True
            trainer.should_stop = True
        self._last_check = (step, now)
        self.next_check_step = step + max(1, int(self.check_interval_s / seconds_per_step))

    def teardown(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        """Release the gloo group of a DDP run."""
        self._release_group()

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException) -> None:
        """Release the gloo group when training raised (Lightning then skips ``teardown``)."""
        self._release_group()

    def _release_group(self) -> None:
        if self._group is not None:
            import torch.distributed as dist

            dist.destroy_process_group(self._group)
            self._group = None


class CpuTimeBudget(StepBudget):
    """Stop training once the run has used ``max_seconds`` of CPU time, over all its sessions and ranks.

    Unlike :class:`WallTimeBudget`, the budget is cumulative: the CPU time used
    so far is saved in the checkpoint and a resumed run only gets the rest. CPU
    time, not wall time, so that runs that share a machine with other work get
    the same budget (on two cores, one wall minute of training is up to two
    CPU minutes). Under DDP the ranks' times (with their workers') are summed.
    Checks as :class:`StepBudget` says.

    Parameters
    ----------
    max_seconds : float
        CPU-time budget of the whole run, s.
    check_interval_s : float
        Wall time between checks to aim for, s (0: check at every step).
    """

    _launched: Collection[int] = frozenset()

    def _start(self, trainer: pl.Trainer) -> None:
        self._launched = _launched_rank_pids(trainer)
        self._session_start = process_cpu_seconds(self._launched)

    def _rank_spent(self) -> float:
        return process_cpu_seconds(self._launched) - self._session_start

    def _combine_ranks(self, total: float, world_size: int) -> float:
        return total

    def state_dict(self) -> dict:
        """CPU seconds used so far (saved in the checkpoint)."""
        return {"cpu_seconds": self.used}

    def load_state_dict(self, state: dict) -> None:
        """Restore the CPU seconds used before a resume."""
        self.used_before = float(state["cpu_seconds"])


class WallTimeBudget(StepBudget):
    """``--max-time``: stop training once this invocation has trained for ``max_seconds`` of wall time.

    The budget is per invocation: a resumed run gets it whole again (Lightning's
    own ``Timer`` restores the time spent from the checkpoint, so a run resumed
    with ``--max-time 01:20`` after 80 minutes stopped at once). The clock
    starts when training starts (after a fine-tune scores its starting model).
    Under DDP the ranks' clocks are averaged, so all of them stop at the same
    step. Lightning's ``Timer`` broadcast its decision from rank 0 at every
    step; this budget checks as :class:`StepBudget` says, about once a second.

    Parameters
    ----------
    max_seconds : float
        Wall-time budget of this invocation's training, s.
    check_interval_s : float
        Wall time between checks to aim for, s (0: check at every step).
    """

    def _start(self, trainer: pl.Trainer) -> None:
        self._session_start = time.perf_counter()

    def _rank_spent(self) -> float:
        return time.perf_counter() - self._session_start

    def _combine_ranks(self, total: float, world_size: int) -> float:
        return total / world_size


def _make_trainer(**options) -> pl.Trainer:
    """Return ``pl.Trainer(**options)``; an accelerator or device count Lightning refuses stops on one line."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return pl.Trainer(**options)
    except (MisconfigurationException, ValueError) as err:
        reason = " ".join(str(err).split())
        raise BrainForgeError(
            f"--accelerator {options['accelerator']} --devices {options['devices']}: {reason} "
            "(choose --accelerator auto, cpu or gpu and --devices auto or a count)."
        ) from err


def parse_cpu_time(text: str) -> float:
    """``--max-cpu-time``'s ``HH:MM`` of CPU time to seconds."""
    return _budget_seconds(text, "--max-cpu-time", lightning_form=False)


#: What a run folder holds besides logs: found without --resume or --overwrite, training stops.
RUN_OUTPUTS = (RUN_FILE, str(LAST_CHECKPOINT), "model.safetensors", "config.json")


def prepare_run_folder(out_dir: Path, resume: bool, overwrite: bool, check_only: bool = False) -> None:
    """Check that ``out_dir`` may be used: resume needs a checkpoint, a fresh run an empty folder.

    Parameters
    ----------
    out_dir : Path
        The run folder.
    resume : bool
        Continue the run in it.
    overwrite : bool
        Delete an earlier run's outputs (checkpoints, logs, model, settings) first.
    check_only : bool
        Only check (the command line does, before the data are built); delete nothing.
    """
    import shutil

    if resume and overwrite:
        raise BrainForgeError("--resume and --overwrite exclude each other; pick one.")
    if out_dir.exists() and not out_dir.is_dir():
        raise BrainForgeError(f"--out {out_dir} is a file, not a folder; choose a folder for the run.")
    last = out_dir / LAST_CHECKPOINT
    if resume:
        if not last.is_file():
            why = " (it stopped before its first epoch ended)" if (out_dir / RUN_FILE).is_file() else ""
            raise BrainForgeError(
                f"Nothing to resume in {out_dir}{why}: no {LAST_CHECKPOINT}; "
                "drop --resume to start (add --overwrite if the folder holds an earlier run)."
            )
        return
    found = [name for name in RUN_OUTPUTS if (out_dir / name).exists()]
    if not found:
        return
    if not overwrite:
        raise BrainForgeError(
            f"{out_dir} already holds a training run ({', '.join(found)}); pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out."
        )
    if check_only:
        return
    for name in (*RUN_OUTPUTS, "checkpoints", "logs"):
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def _global_rank() -> int:
    """Return the global rank the DDP launcher put in the environment (0 outside DDP)."""
    import os

    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):  # Lightning's order
        if os.environ.get(key) is not None:
            return int(os.environ[key])
    return 0


def parse_max_time(text: str) -> float:
    """``--max-time``'s ``HH:MM`` (or Lightning's ``DD:HH:MM:SS``) to seconds."""
    return _budget_seconds(text, "--max-time", lightning_form=True)


def _budget_seconds(text: str, option: str, lightning_form: bool) -> float:
    """``HH:MM`` (and, with ``lightning_form``, ``DD:HH:MM:SS``) to seconds; more than zero, no negative part."""
    try:
        numbers = [int(part) for part in text.split(":")]
    except ValueError:
        numbers = []
    if len(numbers) == 2:
        numbers = [0, *numbers, 0]
    elif not lightning_form:
        numbers = []
    seconds = 86400 * numbers[0] + 3600 * numbers[1] + 60 * numbers[2] + numbers[3] if len(numbers) == 4 else -1
    if seconds <= 0 or min(numbers) < 0:
        raise BrainForgeError(f"{option} takes HH:MM (more than zero), got {text!r}.")
    return float(seconds)


def head_model_info(head) -> dict:
    """JSON description of a head model: enough to rebuild a template one and to check region counts."""
    return {
        "description": head.description,
        "n_regions": head.n_regions,
        "n_deep_regions": head.n_deep_regions,
        "n_channels": head.n_channels,
        "config": None if head.config is None else asdict(head.config),
    }


def _run_info(generator: SampleGenerator, config: TrainingConfig, loss: str, provenance: dict | None) -> dict:
    library = generator.library
    return {
        "head_model": head_model_info(generator.head),
        "montage_handling": {
            "training_subsets": config.montage_subsets,
            "note": "map-based models accept any montage; the others need the training channels",
        },
        "data": {
            "synthesis": asdict(generator.config),
            "library": {k: library.metadata.get(k) for k in ("connectome", "n_nodes", "engine", "seed", "path")},
            "seed": config.seed,
            "sfreq_hz": generator.sfreq,
            "segment_samples": int(library.background.shape[1]),
            "forward_bank": None if generator.forward_bank is None else asdict(generator.forward_bank.config),
        },
        "training": {**config.to_dict(), "loss": loss},
        "brainforge_version": __version__,
        **(provenance or {}),
    }


def read_run_record(
    out_dir: Path, required: tuple[str, ...] = (), fix: str = "restore it, or start the run afresh with --overwrite"
) -> dict:
    """Return a run folder's record (``run.json``); a damaged one, or one lacking ``required`` keys, stops here.

    ``fix`` ends the message: what the caller's user can do.
    """
    run_file = Path(out_dir) / RUN_FILE
    try:
        run = json.loads(run_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        run = err
    missing = [key for key in required if key not in run] if isinstance(run, dict) else list(required)
    if not isinstance(run, dict) or missing:
        why = f"it lacks {', '.join(missing)}" if isinstance(run, dict) else f"it is not a JSON object: {run}"
        raise BrainForgeError(f"{run_file} is damaged ({why}); {fix}.")
    return run


def _check_resumed_model(out_dir: Path, model_name: str, params: dict) -> None:
    """Stop on one line when a resume asks for another network than the run in ``out_dir`` trains."""
    run_file = out_dir / RUN_FILE
    if not run_file.is_file():
        return
    run = read_run_record(out_dir, fix="restore it, or train into a new folder (or overwrite=True)")
    stored = (run.get("model"), run.get("model_params") or {})
    current = json.loads(json.dumps(params, default=str))
    # Only the parameters the run recorded: one added to the model later takes its default.
    if stored[0] != model_name or any(current.get(key, object()) != value for key, value in stored[1].items()):
        raise BrainForgeError(
            f"{out_dir} trains {stored[0]} with {stored[1]}, not {model_name} with {params}; resume it with its own "
            "model and parameters (`brainforge train --resume` reads them from run.json)."
        )


def refuse_router_training(model_name: str) -> None:
    """Stop with a one-line error when asked to train a :class:`~brainforge.models.ChannelCountRouter`."""
    if model_name == ChannelCountRouter.name:
        raise BrainForgeError(
            f"{model_name} combines networks trained apart: train each with --model "
            f"{ChannelCountRouterConfig.member}, then combine them with scripts/combine_by_channel_count.py."
        )


@verbose
def train(
    model_name: str,
    generator: SampleGenerator,
    out_dir: str | Path,
    config: TrainingConfig | None = None,
    *,
    model_params: dict | None = None,
    init: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_time: str | None = None,
    max_cpu_time_s: float | None = None,
    provenance: dict | None = None,
    accelerator: str = "auto",
    devices: int | str = "auto",
    progress: bool = True,
    verbose: bool | str | int | None = None,
) -> TrainingResult:
    """Train ``model_name`` on on-the-fly samples of ``generator``.

    Parameters
    ----------
    model_name : str
        ``cnn_transformer``, ``deepsif``, ``convdip`` or ``gru``.
    generator : SampleGenerator
        Head model + spike library + synthesis parameters.
    out_dir : path
        Run folder.
    config : TrainingConfig | None
        Training settings.
    model_params : dict | None
        Hyper-parameters of the model (its config dataclass fields).
    init : path | None
        Fine-tune: start from this model folder's weights (tensors whose shape
        changed, e.g. the output layer of another head model, start fresh).
    resume : bool
        Continue from ``out_dir/checkpoints/last.ckpt`` (written atomically
        after every epoch, so a killed run resumes from its last whole epoch).
    overwrite : bool
        Replace an earlier run in ``out_dir``; without it (or ``resume``) a
        folder that holds one is refused.
    max_time : str | None
        Wall-clock budget of this call, ``HH:MM`` (a resumed run gets the
        whole budget again).
    max_cpu_time_s : float | None
        CPU-time budget of the whole run, s, counted across resumes
        (:class:`CpuTimeBudget`): the way to give several networks equal budgets.
    provenance : dict | None
        Extra JSON stored in the exported config (e.g. the CLI's head spec).
    accelerator, devices
        Lightning's; several GPUs train with DDP.
    progress : bool
        Show a progress bar.
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    result : TrainingResult
    """
    refuse_router_training(model_name)
    config = config or TrainingConfig()
    out_dir = Path(out_dir)
    last = out_dir / LAST_CHECKPOINT
    # Under DDP the launcher starts the other ranks by running the same code again, after
    # rank 0 has begun writing the folder: only rank 0 checks and prepares it.
    main_rank = _global_rank() == 0
    if main_rank:
        prepare_run_folder(out_dir, resume, overwrite)
    elif resume and not last.is_file():
        raise BrainForgeError(f"Nothing to resume in {out_dir} (no {LAST_CHECKPOINT}).")
    pl.seed_everything(config.seed, workers=True, verbose=False)
    head = generator.head
    montage = Montage.from_head_model(head)
    model = build_model(model_name, head.n_regions, montage, **(model_params or {}))
    if resume:
        _check_resumed_model(out_dir, model_name, model.hyper_parameters())
    if init is not None and not resume:
        load_weights(model, init)
    module = SourceLocalizer(model, config, head.region_distance_mm, head.region_leadfield)
    data = SyntheticDataModule(generator, config)
    info = _run_info(generator, config, module.loss_name, provenance)
    if init is not None:
        info["init"] = str(init)
    out_dir.mkdir(parents=True, exist_ok=True)
    export = ExportBestModel(out_dir, info, config.monitor)
    steps_per_epoch = -(-config.samples_per_epoch // config.batch_size)
    cpu_budget = CpuTimeBudget(max_cpu_time_s) if max_cpu_time_s is not None else None
    wall_budget = WallTimeBudget(parse_max_time(max_time)) if max_time else None
    early_stopping = EarlyStopping(config.monitor, patience=config.patience, mode="min")
    trainer = _make_trainer(
        accelerator=accelerator,
        devices=devices,
        max_epochs=config.max_epochs,
        callbacks=[
            *([wall_budget] if wall_budget else []),
            *([cpu_budget] if cpu_budget else []),
            early_stopping,
            export,
            cut_record := CutEpochRecord(),
            EpochCheckpoint(last),  # a Checkpoint: Lightning runs it after the others, so the record is saved
        ],
        plugins=[SafetensorsCheckpointIO()],
        logger=pl.loggers.CSVLogger(out_dir, name="logs"),
        reload_dataloaders_every_n_epochs=1,
        num_sanity_val_steps=0,
        gradient_clip_val=config.gradient_clip or None,
        enable_progress_bar=progress,
        enable_model_summary=False,
        default_root_dir=out_dir,
    )
    # Under DDP each rank takes its share of an epoch's steps: log within it (Lightning warns otherwise).
    trainer.log_every_n_steps = max(1, min(50, steps_per_epoch // trainer.world_size))
    refuse_empty_validation_shares(config.val_samples, trainer.world_size)  # before the other ranks start
    # Written once the trainer is made: a run refused above leaves no run.json that blocks a rerun.
    if not resume and main_rank:
        with atomic_path(out_dir / RUN_FILE) as tmp:
            tmp.write_text(
                json.dumps({"model": model_name, "model_params": model.hyper_parameters(), **info}, indent=1)
            )
    with warnings.catch_warnings():
        # Lightning suggests more workers; on two cores one worker is the right call.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*IterableDataset.*__len__.*")
        warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
        # The validation metrics are summed across ranks by SourceLocalizer itself, then logged unsynced.
        warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")
        if init is not None and not resume:
            _score_starting_model(trainer, module, data, export)
        trainer.fit(module, datamodule=data, ckpt_path=last if resume else None)
    best_model = model
    if export.best_metrics:
        from ..models import load_model

        best_model, _ = load_model(out_dir)
    if cpu_budget is not None and cpu_budget.exhausted:
        stopped_by = "max_cpu_time"
    elif wall_budget is not None and wall_budget.exhausted:
        stopped_by = "max_time"  # before early stopping: a cut epoch is still validated, and may also trigger it
    elif early_stopping.stopped_epoch > 0:
        stopped_by = "early_stopping"
    else:
        stopped_by = "max_epochs"
    return TrainingResult(
        out_dir, export.best_metrics, trainer.current_epoch - len(cut_record.cut_epochs), best_model,
        global_step=trainer.global_step, cpu_seconds=None if cpu_budget is None else cpu_budget.used,
        stopped_by=stopped_by, partial_epoch=cut_record.cut_this_session, cut_epochs=tuple(cut_record.cut_epochs),
    )  # fmt: skip


def _partial_epoch(trainer: pl.Trainer) -> tuple[int, int] | None:
    """Return the last epoch's steps and a whole epoch's when a budget stopped it part-way, else None.

    Lightning counts an epoch that a callback stopped part-way as done
    (``current_epoch`` moves on), so the steps tell the two apart.
    """
    whole = trainer.num_training_batches
    taken = trainer.fit_loop.epoch_loop.batch_progress.current.completed
    if not math.isfinite(whole) or not 0 < taken < whole:
        return None
    return int(taken), int(whole)


def _score_starting_model(trainer: pl.Trainer, module: SourceLocalizer, data, export: ExportBestModel) -> None:
    """Validate a fine-tune's starting model before its first step; ``export`` keeps it as the one to beat."""
    trainer.validate(module, datamodule=data, verbose=False)
    if export.best_metrics and trainer.is_global_zero:
        logger.info(
            f"Starting model (--init): {export.monitor} {export.best:.3f}; only an epoch that beats it is exported."
        )


def evaluate_peak_error(
    model, arrays: dict[str, np.ndarray], region_distance_mm: np.ndarray, montage: Montage | None = None
) -> np.ndarray:
    """Peak-patch error (mm) of ``model`` on dense arrays (``eeg``, ``sources``, ``active``), per sample."""
    from .metrics import peak_patch_error_mm

    model.eval()
    with torch.inference_mode():
        estimate = model(torch.as_tensor(arrays["eeg"]), montage)
        error = peak_patch_error_mm(
            estimate,
            torch.as_tensor(arrays["sources"]),
            torch.as_tensor(arrays["active"]),
            torch.as_tensor(region_distance_mm, dtype=torch.float32),
        )
    return error.numpy()
