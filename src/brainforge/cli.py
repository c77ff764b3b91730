"""The ``brainforge`` command line."""

from __future__ import annotations

import json
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ._config import split_names
from ._errors import BrainForgeError, check_seed

app = typer.Typer(
    help="BrainForge: EEG source imaging with deep learning.", no_args_is_help=True, pretty_exceptions_enable=False
)


@app.callback()
def _log_level(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show MNE's and BrainForge's progress messages (info level).")
    ] = False,
) -> None:
    """BrainForge: EEG source imaging with deep learning.

    MNE's and BrainForge's warnings are always shown; --verbose adds their progress messages.
    """
    from ._logging import set_log_level

    set_log_level("info" if verbose else "warning")


head_app = typer.Typer(help="Build, inspect and export head models.", no_args_is_help=True)
app.add_typer(head_app, name="head")

MontageOption = Annotated[
    str, typer.Option("--montage", "-m", help="MNE built-in montage or 10-10 subset (1010-75/64/32/21/16).")
]
ChannelsOption = Annotated[
    str | None, typer.Option("--channels", help="Comma-separated channel subset, e.g. Fp1,Fp2,Cz.")
]
RegionsOption = Annotated[int, typer.Option("--n-regions", help="Number of cortical regions.")]
DeepOption = Annotated[bool, typer.Option("--deep/--no-deep", help="Include subcortical sources.")]
ConductorOption = Annotated[str, typer.Option("--conductor", help="bem (3-layer BEM) or sphere (3-shell).")]
SkullOption = Annotated[float, typer.Option("--skull-conductivity", help="Skull conductivity, S/m.")]
JitterOption = Annotated[float, typer.Option("--jitter-mm", help="Jitter every electrode by this many mm.")]


def _seed_option(param: typer.CallbackParam, value: int) -> int:
    """Refuse a negative seed on one line, naming the flag (NumPy's seed sequences take none)."""
    return check_seed(value, param.opts[0] if param.opts else "--seed")


SeedOption = Annotated[
    int, typer.Option("--jitter-seed", callback=_seed_option, help="Seed of the electrode jitter directions.")
]
NoiseBankSeedOption = Annotated[
    int,
    typer.Option(
        "--noise-bank-seed", callback=_seed_option, help="Seed of the bank of white and 1/f sensor-noise segments."
    ),
]
JobsOption = Annotated[int, typer.Option("--n-jobs", help="Parallel jobs for the forward model.")]


def _head_model(montage, channels, n_regions, deep, conductor, skull, jitter, seed, n_jobs):
    from .anatomy import CHANNEL_SUBSETS, make_head_model
    from .anatomy.bem import DEFAULT_CONDUCTIVITY

    picks = (CHANNEL_SUBSETS.get(channels) or split_names(channels)) if channels else None
    return make_head_model(
        montage,
        channels=picks,
        n_regions=n_regions,
        deep=deep,
        conductor=conductor,
        conductivity=(DEFAULT_CONDUCTIVITY[0], skull, DEFAULT_CONDUCTIVITY[2]),
        electrode_jitter_mm=jitter,
        jitter_seed=seed,
        n_jobs=n_jobs,
    )


@head_app.command("info")
def head_info(
    montage: MontageOption = "1010-64",
    channels: ChannelsOption = None,
    n_regions: RegionsOption = 1000,
    deep: DeepOption = True,
    conductor: ConductorOption = "bem",
    skull_conductivity: SkullOption = 0.006,
    jitter_mm: JitterOption = 0.0,
    jitter_seed: SeedOption = 0,
    n_jobs: JobsOption = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Build (or load from the cache) a template head model and describe it."""
    from ._cache import get_cache_dir

    start = time.perf_counter()
    head = _head_model(
        montage, channels, n_regions, deep, conductor, skull_conductivity, jitter_mm, jitter_seed, n_jobs
    )
    summary = {
        "description": head.description,
        "n_channels": head.n_channels,
        "n_sources": head.n_sources,
        "n_regions": head.n_regions,
        "n_deep_regions": head.n_deep_regions,
        "leadfield_shape": list(head.leadfield.shape),
        "region_leadfield_shape": list(head.region_leadfield.shape),
        "cache_dir": str(get_cache_dir()),
        "build_seconds": round(head.build_seconds, 2),
        "elapsed_seconds": round(time.perf_counter() - start, 2),
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="BrainForge head model", show_header=False)
    for key, value in summary.items():
        table.add_row(key, str(value))
    Console().print(table)


@head_app.command("export")
def head_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Destination .npz file.")],
    montage: MontageOption = "1010-64",
    channels: ChannelsOption = None,
    n_regions: RegionsOption = 1000,
    deep: DeepOption = True,
    conductor: ConductorOption = "bem",
    skull_conductivity: SkullOption = 0.006,
    jitter_mm: JitterOption = 0.0,
    jitter_seed: SeedOption = 0,
    n_jobs: JobsOption = 1,
) -> None:
    """Write a head model's arrays (leadfields, positions in mm, names) to an .npz file."""
    if out.suffix != ".npz":
        raise BrainForgeError(f"--out must end in .npz, got {out.name}.")
    head = _head_model(
        montage, channels, n_regions, deep, conductor, skull_conductivity, jitter_mm, jitter_seed, n_jobs
    )
    head.save(out)
    typer.echo(f"Wrote {out} ({head.n_channels} channels x {head.n_sources} sources, {head.n_regions} regions).")


@head_app.command("montages")
def head_montages() -> None:
    """List the montage names that --montage accepts."""
    from .anatomy import available_montages

    for name in available_montages():
        typer.echo(name)


@app.command("simulate")
def simulate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Spike library folder (.zarr); rerun to resume.")],
    connectome: Annotated[
        str, typer.Option("--connectome", help="tvb76, tvb192 (tvb-data) or a TVB zip path.")
    ] = "tvb76",
    engine: Annotated[str, typer.Option("--engine", help="fast (batched numba) or tvb (reference).")] = "fast",
    duration: Annotated[float, typer.Option("--duration", help="Simulated seconds per region and setting.")] = 50.0,
    dt: Annotated[float, typer.Option("--dt", help="Integration step, ms.")] = 1.0,
    regions: Annotated[str | None, typer.Option("--regions", help="Stimulated nodes, e.g. 0-9,15 (all).")] = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Dask scheduler address; 'sync' runs in this process.")
    ] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Spike threshold, mV (published: 8).")] = 8.0,
    alignment: Annotated[str, typer.Option("--alignment", help="Clip alignment: block (published) or peak.")] = "block",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Simulations per fast-engine task.")] = 8,
    seed: Annotated[int, typer.Option("--seed", callback=_seed_option, help="Campaign seed.")] = 0,
    normalize_coupling: Annotated[
        bool, typer.Option("--normalize-coupling", help="Match the 998 connectome's mean coupling strength.")
    ] = False,
    normalize_coupling_to: Annotated[
        str | None,
        typer.Option(
            "--normalize-coupling-to",
            help="Normalize to the 998 connectome's mean or max in-degree (tvb192 needs max); implies the above.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Simulate every region under DeepSIF's three settings and build a spike library."""
    from .anatomy import read_connectivity
    from .nmm.campaign import CampaignConfig, parse_nodes, run_campaign

    if not 0 < duration < float("inf"):
        raise BrainForgeError(f"--duration {duration:g}: give the simulated time per job in s, e.g. --duration 20.")
    if normalize_coupling_to not in (None, "mean", "max"):
        raise BrainForgeError(f"--normalize-coupling-to takes mean or max, got {normalize_coupling_to!r}.")
    with _errors_name_options({"batch_size": "--batch-size", "dt": "--dt", "engine": "--engine"}):
        config = CampaignConfig(
            connectome=connectome, engine=engine, duration_ms=duration * 1000.0, dt_ms=dt, seed=seed,
            threshold=threshold, alignment=alignment, batch_size=batch_size,
            normalize_coupling=normalize_coupling_to or normalize_coupling,
        )  # fmt: skip
    nodes = parse_nodes(regions, read_connectivity(connectome).n_nodes)
    summary = run_campaign(config, out, nodes=nodes, scheduler=scheduler, progress=not as_json)
    figures = summary.as_dict()
    if as_json:
        typer.echo(json.dumps(figures))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Spike library {out}", show_header=False)
    for key, value in figures.items():
        table.add_row(key, str(value))
    Console().print(table)
    if summary.nodes_without_spikes:
        shown = ", ".join(map(str, summary.nodes_without_spikes[:20]))
        typer.echo(f"Regions with no spike: {shown}{' ...' if len(summary.nodes_without_spikes) > 20 else ''}")


def _range(text: str, name: str, cast=float) -> tuple:
    try:
        values = [cast(v) for v in text.split(",")]
    except ValueError as err:
        raise BrainForgeError(f"--{name} takes a number or a range 'low,high', got {text!r}.") from err
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise BrainForgeError(f"--{name} takes a number or a range 'low,high', got {text!r}.")
    if values[0] > values[1]:
        raise BrainForgeError(f"--{name} {text}: give the range low end first, as 'low,high'.")
    return tuple(values)


def _builtin_montages() -> list[str]:
    import mne

    return mne.channels.get_builtin_montages()


def _synthesis_head(head: str, channels: str | None, mismatch: str | None, n_regions: int = 1000):
    """Return the head model that makes the EEG: a template montage or a saved .npz, optionally altered."""
    from .anatomy import CHANNEL_SUBSETS, make_head_model, read_head_model
    from .anatomy.forward_mismatch import parse_forward_mismatch

    picks = None
    if channels:
        picks = CHANNEL_SUBSETS.get(channels) or [c.strip() for c in channels.split(",") if c.strip()]
    if head.lower().endswith(".npz"):
        if mismatch:
            raise BrainForgeError("--forward-mismatch needs a template head (a montage name), not a saved .npz.")
        model = read_head_model(head)
        return model.pick_channels(picks) if picks else model, None
    if Path(head).suffix and head not in CHANNEL_SUBSETS and head not in _builtin_montages():  # a file's name
        raise BrainForgeError(
            f"--head {head}: give a template montage name (brainforge head montages) or a head model .npz from "
            "`brainforge head export`; a recording's positions go to `brainforge localize --positions`."
        )
    options = parse_forward_mismatch(mismatch) if mismatch else {}
    model = make_head_model(head, channels=picks, n_regions=n_regions, **options)
    return model, options


def training_generator(cli: dict, synthesis, progress: bool = False):
    """Return the :class:`~brainforge.synthesis.SampleGenerator` a training run draws from.

    Parameters
    ----------
    cli : dict
        The run's head, channels, n_regions, spikes and forward_bank settings
        (``run.json``'s ``"cli"``).
    synthesis : SynthesisConfig
        The run's synthesis settings (``run.json``'s ``"data"`` ``"synthesis"``).
    progress : bool
        Show a progress bar if the default spike library must be simulated.

    Returns
    -------
    generator : SampleGenerator
    """
    from ._config import config_from_dict
    from .anatomy import ForwardBankConfig, make_forward_bank
    from .nmm import default_spike_library, read_spike_library
    from .synthesis import SampleGenerator

    head_model, _ = _synthesis_head(cli["head"], cli["channels"], None, cli["n_regions"])
    spikes = cli["spikes"]
    library = read_spike_library(default_spike_library(progress=progress) if spikes == "default" else spikes)
    bank = None
    if cli.get("forward_bank") is not None:
        bank = make_forward_bank(head_model, config_from_dict(ForwardBankConfig, cli["forward_bank"]))
    return SampleGenerator(head_model, library, synthesis, forward_bank=bank)


#: synth's options that set a SynthesisConfig field: option name -> field.
SYNTH_OPTION_FIELDS = {
    "sources": "n_sources", "snr": "sensor_snr_db", "source_snr": "source_snr_db", "deep_share": "deep_share",
    "overlap": "overlap", "max_onset_delay_ms": "max_onset_delay_ms", "noise": "noise_types",
    "snr_convention": "snr_convention", "noise_bank_seed": "noise_bank_seed",
}  # fmt: skip


@app.command("synth")
def synth(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Destination test set (.zarr).")],
    n: Annotated[int, typer.Option("--n", help="Number of samples.")] = 1000,
    head: Annotated[str, typer.Option("--head", help="Template montage name, or a head model .npz.")] = "1010-64",
    spikes: Annotated[str, typer.Option("--spikes", help="Spike library (.zarr), or 'default'.")] = "default",
    channels: Annotated[str | None, typer.Option("--channels", help="Channel subset: 1010-32 or Fp1,Fp2,...")] = None,
    snr: Annotated[str, typer.Option("--snr", help="Sensor SNR in dB, a value or 'low,high'.")] = "5,20",
    source_snr: Annotated[str, typer.Option("--source-snr", help="Patch SNR over the background, dB.")] = "10,20",
    sources: Annotated[str, typer.Option("--sources", help="Patches per sample, a value or 'low,high'.")] = "1,3",
    deep_share: Annotated[float, typer.Option("--deep-share", help="Share of patches centred on deep regions.")] = 0.0,
    overlap: Annotated[bool, typer.Option("--overlap", help="Allow patches to overlap.")] = False,
    max_onset_delay_ms: Annotated[float, typer.Option("--max-onset-delay-ms", help="Moving sources.")] = 0.0,
    noise: Annotated[str, typer.Option("--noise", help="Noise types: white,pink,realistic.")] = "white,pink",
    realistic_noise: Annotated[
        Path | None, typer.Option("--realistic-noise", help="Folder with DeepSIF's realistic_noise.mat.")
    ] = None,
    snr_convention: Annotated[str, typer.Option("--snr-convention", help="power or deepsif (+3 dB).")] = "power",
    forward_mismatch: Annotated[
        str | None,
        typer.Option(
            "--forward-mismatch",
            help=(
                "skull:0.003, jitter:10 or jitter:10@SEED, shift:15 or shift:15@DEG (cap moved along the scalp; "
                "DEG 90 = towards the nose), "
                "lower:20 (cap moved down the head) or sphere."
            ),
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", callback=_seed_option, help="Dataset seed.")] = 0,
    noise_bank_seed: NoiseBankSeedOption = 0,
) -> None:
    """Write a fixed synthetic test set (EEG, sources, labels, SNRs) with its metadata."""
    from .nmm import default_spike_library, read_spike_library
    from .synthesis import SampleGenerator, SynthesisConfig, load_deepsif_noise
    from .synthesis.store import check_test_set_out, write_test_set

    if n < 1:  # before the head model and spike library are built
        raise BrainForgeError(f"--n {n}: a test set needs at least one sample.")
    check_test_set_out(out)  # before the head model and spike library are built
    flags = {field: param.opts[0] for param in ctx.command.params if (field := SYNTH_OPTION_FIELDS.get(param.name))}
    with _errors_name_options(flags):
        config = SynthesisConfig(
            n_sources=_range(sources, "sources", int), sensor_snr_db=_range(snr, "snr"),
            source_snr_db=_range(source_snr, "source-snr"), deep_share=deep_share, overlap=overlap,
            max_onset_delay_ms=max_onset_delay_ms, noise_types=tuple(t.strip() for t in noise.split(",") if t.strip()),
            snr_convention=snr_convention, noise_bank_seed=noise_bank_seed,
        )  # fmt: skip
    if "realistic" in config.noise_types and realistic_noise is None:
        raise BrainForgeError("--noise realistic needs --realistic-noise FOLDER (the folder of realistic_noise.mat).")
    noise_source = load_deepsif_noise(realistic_noise) if realistic_noise else None  # before the slow steps
    model, mismatch = _synthesis_head(head, channels, forward_mismatch)
    library = read_spike_library(default_spike_library(progress=True) if spikes == "default" else spikes)
    generator = SampleGenerator(model, library, config, realistic_noise=noise_source)
    path = write_test_set(generator, n, out, seed=seed, description={"forward_mismatch": mismatch or None})
    typer.echo(f"Wrote {path}: {n} samples, {model.n_channels} channels, {model.n_regions} regions.")


def _monitor(name: str) -> str:
    """Return the validation metric that ``--monitor patch`` or ``--monitor centre`` names."""
    if name not in ("patch", "centre"):
        raise BrainForgeError(f"Unknown --monitor {name!r}; choose patch or centre.")
    return f"val_peak_{name}_error_mm"


#: What `train --resume` may be given anew; the run's record (run.json) holds every other setting.
#: (`--init` is taken and ignored: a resumed run starts from its checkpoint, and keeps its own record.)
RESUME_MAY_CHANGE = (
    "out", "resume", "max_epochs", "max_time", "max_cpu_time", "accelerator", "devices", "progress", "workers", "init",
)  # fmt: skip


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given on the command line (or by its environment variable)."""
    source = ctx.get_parameter_source(name)  # compared by name: Typer may bring its own copy of Click's enum
    return getattr(source, "name", None) in ("COMMANDLINE", "ENVIRONMENT")


#: train's options that set a field of the run's configs: option name -> (config, field). The run's record
#: (run.json) holds these configs, so one table serves a new run, its errors, and the check on --resume.
TRAIN_OPTION_FIELDS: dict[str, tuple[str, str]] = {
    **{name: ("training", name) for name in (
        "loss", "optimizer", "learning_rate", "schedule", "batch_size", "samples_per_epoch", "val_samples",
        "patience", "seed", "montage_subsets", "max_epochs", "target_centre_half_mm", "monitor",
        "peak_loss_weight", "peak_loss_sharpness", "val_montage", "subset_upsampling",
    )},
    "montage_sizes": ("training", "montage_size_distribution"),
    "crop": ("training", "crop_samples"),
    "workers": ("training", "num_workers"),
    "sources": ("synthesis", "n_sources"),
    "snr": ("synthesis", "sensor_snr_db"),
    "deep_share": ("synthesis", "deep_share"),
    "background_share": ("synthesis", "background_share"),
    "noise_bank_seed": ("synthesis", "noise_bank_seed"),
    "bank_models": ("forward_bank", "n_placements"),
    "bank_vertical_shift_mm": ("forward_bank", "max_vertical_shift_mm"),
    "bank_seed": ("forward_bank", "seed"),
}  # fmt: skip

#: train's record of the run's command line itself (run.json's "cli").
TRAIN_CLI_RECORD = ("model", "head", "channels", "n_regions", "spikes")


def _train_option_value(name: str, text):
    """Option ``name``'s command-line value as its config field holds it (ranges as tuples, --monitor's metric)."""
    if name == "montage_subsets":
        return _range(text, "montage-subsets", int) if text else None
    if name == "sources":
        return _range(text, "sources", int)
    if name == "snr":
        return _range(text, "snr")
    if name == "monitor":
        return _monitor(text)
    return text


@contextmanager
def _errors_name_options(flags: dict[str, str]):
    """Give a config's one-line error with the command-line options (``flags``: field -> option) for its fields."""
    try:
        yield
    except BrainForgeError as error:
        message = str(error)
        for field, flag in flags.items():
            # The field that opens the message: "batch_size must be ..." -> "--batch-size must be ...",
            # "Unknown loss 'x'" -> "Unknown --loss 'x'" (values quoted later are left as given).
            message = re.sub(rf"^(Unknown )?{re.escape(field)}(?![\w-])", rf"\g<1>{flag}", message, count=1)
        raise BrainForgeError(message) from None


def _train_option_flags(ctx: typer.Context) -> dict[str, dict[str, str]]:
    """Return, per config of :data:`TRAIN_OPTION_FIELDS`, its fields' command-line options (field -> --flag)."""
    flag = {param.name: param.opts[0] for param in ctx.command.params}
    options: dict[str, dict[str, str]] = {"training": {}, "synthesis": {}, "forward_bank": {}}
    for name, (config, field) in TRAIN_OPTION_FIELDS.items():
        options[config][field] = flag[name]
    return options


def _train_configs(ctx: typer.Context):
    """Build the training, synthesis and forward-bank configs that train's options give a new run.

    Options left at None take their config's default. An invalid value
    stops on one line that names the option, not the config field.

    Returns
    -------
    training : TrainingConfig
    synthesis : SynthesisConfig
    forward_bank : dict or None
        The forward bank's config as a dict (``asdict``), None without ``--forward-bank``.
    """
    from dataclasses import asdict

    from .anatomy import ForwardBankConfig
    from .synthesis import SynthesisConfig
    from .training import TrainingConfig

    fields: dict[str, dict] = {"training": {}, "synthesis": {}, "forward_bank": {}}
    for name, (config, field) in TRAIN_OPTION_FIELDS.items():
        value = _train_option_value(name, ctx.params[name])
        if value is not None:
            fields[config][field] = value
    options = _train_option_flags(ctx)
    with _errors_name_options(options["training"]):
        training = TrainingConfig(**fields["training"])
    with _errors_name_options(options["synthesis"]):
        synthesis = SynthesisConfig(**fields["synthesis"])
    if not ctx.params["forward_bank"]:
        return training, synthesis, None
    bank = fields["forward_bank"]
    margin_mm = ForwardBankConfig.margin_mm + bank["max_vertical_shift_mm"]  # a lower cap needs lower scalp rows
    with _errors_name_options(options["forward_bank"]):
        return training, synthesis, asdict(ForwardBankConfig(**bank, margin_mm=margin_mm))


def _refuse_changed_settings_on_resume(ctx: typer.Context, run: dict) -> None:
    """Stop when ``train --resume`` is given a setting other than the one its run was started with.

    The run's record (``run.json``) gives every setting on resume, so an option
    repeated with the same value is fine, and one with another value, which
    would be ignored, is refused. Only ``--max-epochs``, the time budgets,
    ``--accelerator``, ``--devices``, ``--workers`` and ``--progress`` may
    change (``--init`` is ignored).
    """
    from dataclasses import asdict

    from ._config import config_from_dict
    from .anatomy import ForwardBankConfig
    from .synthesis import SynthesisConfig
    from .training import TrainingConfig

    # Read back as resuming reads them: fields an older record lacks take their defaults.
    cli = run["cli"]
    configs = {
        "training": asdict(TrainingConfig.from_dict(run["training"])),
        "synthesis": asdict(config_from_dict(SynthesisConfig, run["data"]["synthesis"])),
        "forward_bank": {**asdict(ForwardBankConfig()), **(cli.get("forward_bank") or {})},
    }
    recorded = {name: configs[config][field] for name, (config, field) in TRAIN_OPTION_FIELDS.items()}
    recorded |= {name: cli.get(name) for name in TRAIN_CLI_RECORD}
    recorded["forward_bank"] = bool(cli.get("forward_bank"))
    changed = []
    for param in ctx.command.params:
        name, given = param.name, ctx.params.get(param.name)
        if not _given(ctx, name) or name in RESUME_MAY_CHANGE:
            continue
        if name == "param":
            params = _model_params(given)
            changed += [
                f"--param {key}={value!r} (the run's: {run['model_params'].get(key)!r})"
                for key, value in params.items()
                if run["model_params"].get(key) != value
            ]
        elif name in recorded:
            if _train_option_value(name, given) != recorded[name]:
                changed.append(f"{param.opts[0]} {given} (the run's: {recorded[name]})")
        else:  # a setting the run's record does not hold: resuming could not honour it
            changed.append(f"{param.opts[0]} (not part of a resumed run)")
    if changed:
        raise BrainForgeError(
            f"--resume continues the run with the settings it started with; drop {'; '.join(changed)}, or start "
            "a new run in another --out."
        )


def _check_accelerator(accelerator: str, devices: str) -> None:
    """Stop on an accelerator or device count that Lightning would refuse, before any data are built."""
    import torch

    if accelerator not in ("auto", "cpu", "gpu", "cuda", "mps"):
        raise BrainForgeError(f"Unknown --accelerator {accelerator!r}; choose auto, cpu or gpu.")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise BrainForgeError(f"--accelerator {accelerator}: this machine has no CUDA GPU; use auto or cpu.")
    if devices != "auto" and not (devices.isdigit() and int(devices) > 0):
        raise BrainForgeError(f"--devices takes auto or a count of 1 or more, got {devices!r}.")


def _model_params(items: list[str] | None) -> dict:
    """``--param key=value`` (value parsed as JSON when it can be) to a dict."""
    params: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BrainForgeError(f"--param takes key=value, got {item!r}.")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


@app.command("train")
def train_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (model, checkpoints, logs).")],
    model: Annotated[
        str, typer.Option("--model", help="cnn_transformer, deepsif, convdip or gru.")
    ] = "cnn_transformer",
    head: Annotated[str, typer.Option("--head", help="Template montage name, or a head model .npz.")] = "1010-64",
    channels: Annotated[str | None, typer.Option("--channels", help="Channel subset: 1010-32 or Fp1,Fp2,...")] = None,
    n_regions: Annotated[int, typer.Option("--n-regions", help="Cortical regions of a template head.")] = 1000,
    spikes: Annotated[str, typer.Option("--spikes", help="Spike library (.zarr), or 'default'.")] = "default",
    max_time: Annotated[str | None, typer.Option("--max-time", help="Wall-clock budget, HH:MM.")] = None,
    max_cpu_time: Annotated[
        str | None,
        typer.Option("--max-cpu-time", help="CPU-time budget of the whole run (kept across --resume), HH:MM."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier run in --out (else it is refused).")
    ] = False,
    init: Annotated[Path | None, typer.Option("--init", help="Fine-tune from this model folder.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Model hyper-parameter key=value (repeatable).")
    ] = None,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs", help="Most epochs.")] = None,
    samples_per_epoch: Annotated[int, typer.Option("--samples-per-epoch", help="Fresh samples per epoch.")] = 4096,
    val_samples: Annotated[int, typer.Option("--val-samples", help="Fixed validation set size.")] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per step.")] = 32,
    learning_rate: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 3e-4,
    loss: Annotated[
        str | None,
        typer.Option(
            "--loss",
            help="mse, mse_sum, cosine, cosine_reprojection, relative_mse_cosine, relative_mse_cosine_peak.",
        ),
    ] = None,
    optimizer: Annotated[str, typer.Option("--optimizer", help="adam or adamw.")] = "adam",
    schedule: Annotated[str, typer.Option("--schedule", help="plateau, cosine or none.")] = "plateau",
    patience: Annotated[int, typer.Option("--patience", help="Early-stopping patience, epochs.")] = 10,
    montage_subsets: Annotated[
        str | None, typer.Option("--montage-subsets", help="Train on random channel subsets, 'low,high'.")
    ] = None,
    montage_sizes: Annotated[
        str,
        typer.Option(
            "--montage-sizes",
            help="How --montage-subsets draws the channel count: uniform, or log-uniform (each octave equally "
            "likely, so 16-32 channels as often as 32-64).",
        ),
    ] = "uniform",
    crop: Annotated[int | None, typer.Option("--crop", help="Train on windows of this many samples.")] = None,
    monitor: Annotated[
        str,
        typer.Option("--monitor", help="Validation metric that early stopping and export follow: patch or centre."),
    ] = "patch",
    target_centre_half_mm: Annotated[
        float | None,
        typer.Option(
            "--target-centre-half-mm",
            help="Fit a centre-weighted target: activity times a Gaussian of the distance to the nearest patch "
            "centre, halving at this distance (mm).",
        ),
    ] = None,
    peak_loss_weight: Annotated[
        float | None,
        typer.Option("--peak-loss-weight", help="Weight of relative_mse_cosine_peak's peak term (default 0.1)."),
    ] = None,
    peak_loss_sharpness: Annotated[
        float | None,
        typer.Option("--peak-loss-sharpness", help="Softmax sharpness of that peak term (default 20)."),
    ] = None,
    val_montage: Annotated[
        str | None,
        typer.Option(
            "--val-montage",
            help="Score validation (early stopping, the exported epoch) on this named channel subset of the "
            "training montage, e.g. 1010-16, instead of all channels.",
        ),
    ] = None,
    subset_upsampling: Annotated[
        bool,
        typer.Option(
            "--subset-upsampling",
            help="Interpolate each channel subset (--montage-subsets, --val-montage) back onto the training "
            "montage by spherical splines, as localize does with a sparse cap.",
        ),
    ] = False,
    sources: Annotated[str, typer.Option("--sources", help="Patches per sample, a value or 'low,high'.")] = "1,3",
    snr: Annotated[str, typer.Option("--snr", help="Sensor SNR in dB, a value or 'low,high'.")] = "5,20",
    deep_share: Annotated[float, typer.Option("--deep-share", help="Share of patches centred on deep regions.")] = 0.0,
    background_share: Annotated[
        float, typer.Option("--background-share", help="Share of segments with no spike (background only).")
    ] = 0.0,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            callback=_seed_option,
            help="Seed of weights, data, dropout and validation set (the banks: --bank-seed, --noise-bank-seed).",
        ),
    ] = 0,
    forward_bank: Annotated[
        bool,
        typer.Option(
            "--forward-bank/--no-forward-bank",
            help="Draw each sample's forward model (skull 0.003-0.015 S/m, cap shift 20 mm, twist 10 deg, "
            "stretch 10 %, jitter 5 mm) from a bank around the head.",
        ),
    ] = False,
    bank_models: Annotated[int, typer.Option("--bank-models", help="Forward models in the bank.")] = 4096,
    bank_vertical_shift_mm: Annotated[
        float,
        typer.Option(
            "--bank-vertical-shift-mm",
            help="Also move the whole cap up or down by up to this much (mm) in the bank: a cap that sits lower "
            "or higher on the head than the template's (0: none).",
        ),
    ] = 0.0,
    bank_seed: Annotated[
        int, typer.Option("--bank-seed", callback=_seed_option, help="Seed of the forward bank's cap placements.")
    ] = 0,
    noise_bank_seed: NoiseBankSeedOption = 0,
    workers: Annotated[int, typer.Option("--workers", help="DataLoader worker processes.")] = 1,
    accelerator: Annotated[str, typer.Option("--accelerator", help="auto, cpu or gpu.")] = "auto",
    devices: Annotated[str, typer.Option("--devices", help="Devices; several GPUs train with DDP.")] = "auto",
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Train a network on on-the-fly synthetic EEG; writes safetensors + JSON to --out."""
    import logging

    from ._config import config_from_dict
    from .models import MODELS, check_model_params
    from .models.io import read_model_config
    from .synthesis import SynthesisConfig
    from .training import TrainingConfig, train
    from .training.data import refuse_empty_validation_shares
    from .training.train import (
        RUN_FILE,
        _global_rank,
        parse_cpu_time,
        parse_max_time,
        prepare_run_folder,
        read_run_record,
        refuse_router_training,
    )

    max_cpu_time_s = parse_cpu_time(max_cpu_time) if max_cpu_time else None
    if max_time:
        parse_max_time(max_time)  # a malformed --max-time stops here, before the head model and bank are built
    # Under DDP the launcher runs this command again for every other rank: rank 0 alone tells the progress.
    logging.getLogger("brainforge").setLevel(logging.INFO if _global_rank() == 0 else logging.WARNING)
    refuse_router_training(model)  # before the head model, spikes and forward bank are built
    for flag, value in (("--bank-vertical-shift-mm", bank_vertical_shift_mm), ("--bank-seed", bank_seed)):
        if value and not forward_bank and not resume:
            raise BrainForgeError(f"{flag} needs --forward-bank; add it or drop the option.")
    _check_accelerator(accelerator, devices)
    # The run folder is checked before the head model, spikes and forward bank are built; under DDP by
    # rank 0 alone, as train() does (the other ranks start once rank 0 has begun writing it).
    if _global_rank() == 0:
        prepare_run_folder(out, resume, overwrite, check_only=True)
    if resume:
        run_file = out / RUN_FILE
        if not run_file.is_file():
            raise BrainForgeError(f"Nothing to resume in {out} (no {RUN_FILE}); drop --resume to start.")
        run = read_run_record(out, ("model_params", "training", "data"))
        if "cli" not in run:
            raise BrainForgeError(
                f"{out} holds a run started without `brainforge train` (from `brainforge compare` or the Python "
                "train()); resume it the way it was started."
            )
        sections = {name: run[name] for name in ("cli", "data", "training", "model_params")}
        missing = [f"{name} (as an object)" for name, value in sections.items() if not isinstance(value, dict)]
        if not missing:
            missing = [name for name in TRAIN_CLI_RECORD if name not in run["cli"]]
            missing += [] if isinstance(run["data"].get("synthesis"), dict) else ["data.synthesis"]
        if missing:
            raise BrainForgeError(
                f"{run_file} is damaged (it lacks {', '.join(missing)}); restore it, or start the run afresh with "
                "--overwrite."
            )
        _refuse_changed_settings_on_resume(ctx, run)
        cli = {name: run["cli"][name] for name in TRAIN_CLI_RECORD} | {"forward_bank": run["cli"].get("forward_bank")}
        model = cli["model"]
        params = run["model_params"]
        training = run["training"]
        if max_epochs is not None:
            training["max_epochs"] = max_epochs
        if _given(ctx, "workers"):  # each sample's seed is its index's, whichever worker draws it
            training["num_workers"] = workers
        init = Path(run["init"]) if run.get("init") else None  # kept in the exported model's record
        with _errors_name_options(_train_option_flags(ctx)["training"]):  # --max-epochs 0, --workers -1
            config = TrainingConfig.from_dict(training)
        synthesis = config_from_dict(SynthesisConfig, run["data"]["synthesis"])
    else:
        params = _model_params(param)
        check_model_params(model, n_regions, params)
        if montage_subsets and not MODELS[model].any_montage:
            raise BrainForgeError(
                f"--montage-subsets needs a network that takes any montage; {model} does not. Drop --montage-subsets."
            )
        if init is not None:
            read_model_config(init)  # a missing or damaged --init folder stops here
        config, synthesis, bank_config = _train_configs(ctx)
        cli = {name: ctx.params[name] for name in TRAIN_CLI_RECORD} | {"forward_bank": bank_config}
    device_count = int(devices) if devices.isdigit() else devices
    if isinstance(device_count, int):  # before the forward bank is built (train() checks again, for "auto")
        refuse_empty_validation_shares(config.val_samples, device_count)
    generator = training_generator(cli, synthesis, progress=progress)
    start = time.perf_counter()
    result = train(
        model, generator, out, config, model_params=params, init=init, resume=resume, overwrite=overwrite,
        max_time=max_time, max_cpu_time_s=max_cpu_time_s, provenance={"cli": cli}, accelerator=accelerator,
        devices=device_count, progress=progress,
    )  # fmt: skip
    if _global_rank() != 0:
        return  # under DDP, the other ranks ran this command too: rank 0 reports
    typer.echo(result.model.summary())
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.best_metrics.items())
    earlier_cuts = result.cut_epochs[:-1] if result.partial_epoch is not None else result.cut_epochs
    if result.partial_epoch is not None:
        taken, whole = result.partial_epoch
        trained = (
            f"{result.epochs} whole epoch(s) and {taken} of {whole} steps of one more (stopped by {result.stopped_by})"
        )
    else:
        trained = f"{result.epochs} whole epoch(s)" if earlier_cuts else f"{result.epochs} epoch(s)"
    if earlier_cuts:
        steps = ", ".join(f"epoch {index}: {taken} of {whole} steps" for index, taken, whole in earlier_cuts)
        trained += f"; besides, earlier sessions' budgets cut {len(earlier_cuts)} epoch(s) short ({steps})"
    typer.echo(f"Trained {trained} in {time.perf_counter() - start:.0f} s; best: {metrics or 'none'}.")
    if result.best_metrics.get("epoch") == -1:
        typer.echo("No epoch beat the starting model (--init); the exported model is the starting one.")
    typer.echo(f"Model: {out}/model.safetensors + config.json")


@app.command("benchmark")
def benchmark_command(
    solvers: Annotated[
        str,
        typer.Option(
            "--solvers",
            help="Comma-separated: sloreta,eloreta,dspm,mne,wmne,lcmv, default (the bundled network) "
            "and model folders.",
        ),
    ],
    test: Annotated[list[str], typer.Option("--test", help="Test set(s) from `brainforge synth` (repeatable).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (CSV, Markdown, PNG).")],
    channels: Annotated[
        str | None, typer.Option("--channels", help="Also score 10-10 subsets of these sizes, e.g. 16,21,32.")
    ] = None,
    head: Annotated[
        str | None, typer.Option("--head", help="Solvers' head model (.npz or montage); default: each test set's.")
    ] = None,
    max_samples: Annotated[int | None, typer.Option("--max-samples", help="First N samples of each test set.")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples per interval.")] = 1000,
    lambda2: Annotated[
        float, typer.Option("--lambda2", help="Minimum-norm regularization, MNE's lambda2 (1/SNR^2 of amplitudes).")
    ] = 1.0 / 9.0,
    seed: Annotated[int, typer.Option("--seed", callback=_seed_option, help="Seed of the bootstrap.")] = 0,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Run solvers on stored test sets; write metric tables with intervals, timings and plots."""
    from .evaluation.benchmark import BenchmarkConfig, check_solver_names, run_benchmark

    names = check_solver_names(split_names(solvers))
    counts = split_names(channels) or None
    if counts and not all(c.isdigit() for c in counts):
        raise BrainForgeError(f"--channels takes channel counts such as 16,21,32, got {channels!r}.")
    with _errors_name_options({"n_bootstrap": "--bootstrap", "max_samples": "--max-samples"}):
        config = BenchmarkConfig(
            channel_counts=tuple(int(c) for c in counts) if counts else None,
            max_samples=max_samples, n_bootstrap=bootstrap, solver_lambda2=lambda2, seed=seed,
        )  # fmt: skip
    head_model = _synthesis_head(head, None, None)[0] if head else None
    start = time.perf_counter()
    result = run_benchmark(names, split_names(test), out, config, head=head_model, progress=progress)
    overall = result.summary[(result.summary.condition == "all") & (result.summary.metric == "loc_error_mm")]
    for _, row in overall.iterrows():
        typer.echo(f"{row.solver:>16}: localization error {row['mean']:.1f} mm [{row.ci_low:.1f}, {row.ci_high:.1f}]")
    typer.echo(f"Benchmarked {len(names)} solver(s) in {time.perf_counter() - start:.0f} s; report: {out}/report.md")


@app.command("compare")
def compare_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Comparison folder (runs, test sets, tables).")],
    networks: Annotated[
        str | None,
        typer.Option(
            "--networks",
            help="Comma-separated: deepsif, convdip, gru, cnn_transformer_linear, cnn_transformer_cubic, "
            "cnn_transformer_rbf (default: all).",
        ),
    ] = None,
    cpu_minutes: Annotated[float, typer.Option("--cpu-minutes", help="CPU-time budget per network, min.")] = 25.0,
    test_samples: Annotated[int, typer.Option("--test-samples", help="Samples per held-out forward model.")] = 50,
    train_only: Annotated[bool, typer.Option("--train-only", help="Train, and score in a later call.")] = False,
    references: Annotated[
        str | None,
        typer.Option(
            "--references",
            help="Model folders (or 'default', the bundled model) scored beside the networks, outside the budget.",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", callback=_seed_option, help="Training seed, the same for every network.")
    ] = 14,
    test_seed: Annotated[
        int, typer.Option("--test-seed", callback=_seed_option, help="Seed of the held-out test sets and intervals.")
    ] = 2027,
    bank_seed: Annotated[
        int,
        typer.Option(
            "--bank-seed",
            callback=_seed_option,
            help="Seed of the forward bank's cap placements, the same for every network.",
        ),
    ] = 0,
    noise_bank_seed: NoiseBankSeedOption = 0,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = False,
) -> None:
    """Train each network on one data recipe for one CPU budget; score all beside sLORETA, eLORETA, LCMV."""
    import logging
    from dataclasses import replace

    from .anatomy import ForwardBankConfig
    from .evaluation.compare import (
        DEFAULT_CANDIDATES,
        DEFAULT_RECIPE,
        DEFAULT_TRAINING,
        ComparisonConfig,
        candidates_from_labels,
        run_comparison,
    )
    from .localization import default_model_dir

    logging.getLogger("brainforge").setLevel(logging.INFO)
    candidates = candidates_from_labels(split_names(networks)) if networks else DEFAULT_CANDIDATES
    folders = []
    for name in split_names(references):
        folder = default_model_dir() if name == "default" else Path(name)
        if not (folder / "config.json").is_file():
            raise BrainForgeError(f"--references {name}: not a model folder (no config.json).")
        folders.append(str(folder))
    config = ComparisonConfig(
        candidates=candidates, cpu_budget_s=60.0 * cpu_minutes, test_samples=test_samples, references=tuple(folders),
        training=replace(DEFAULT_TRAINING, seed=seed), test_seed=test_seed,
        forward_bank=ForwardBankConfig(seed=bank_seed), recipe=replace(DEFAULT_RECIPE, noise_bank_seed=noise_bank_seed),
    )  # fmt: skip
    start = time.perf_counter()
    result = run_comparison(config, out, train_only=train_only, progress=progress)
    if result is None:
        typer.echo(f"Trained {len(candidates)} network(s) in {time.perf_counter() - start:.0f} s; runs: {out}/runs")
        return
    typer.echo((out / "comparison.md").read_text())
    typer.echo(f"Compared in {time.perf_counter() - start:.0f} s; tables: {out}/comparison.md")


@app.command("localize")
def localize_command(
    recording: Annotated[Path, typer.Argument(help="EEG file MNE reads: FIF, EDF, BDF, BrainVision, EEGLAB, ...")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (must be new or empty).")],
    solver: Annotated[
        str, typer.Option("--solver", help="default, a classical method (sloreta, eloreta, ...) or a model folder.")
    ] = "default",
    tmin: Annotated[
        float | None,
        typer.Option("--tmin", help="Start, s (with --events: epoch start about each event; default -0.2)."),
    ] = None,
    tmax: Annotated[
        float | None, typer.Option("--tmax", help="End, s (with --events: epoch end about each event; default 0.3).")
    ] = None,
    events: Annotated[
        str | None, typer.Option("--events", help="Annotation name(s) to average around, e.g. spike.")
    ] = None,
    l_freq: Annotated[float, typer.Option("--l-freq", help="High-pass edge, Hz (0: none).")] = 1.0,
    h_freq: Annotated[float, typer.Option("--h-freq", help="Low-pass edge, Hz (0: none).")] = 70.0,
    channels: Annotated[
        str | None, typer.Option("--channels", help="Use only these channels, e.g. Fp1,Fp2,Cz (file or 10-05 names).")
    ] = None,
    exclude: Annotated[str | None, typer.Option("--exclude", help="Leave these channels out, e.g. T9,T10.")] = None,
    condition: Annotated[
        str | None,
        typer.Option(
            "--condition", help="An -ave.fif file's evoked response to localize: its name (comment) or index from 0."
        ),
    ] = None,
    positions: Annotated[
        Path | None,
        typer.Option(
            "--positions",
            help="Electrode positions to use instead of the recording's, e.g. a digitization (.sfp, .elc, .bvct, "
            "Polhemus .elp, EGI coordinates.xml, .fif, ...).",
        ),
    ] = None,
    timecourses: Annotated[
        str, typer.Option("--timecourses", help="Region time courses: parquet, csv or none.")
    ] = "parquet",
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar (in a terminal).")
    ] = True,
    uncertainty: Annotated[
        bool,
        typer.Option("--uncertainty", help="Add a confidence per region (noise-resampling bootstrap around the peak)."),
    ] = False,
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap replicates with --uncertainty.")] = 30,
    seed: Annotated[int, typer.Option("--seed", callback=_seed_option, help="Seed of the bootstrap replicates.")] = 0,
) -> None:
    """Localize the sources of an EEG recording; writes an MNE source estimate, tables and an HTML report.

    Recordings of any length are processed in 20-s blocks in bounded memory.
    """
    from .localization import localize_file
    from .localization.core import default_uncertainty, logged_warnings

    if resamples < 2:  # checked with or without --uncertainty, before any work
        raise BrainForgeError(f"--resamples must be at least 2, got {resamples}.")
    bootstrap = default_uncertainty(solver, resamples, seed) if uncertainty else None
    with logged_warnings() as logged:
        result = localize_file(
            recording, out, solver, l_freq=l_freq or None, h_freq=h_freq or None, tmin=tmin, tmax=tmax,
            events=tuple(split_names(events)) if events is not None else None,
            channels=tuple(split_names(channels)) or None,
            exclude=tuple(split_names(exclude)),
            positions=positions,
            timecourses=timecourses, progress=progress and sys.stderr.isatty(), uncertainty=bootstrap,
            condition=condition,
        )  # fmt: skip
    for note in result.notes:  # the recording's and the estimate's caveats, each once (some were logged)
        if note not in logged:
            typer.echo(f"Note: {note}")
    for peak in result.peaks[:3]:
        typer.echo(
            f"Peak {peak['rank']}: {peak['name']} ({peak['label']}, {peak['lobe']}) at {peak['time_s']:.3f} s, "
            f"({peak['x_mm']}, {peak['y_mm']}, {peak['z_mm']}) mm (fsaverage MRI), "
            f"relative amplitude {peak['relative_amplitude']:.2f}"
            + (f", confidence {peak['confidence']:.2f}" if "confidence" in peak else "")
        )
    written = ["source_estimate-stc.h5", "peaks.csv", "summary.json", "report.html"]
    if result.head.n_deep_regions:
        written.append("deep_sources.csv")
    if result.confidence is not None:
        written += ["source_spread-stc.h5", "region_confidence.csv"]
        typer.echo(
            f"{100 * result.confidence.level:.0f} % confidence set: {result.confidence.set_size()} region(s), "
            f"margin {result.confidence.margin_mm:g} mm, {result.confidence.seconds:.1f} s"
        )
    file = result.outputs["region_timecourses"]["file"]
    typer.echo(f"Wrote {out}: {', '.join(written[:1] + ([file] if file else []) + written[1:])}")


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Demo folder (new, empty, or an earlier demo's).")] = Path(
        "brainforge-demo"
    ),
    seed: Annotated[int, typer.Option("--seed", callback=_seed_option, help="Seed of the simulated recording.")] = 0,
    snr: Annotated[float, typer.Option("--snr", help="Sensor SNR of the recording, dB.")] = 10.0,
) -> None:
    """Simulate a recording with a cortical and a deep source, localize it (default model, sLORETA), report."""
    from .localization import run_demo

    typer.echo("Building or loading the template head model and the spike library (minutes on first use) ...")
    errors = run_demo(out, seed=seed, snr_db=snr)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Localization error (mm), recording at {snr:g} dB")
    table.add_column("source")
    table.add_column("default model")
    table.add_column("sLORETA")
    for kind, ours, sloreta in zip(errors["sources"], errors["default"], errors["sloreta"], strict=True):
        table.add_row(kind, f"{ours:.1f}", f"{sloreta:.1f}")
    Console().print(table)
    typer.echo(f"Done in {errors['seconds']:.0f} s. Report: {out}/default/report.html (sLORETA: {out}/sloreta/)")


def main() -> None:
    """Entry point: run the CLI, turning input errors into one-line messages."""
    try:
        app()
    except BrainForgeError as err:
        typer.echo(f"Error: {err}", err=True)
        sys.exit(2)
    except FileNotFoundError as err:
        typer.echo(f"Error: no such file or folder: {err.filename or err}", err=True)
        sys.exit(2)
    except OSError as err:  # a file where a folder is needed, an unreadable file, a folder nobody may write into
        where = f" ({err.filename})" if err.filename else ""
        typer.echo(
            f"Error: {err.strerror or err}{where}; check the path, that a folder is not a file, that you may "
            "read it (an input) or write there (an output), and the free disk space.",
            err=True,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
