"""Model checkpoints: safetensors weights plus a JSON config. Loading never unpickles."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from .._cache import atomic_path
from .._config import config_from_dict, has_plain_type
from .._data import default_model_dir  # noqa: F401  (re-exported by brainforge.models)
from .._errors import BrainForgeError
from ..topomap import Montage
from .base import MODELS, SourceModel
from .router import ChannelCountRouter

logger = logging.getLogger("brainforge")

#: ``format`` field of every BrainForge model config.
CHECKPOINT_FORMAT = "brainforge-model"
CHECKPOINT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_model(model: SourceModel, directory: str | Path, info: dict | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``, each atomically.

    Parameters
    ----------
    model : SourceModel
        The network.
    directory : path
        Destination folder (created).
    info : dict | None
        JSON-ready extras stored in the config: head model, data parameters
        and seed, training settings, validation metrics.

    Returns
    -------
    directory : Path
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    config = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "brainforge_version": __version__,
        "model": {"name": model.name, "params": model.hyper_parameters(), "n_parameters": model.n_parameters},
        "n_regions": model.n_regions,
        "montage": {
            "ch_names": list(model.montage.ch_names),
            "ch_pos_mm": np.round(model.montage.ch_pos_mm, 4).tolist(),
            "any_montage": model.any_montage,
        },
        **(info or {}),
    }
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(weights, str(tmp), metadata={"format": CHECKPOINT_FORMAT, "model": model.name})
    with atomic_path(directory / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(config, indent=1))
    return directory


def read_model_config(directory: str | Path) -> dict:
    """Read and check ``config.json`` of a model folder (one-line errors for missing or foreign files)."""
    directory = Path(directory)
    if not directory.exists():
        raise BrainForgeError(f"Model folder not found: {directory}.")
    path = directory / CONFIG_FILE if directory.is_dir() else directory
    if not path.is_file():
        raise BrainForgeError(f"{directory} is not a BrainForge model: it has no {CONFIG_FILE}.")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BrainForgeError(f"{path} is corrupt (not JSON: {err}); re-train or re-download the model.") from err
    if not isinstance(config, dict) or config.get("format") != CHECKPOINT_FORMAT:
        raise BrainForgeError(f"{path} is not a BrainForge model config (no format '{CHECKPOINT_FORMAT}').")
    version = config.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise BrainForgeError(
            f"{path}: format_version {version!r} is not an integer; the file was edited or is foreign."
        )
    if version > CHECKPOINT_VERSION:
        raise BrainForgeError(f"{path} needs a newer BrainForge (format {version}); upgrade.")
    try:
        name = config["model"]["name"]
        config["model"]["params"], config["montage"]["ch_names"], config["montage"]["ch_pos_mm"], config["n_regions"]
    except (KeyError, TypeError) as err:
        raise BrainForgeError(
            f"{path} lacks the field {err}: not a complete BrainForge model config; re-train or re-download the model."
        ) from err
    _check_field_types(config, path)
    data = config.get("data") or {}
    sfreq = data.get("sfreq_hz", 500.0) if isinstance(data, dict) else None
    if isinstance(sfreq, bool) or not isinstance(sfreq, int | float) or not 0 < sfreq < float("inf"):
        raise BrainForgeError(
            f"{path}: data.sfreq_hz {sfreq!r} is not a sampling rate in Hz (a damaged file); "
            "re-train or re-download the model."
        )
    if name not in MODELS:
        raise BrainForgeError(f"{path} names an unknown model {name!r}; known: {', '.join(sorted(MODELS))}.")
    return config


def _check_field_types(config: dict, path: Path) -> None:
    """Raise a one-line error where a config's required fields have the wrong type (a damaged or edited file)."""
    n_regions = config["n_regions"]
    names = config["montage"]["ch_names"]
    positions = np.asarray(config["montage"]["ch_pos_mm"], dtype=object)
    problems = []
    if not has_plain_type(n_regions, "int") or n_regions < 1:
        problems.append(f"n_regions {n_regions!r} is not a positive integer")
    if not isinstance(config["model"]["params"], dict):
        problems.append("model.params is not a mapping")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        problems.append("montage.ch_names is not a list of channel names")
    elif positions.shape != (len(names), 3) or not all(has_plain_type(v, "float") for v in positions.ravel()):
        problems.append(f"montage.ch_pos_mm is not {len(names)} positions of 3 numbers")
    for field in ("head_model", "data", "training"):
        if field in config and not isinstance(config[field], dict):
            problems.append(f"{field} is not a mapping")
    if problems:
        raise BrainForgeError(f"{path}: {'; '.join(problems)} (a damaged file); re-train or re-download the model.")


def training_input(config: dict) -> str:
    """Return what a model config says its network was trained to read, as JSON.

    The head model's template configuration, the sampling rate (Hz), the
    segment length (samples) and the training crop: two models fit one input
    only if these agree (weight averages, channel-count routers).
    """
    data, training = config.get("data", {}), config.get("training", {})
    head = config.get("head_model", {}).get("config")
    if isinstance(head, dict):  # options at their default mean the same head whether written or not
        head = {k: v for k, v in head.items() if not (k in _DEFAULT_FREE_HEAD_KEYS and not any(np.ravel(v)))}
    read = (head, data.get("sfreq_hz"), data.get("segment_samples"), training.get("crop_samples"))
    return json.dumps(read, sort_keys=True)


#: Head-model options added after models were saved without them; 0 means "not moved".
_DEFAULT_FREE_HEAD_KEYS = ("cap_shift_mm", "cap_vertical_shift_mm")


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise BrainForgeError(f"Model weights not found: {path}.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise BrainForgeError(f"{path} is corrupt ({err}); re-train or re-download the model.") from err


def model_from_config(config: dict) -> SourceModel:
    """Build the (untrained) network a checkpoint config describes."""
    cls = MODELS[config["model"]["name"]]
    try:
        params = config_from_dict(cls.config_class, config["model"]["params"])
        montage = Montage(tuple(config["montage"]["ch_names"]), np.asarray(config["montage"]["ch_pos_mm"], float))
        return cls(params, int(config["n_regions"]), montage)
    except (TypeError, ValueError) as err:
        raise BrainForgeError(f"The model config is invalid: {err}.") from err


def load_model(directory: str | Path, map_location: str | torch.device = "cpu") -> tuple[SourceModel, dict]:
    """Load a model saved by :func:`save_model`, in eval mode.

    Parameters
    ----------
    directory : path
        Folder with ``config.json`` and ``model.safetensors``.
    map_location : str | torch.device
        Device of the weights.

    Returns
    -------
    model : SourceModel
    config : dict
        The full JSON config (head model, data, training, metrics).
    """
    directory = Path(directory)
    config = read_model_config(directory)
    model = model_from_config(config)
    weights = _read_weights(directory / WEIGHTS_FILE)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise BrainForgeError(f"The weights in {directory} do not fit its config ({detail}); the folder is foreign.")
    model.load_state_dict(weights)
    model.to(map_location).eval()
    return model, config


def load_weights(model: SourceModel, directory: str | Path) -> list[str]:
    """Initialize ``model`` from a checkpoint for fine-tuning; tensors whose shape differs are kept fresh.

    Returns
    -------
    skipped : list of str
        Parameters not taken from the checkpoint (e.g. the output layer when
        the new head model has another number of regions).
    """
    directory = Path(directory)
    config = read_model_config(directory)
    if config["model"]["name"] == ChannelCountRouter.name != model.name:
        members = config.get("members", {})
        paths = " or ".join(str(members[role]["path"]) for role in ("dense", "sparse") if role in members)
        raise BrainForgeError(
            f"--init {directory} holds two networks (a channel-count router); start from one member's folder"
            f"{' (' + paths + ')' if paths else ''}."
        )
    if config["model"]["name"] != model.name:
        raise BrainForgeError(
            f"--init {directory} holds a {config['model']['name']} model, not {model.name}; pick the same --model."
        )
    weights = _read_weights(directory / WEIGHTS_FILE)
    state = model.state_dict()
    take = {k: v for k, v in weights.items() if k in state and state[k].shape == v.shape}
    skipped = sorted(set(state) - set(take))
    if not take:
        raise BrainForgeError(f"No weight of {directory} fits this {model.name}; check the hyper-parameters.")
    model.load_state_dict(take, strict=False)
    if skipped:
        logger.warning(
            "Fine-tuning: %d tensor(s) kept as built, not in the checkpoint or of another shape: %s",
            len(skipped),
            ", ".join(skipped),
        )
    return skipped
