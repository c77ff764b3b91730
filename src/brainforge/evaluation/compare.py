"""The seed's experiment: every network trained on one data recipe for one CPU budget, scored on held-out heads.

``run_comparison(config, out_dir)`` does two things, each resumable:

1. **Train** each candidate (DeepSIF, ConvDip, the dual-path GRU and the
   CNN-Transformer with linear, cubic and RBF scalp interpolation) on the same
   on-the-fly synthetic data (one :class:`~brainforge.synthesis.SynthesisConfig`,
   one forward-model bank, one training seed) until it has used
   ``cpu_budget_s`` of CPU time (:class:`~brainforge.training.train.CpuTimeBudget`,
   counted across resumes). Map-based networks train on random 16-64-channel
   subsets; fixed-montage ones (DeepSIF, GRU) on the 64 channels only.
   ``runs/LABEL/budget.json`` records what each got.
2. **Score** the trained networks beside the classical solvers on stored test
   sets from forward models outside the training bank
   (:func:`~brainforge.evaluation.heldout.write_heldout_test_sets`), with
   :func:`~brainforge.evaluation.benchmark.run_benchmark`, at 64 and 16
   channels, and write ``comparison.md`` / ``comparison.json`` (medians with
   95 % bootstrap intervals, failures, ms per segment, parameters, budget,
   samples seen) and the error-against-SNR and -channels plots.

A killed run continues where it stopped: finished candidates are skipped, an
interrupted one resumes from its last epoch with the CPU time it had left,
and stored test sets are reused.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._cache import atomic_path
from .._errors import BrainForgeError
from .._logging import verbose
from ..anatomy import ForwardBankConfig
from ..synthesis import SynthesisConfig
from ..training import TrainingConfig

logger = logging.getLogger("brainforge")


@dataclass(frozen=True)
class Candidate:
    """One network of the comparison.

    Parameters
    ----------
    label : str
        Name in the tables and of its run folder.
    model : str
        ``deepsif``, ``convdip``, ``gru`` or ``cnn_transformer``.
    params : dict
        Model hyper-parameters (its config dataclass fields); unset ones keep
        the model's defaults.
    """

    label: str
    model: str
    params: dict = field(default_factory=dict)


#: The networks of the seed's claim. The CNN-Transformer groups 10 samples into a token (50 tokens per 1-s segment).
DEFAULT_CANDIDATES = (
    Candidate("deepsif", "deepsif"),
    Candidate("convdip", "convdip"),
    Candidate("gru", "gru"),
    Candidate("cnn_transformer_linear", "cnn_transformer", {"interpolation": "linear", "samples_per_token": 10}),
    Candidate("cnn_transformer_cubic", "cnn_transformer", {"interpolation": "cubic", "samples_per_token": 10}),
    Candidate("cnn_transformer_rbf", "cnn_transformer", {"interpolation": "rbf", "samples_per_token": 10}),
)

#: The data recipe of the default model (issue 13), with 1-3 patches so that the test sets' 3-patch samples are seen.
DEFAULT_RECIPE = SynthesisConfig(n_sources=(1, 3), sensor_snr_db=(5.0, 20.0), deep_share=0.3, background_share=0.1)

#: One training setting for every network (the same loss, rate and seed, so that only the architecture differs).
DEFAULT_TRAINING = TrainingConfig(
    loss="relative_mse_cosine", learning_rate=1e-3, patience=8, seed=14, montage_subsets=(16, 64), max_epochs=1000
)


@dataclass(frozen=True)
class ComparisonConfig:
    """What is compared, on which data, for how long.

    Parameters
    ----------
    candidates : tuple of Candidate
        The networks.
    cpu_budget_s : float
        CPU time each network trains for (main process + data worker), s.
    recipe : SynthesisConfig
        Training data, the same for every network.
    training : TrainingConfig
        Training settings, the same for every network (``montage_subsets``
        applies to map-based networks only).
    forward_bank : ForwardBankConfig | None
        Each training sample's forward model is drawn from this bank; None
        trains on the template head alone.
    montage : str
        Template montage of the training head (and of the held-out sets).
    n_regions : int
        Cortical regions of the template head.
    classical : tuple of str
        Classical solvers scored beside the networks.
    references : tuple of str
        Trained-model folders scored beside them as references outside the
        equal budget (for example the bundled default model); their rows
        show "-" for the training budget and samples seen.
    test_sets : tuple of str | None
        Stored test sets to score on; None writes the held-out-forward sets
        (:data:`~brainforge.evaluation.heldout.DEFAULT_HELDOUT_FORWARDS`) into
        ``OUT/test_sets``.
    test_samples : int
        Samples per held-out forward model (when ``test_sets`` is None).
    test_sources : (int, int)
        Patches per held-out sample.
    test_deep_share : float
        Share of held-out patches on deep regions.
    test_seed : int
        Seed of the held-out sets and of the bootstrap.
    channel_counts : tuple of int
        10-10 subsets also scored (fixed-montage networks are scored on the
        full montage only).
    n_bootstrap : int
        Bootstrap resamples of each 95 % interval.
    """

    candidates: tuple[Candidate, ...] = DEFAULT_CANDIDATES
    cpu_budget_s: float = 1500.0
    recipe: SynthesisConfig = DEFAULT_RECIPE
    training: TrainingConfig = DEFAULT_TRAINING
    forward_bank: ForwardBankConfig | None = field(default_factory=ForwardBankConfig)
    montage: str = "1010-64"
    n_regions: int = 1000
    classical: tuple[str, ...] = ("sloreta", "eloreta", "lcmv")
    references: tuple[str, ...] = ()
    test_sets: tuple[str, ...] | None = None
    test_samples: int = 50
    test_sources: tuple[int, int] = (1, 3)
    test_deep_share: float = 0.15
    test_seed: int = 2027
    channel_counts: tuple[int, ...] = (16,)
    n_bootstrap: int = 1000

    def __post_init__(self) -> None:
        if not self.candidates:
            raise BrainForgeError("The comparison needs at least one candidate network.")
        labels = [c.label for c in self.candidates]
        if len(set(labels)) != len(labels):
            raise BrainForgeError(f"Candidate labels must be unique, got {labels}.")
        if self.cpu_budget_s <= 0:
            raise BrainForgeError(
                f"The CPU budget (--cpu-minutes) must be positive, got {self.cpu_budget_s / 60:g} minutes."
            )
        if self.test_samples < 1:
            raise BrainForgeError(f"test_samples must be at least 1, got {self.test_samples}.")

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class ComparisonResult:
    """What :func:`run_comparison` measured.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per solver and channel count: medians with 95 % intervals,
        failures, ms per segment, parameters, training budget.
    budgets : dict
        Per network: CPU and wall seconds, steps, samples seen, epochs, why
        it stopped, best validation metrics and its validation curve.
    files : list of Path
        Files written.
    """

    table: object
    budgets: dict
    files: list


# ---------------------------------------------------------------- training


def _training_generator(config: ComparisonConfig):
    """Build the one sample generator that every network trains on."""
    from ..anatomy import make_forward_bank, make_head_model
    from ..nmm import default_spike_library, read_spike_library
    from ..synthesis import SampleGenerator

    head = make_head_model(config.montage, n_regions=config.n_regions)
    library = read_spike_library(default_spike_library(progress=False))
    bank = make_forward_bank(head, config.forward_bank) if config.forward_bank is not None else None
    return SampleGenerator(head, library, config.recipe, forward_bank=bank)


def validation_curve(run_dir: Path) -> list[dict]:
    """Per-epoch validation metrics of a run, from its CSV logs (all sessions, in step order)."""
    import pandas as pd

    frames = [pd.read_csv(path) for path in sorted((run_dir / "logs").glob("version_*/metrics.csv"))]
    frames = [frame for frame in frames if "val_peak_patch_error_mm" in frame]
    if not frames:
        return []
    logs = pd.concat(frames).dropna(subset=["val_peak_patch_error_mm"]).sort_values("step")
    logs = logs.drop_duplicates("epoch", keep="last")
    columns = ["epoch", "step", *[c for c in logs.columns if c.startswith("val_")]]
    return [{k: float(v) for k, v in row.items()} for row in logs[columns].to_dict("records")]


def _still_falling(curve: list[dict], key: str = "val_peak_patch_error_mm") -> bool:
    """Return whether one of the last two validation values beat every earlier one (strictly).

    A flat curve (a network that has not started to learn) is not falling.
    """
    values = [row[key] for row in curve if np.isfinite(row.get(key, np.nan))]
    return len(values) >= 2 and min(values[-2:]) < min(values[:-2] or values[:1])


def _check_comparison_run(run_dir: Path, config: ComparisonConfig) -> None:
    """Refuse to reuse or resume a run trained with another CPU budget or another seed.

    The seeds compared are the training seed, the forward bank's and the noise bank's, as
    ``run.json`` records them (``training``, ``data``). Only a run that would be reused
    (``budget.json``) or resumed (its last checkpoint) is checked; one stopped before its first
    epoch ended is trained again from the start.
    """
    from ..training.train import LAST_CHECKPOINT, read_run_record

    run_file = run_dir / "run.json"
    reused = (run_dir / "budget.json").is_file() or (run_dir / LAST_CHECKPOINT).is_file()
    if not reused or not run_file.is_file():
        return
    run = read_run_record(run_dir, fix=f"delete {run_dir} to train that network again")
    data = run.get("data", {})
    bank = data.get("forward_bank")
    stored = {
        "CPU budget": run.get("comparison", {}).get("cpu_budget_s"),
        "training seed": run.get("training", {}).get("seed"),
        "forward-bank seed": None if bank is None else bank.get("seed", 0),
        "noise-bank seed": data.get("synthesis", {}).get("noise_bank_seed", 0),
    }
    asked = {
        "CPU budget": config.cpu_budget_s,
        "training seed": config.training.seed,
        "forward-bank seed": None if config.forward_bank is None else config.forward_bank.seed,
        "noise-bank seed": config.recipe.noise_bank_seed,
    }

    def text(name: str, value) -> str:
        if name == "CPU budget":
            return f"{value / 60:g} min" if isinstance(value, int | float) else "none"
        return "none (no bank)" if value is None and name == "forward-bank seed" else str(value)

    differences = [
        f"{name} {text(name, stored[name])}, not {text(name, asked[name])}"
        for name in stored
        if stored[name] != asked[name]
    ]
    if differences:
        raise BrainForgeError(
            f"{run_dir} was trained with other settings ({'; '.join(differences)}); choose another --out or "
            f"delete {run_dir}."
        )


def train_candidate(candidate: Candidate, config: ComparisonConfig, generator, run_dir: Path, progress: bool) -> dict:
    """Train one network for the budget (or resume it), write and return ``budget.json``.

    :func:`train_candidates` has checked ``run_dir`` (:func:`_check_comparison_run`) before any
    training data was built.
    """
    from ..training import train
    from ..training.train import LAST_CHECKPOINT

    budget_file = run_dir / "budget.json"
    if budget_file.is_file():
        try:
            return json.loads(budget_file.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BrainForgeError(
                f"{budget_file} is damaged ({err}); delete it (and {run_dir.name}'s checkpoints to start over) and "
                "run the comparison again."
            ) from err
    resume = (run_dir / LAST_CHECKPOINT).is_file()
    logger.info("%s %s for %.0f CPU s", "Resuming" if resume else "Training", candidate.label, config.cpu_budget_s)
    start = time.perf_counter()
    result = train(
        candidate.model, generator, run_dir, config.training, model_params=candidate.params, resume=resume,
        overwrite=not resume, max_cpu_time_s=config.cpu_budget_s, progress=progress,
        provenance={"comparison": {"label": candidate.label, "cpu_budget_s": config.cpu_budget_s}},
    )  # fmt: skip
    curve = validation_curve(run_dir)
    budget = {
        "label": candidate.label,
        "model": candidate.model,
        "params": result.model.hyper_parameters(),
        "n_parameters": result.model.n_parameters,
        "any_montage": bool(result.model.any_montage),
        "cpu_budget_s": config.cpu_budget_s,
        "cpu_s": result.cpu_seconds,
        "wall_s_last_session": time.perf_counter() - start,
        "resumed": resume,
        "global_step": result.global_step,
        "samples_seen": result.global_step * config.training.batch_size,
        "epochs": result.epochs,
        "partial_epoch": result.partial_epoch,
        "cut_epochs": result.cut_epochs,
        "stopped_by": result.stopped_by,
        "best": result.best_metrics,
        "still_falling": _still_falling(curve),
        "curve": curve,
    }
    with atomic_path(budget_file) as tmp:
        tmp.write_text(json.dumps(budget, indent=1))
    return budget


def train_candidates(config: ComparisonConfig, out_dir: str | Path, *, progress: bool = False) -> dict[str, dict]:
    """Train every candidate that has no ``budget.json`` yet; return all budgets by label."""
    out_dir = Path(out_dir)
    for candidate in config.candidates:  # every refusal before the training data is built
        _check_comparison_run(out_dir / "runs" / candidate.label, config)
    generator = None
    budgets = {}
    for candidate in config.candidates:
        run_dir = out_dir / "runs" / candidate.label
        if not (run_dir / "budget.json").is_file() and generator is None:
            generator = _training_generator(config)
        budgets[candidate.label] = train_candidate(candidate, config, generator, run_dir, progress)
    return budgets


# ---------------------------------------------------------------- scoring

#: Rows of the comparison table: (column, benchmark metric, which samples).
TABLE_METRICS = (
    ("peak_centre_error_mm", "peak_centre_error_mm"),
    ("segment_peak_centre_error_mm", "segment_peak_centre_error_mm"),
    ("peak_patch_error_mm", "peak_patch_error_mm"),
    ("loc_error_mm", "loc_error_mm"),
    ("segment_loc_error_mm", "segment_loc_error_mm"),
    ("correlation", "correlation"),
    ("segment_correlation", "segment_correlation"),
    ("auc_close", "auc_close"),
    ("dispersion_mm", "dispersion_mm"),
)


def median_interval(values: np.ndarray, n_bootstrap: int, seed: int) -> tuple[float, float, float]:
    """Median of the finite values and its 95 % percentile-bootstrap interval (``bootstrap_interval``)."""
    from .summary import bootstrap_interval

    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    median = float(np.median(values)) if len(values) else np.nan
    return (median, *bootstrap_interval(values, n_bootstrap, 0.95, seed, statistic=np.median))


def comparison_table(samples, timing, budgets: dict, n_bootstrap: int, seed: int):
    """Per solver and channel count: medians [95 % CI] of :data:`TABLE_METRICS`, failures, time, size, budget."""
    import pandas as pd

    rows = []
    for (solver, n_channels), group in samples.groupby(["solver", "n_channels"], sort=False):
        row = {"solver": solver, "n_channels": int(n_channels), "n": len(group)}
        for column, metric in TABLE_METRICS:
            median, low, high = median_interval(group[metric].to_numpy(float), n_bootstrap, seed)
            row.update({column: median, f"{column}_low": low, f"{column}_high": high})
        deep = group[group.depth == "deep"]
        median, low, high = median_interval(deep.peak_centre_error_mm.to_numpy(float), n_bootstrap, seed)
        row.update({"deep_peak_centre_error_mm": median, "deep_peak_centre_error_mm_low": low})
        row["deep_peak_centre_error_mm_high"] = high
        row["failed"] = int(group.failed.sum())
        row["failed_ghost"] = int(group.failed_ghost.sum())
        row["failed_nonfinite"] = int(group.failed_nonfinite.sum())
        time_row = timing[(timing.solver == solver) & (timing.n_channels == n_channels)]
        row["ms_per_segment"] = float(time_row.ms_per_segment_median.iloc[0]) if len(time_row) else np.nan
        budget = budgets.get(solver)
        row["n_parameters"] = budget["n_parameters"] if budget else np.nan
        row["cpu_s"] = budget["cpu_s"] if budget else np.nan
        row["samples_seen"] = budget["samples_seen"] if budget else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(row, column: str, digits: int = 1) -> str:
    value, low, high = row[column], row[f"{column}_low"], row[f"{column}_high"]
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown_table(table, n_channels: int) -> str:
    """Format the comparison at one channel count as Markdown, best peak-centre error first."""
    part = table[table.n_channels == n_channels].sort_values("peak_centre_error_mm")
    # The peak-centre error is read at the true peak, so its whole-segment twin is the same number;
    # the Otsu error and the correlation are the metrics that the window changes.
    header = (
        "| solver | peak-centre error, mm | deep sources, mm | Otsu error, mm | Otsu error, whole segment, mm | "
        "correlation | segment correlation | AUC close | failed | ms / segment | parameters | training CPU min | "
        "samples seen |"
    )
    lines = [header, "|" + " --- |" * 13]
    for _, row in part.iterrows():
        parameters = f"{int(row.n_parameters):,}" if np.isfinite(row.n_parameters) else "-"
        cpu = f"{row.cpu_s / 60:.0f}" if np.isfinite(row.cpu_s) else "-"
        seen = f"{int(row.samples_seen):,}" if np.isfinite(row.samples_seen) else "-"
        lines.append(
            f"| {row.solver} | {_cell(row, 'peak_centre_error_mm')} | {_cell(row, 'deep_peak_centre_error_mm')} | "
            f"{_cell(row, 'loc_error_mm')} | {_cell(row, 'segment_loc_error_mm')} | {_cell(row, 'correlation', 2)} | "
            f"{_cell(row, 'segment_correlation', 2)} | {_cell(row, 'auc_close', 2)} | "
            f"{row.failed} / {row.n} | {row.ms_per_segment:.1f} | {parameters} | {cpu} | {seen} |"
        )
    return "\n".join(lines)


def budget_markdown(budgets: dict) -> str:
    """Format what each network got (CPU time, samples, epochs, why it stopped, best error) as Markdown."""
    lines = [
        "| network | montage | CPU min | samples seen | epochs | stopped by | best val. peak-patch error, mm "
        "(epoch) | still falling |",
        "|" + " --- |" * 8,
    ]
    for label, budget in budgets.items():
        best = budget["best"]
        error = best.get("val_peak_patch_error_mm", np.nan)
        lines.append(
            f"| {label} | {'any (trained on 16-64 ch)' if budget['any_montage'] else 'fixed 64 ch'} | "
            f"{budget['cpu_s'] / 60:.1f} | {budget['samples_seen']:,} | {budget['epochs']} | {budget['stopped_by']} | "
            f"{error:.2f} ({best.get('epoch', '-')}) | {'yes' if budget['still_falling'] else 'no'} |"
        )
    return "\n".join(lines)


def score_candidates(
    config: ComparisonConfig, out_dir: str | Path, budgets: dict, *, progress: bool = False
) -> ComparisonResult:
    """Score the trained networks and the classical solvers on the test sets; write the comparison files."""
    from .benchmark import BenchmarkConfig, run_benchmark
    from .heldout import write_heldout_test_sets

    out_dir = Path(out_dir)
    for budget in budgets.values():  # from the curve, so that older budget files get today's definition
        budget["still_falling"] = _still_falling(budget["curve"])
    if config.test_sets is None:
        tests = write_heldout_test_sets(
            out_dir / "test_sets", config.test_samples, seed=config.test_seed, n_sources=config.test_sources,
            deep_share=config.test_deep_share, montage=config.montage, n_regions=config.n_regions,
        )  # fmt: skip
    else:
        tests = [Path(p) for p in config.test_sets]
    models = [str(out_dir / "runs" / label) for label in budgets]
    benchmark_config = BenchmarkConfig(
        channel_counts=config.channel_counts, n_bootstrap=config.n_bootstrap, seed=config.test_seed
    )
    result = run_benchmark(
        [*config.classical, *models, *config.references],
        tests,
        out_dir / "benchmark",
        benchmark_config,
        progress=progress,
    )
    return write_comparison(config, out_dir, [p.name for p in tests], result.samples, result.timing, budgets,
                            list(result.files))  # fmt: skip


def write_comparison(
    config: ComparisonConfig, out_dir: str | Path, test_names: list[str], samples, timing, budgets: dict,
    files: list[Path] | None = None,
) -> ComparisonResult:  # fmt: skip
    """Write ``comparison.md``, ``.csv`` and ``.json`` from scored samples (``benchmark/samples.csv``, ``timing.csv``).

    :func:`score_candidates` ends with it; call it on stored samples to rebuild
    the tables without scoring again.
    """
    from .benchmark import solver_label

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    references = {}
    for folder in config.references:
        model = json.loads((Path(folder) / "config.json").read_text()).get("model", {})
        references[solver_label(folder)] = {"n_parameters": model.get("n_parameters", np.nan), "cpu_s": np.nan,
                                            "samples_seen": np.nan}  # fmt: skip
    table = comparison_table(samples, timing, {**references, **budgets}, config.n_bootstrap, config.test_seed)
    files = list(files or [])
    counts = sorted(set(table.n_channels), reverse=True)
    text = "\n\n".join(
        [
            "# Network comparison",
            f"Test sets: {', '.join(test_names)}; medians with 95 % bootstrap intervals; "
            "'failed' counts ghost (> 40 mm) and non-finite estimates, which stay in the medians.",
            *(
                [f"References outside the equal budget (trained longer, elsewhere): {', '.join(references)}."]
                if references
                else []
            ),
            *[f"## {n} channels\n\n{markdown_table(table, n)}" for n in counts],
            f"## Training budgets\n\n{budget_markdown(budgets)}",
        ]
    )
    for name, content in (
        ("comparison.md", text + "\n"),
        ("comparison.csv", table.to_csv(index=False)),
        ("comparison.json", json.dumps({"config": config.to_dict(), "budgets": budgets}, indent=1, default=str)),
    ):
        with atomic_path(out_dir / name) as tmp:
            tmp.write_text(content)
        files.append(out_dir / name)
    return ComparisonResult(table, budgets, files)


@verbose
def run_comparison(
    config: ComparisonConfig | None = None, out_dir: str | Path = "comparison", *, train_only: bool = False,
    progress: bool = False,
    verbose: bool | str | int | None = None,
) -> ComparisonResult | None:  # fmt: skip
    """Train every candidate for the same CPU budget, then score all beside the classical solvers.

    Parameters
    ----------
    config : ComparisonConfig | None
        What to compare (default: the four architectures, the
        CNN-Transformer with three interpolations, 25 CPU-minutes each).
    out_dir : path
        Folder of the runs, test sets, benchmark and comparison tables.
    train_only : bool
        Stop after training (score later with another call).
    progress : bool
        Show progress bars.
    verbose : bool | str | int | None
        Log level of MNE and BrainForge during the call (``"info"``, ``"warning"``, ...);
        None keeps the current one.

    Returns
    -------
    result : ComparisonResult | None
        None with ``train_only``.
    """
    config = config or ComparisonConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    budgets = train_candidates(config, out_dir, progress=progress)
    if train_only:
        return None
    return score_candidates(config, out_dir, budgets, progress=progress)


def candidates_from_labels(labels: Sequence[str]) -> tuple[Candidate, ...]:
    """Pick :data:`DEFAULT_CANDIDATES` by label."""
    known = {c.label: c for c in DEFAULT_CANDIDATES}
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise BrainForgeError(f"Unknown network {unknown}; choose from {', '.join(known)}.")
    return tuple(known[label] for label in labels)
