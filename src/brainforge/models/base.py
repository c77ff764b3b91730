"""What every source-imaging network shares: one forward signature, montage handling, a registry."""

from __future__ import annotations

import itertools
import logging
from dataclasses import asdict
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .._config import config_from_dict
from .._errors import BrainForgeError
from ..synthesis.normalize import normalize_eeg
from ..topomap import Montage

logger = logging.getLogger("brainforge")

#: name -> model class, filled by :func:`register`.
MODELS: dict[str, type[SourceModel]] = {}


def register(cls: type[SourceModel]) -> type[SourceModel]:
    """Class decorator: make a model buildable by name."""
    MODELS[cls.name] = cls
    return cls


class SourceModel(nn.Module):
    """Base class: ``forward(eeg[B, T, C], montage) -> sources[B, T, R]``.

    Parameters
    ----------
    config : dataclass
        The model's hyper-parameters (its ``config_class``).
    n_regions : int
        Number of source regions R.
    montage : Montage
        The training montage. Models with ``any_montage = True`` work on scalp
        maps and accept any montage at run time; the others need the training
        channels (given in any order, or as a subset of a larger montage).
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    any_montage: ClassVar[bool] = False

    def __init__(self, config, n_regions: int, montage: Montage):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise BrainForgeError(f"{self.name} takes a {self.config_class.__name__}, got {type(config).__name__}.")
        if n_regions < 1:
            raise BrainForgeError(f"n_regions must be positive, got {n_regions}.")
        self.config = config
        self.n_regions = int(n_regions)
        self.montage = montage

    @property
    def n_channels(self) -> int:
        """Channels of the training montage."""
        return self.montage.n_channels

    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def summary(self) -> str:
        """One line: name, parameter count, regions and montage."""
        montage = "any montage" if self.any_montage else f"{self.n_channels} channels"
        return f"{self.name}: {self.n_parameters:,} parameters, {self.n_regions} regions, {montage}"

    def extra_repr(self) -> str:
        """Parameter count, shown by ``print(model)``."""
        return f"n_parameters={self.n_parameters:,}"

    def hyper_parameters(self) -> dict:
        """Return the config as a JSON-ready dict."""
        return asdict(self.config)

    # ------------------------------------------------------------------ input
    def check_input(self, eeg: torch.Tensor, montage: Montage | None) -> tuple[torch.Tensor, Montage]:
        """Validate ``eeg`` (B, T, C) against ``montage``; fixed-montage models get their channels picked."""
        if eeg.ndim != 3:
            raise BrainForgeError(f"EEG must be (batch, time, channels), got shape {tuple(eeg.shape)}.")
        montage = montage or self.montage
        if eeg.shape[-1] != montage.n_channels:
            raise BrainForgeError(f"EEG has {eeg.shape[-1]} channels but the montage has {montage.n_channels}.")
        if self.any_montage or montage.ch_names == self.montage.ch_names:
            return eeg, montage
        missing = [n for n in self.montage.ch_names if n not in montage.ch_names]
        if missing:
            shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
            raise BrainForgeError(
                f"{self.name} was trained on {self.n_channels} fixed channels and this montage lacks {shown}; "
                "use a map-based model (cnn_transformer, convdip) or fine-tune on this montage."
            )
        index = torch.as_tensor([montage.ch_names.index(n) for n in self.montage.ch_names], device=eeg.device)
        return normalize_eeg(eeg.index_select(-1, index)), self.montage

    def forward(self, eeg: torch.Tensor, montage: Montage | None = None) -> torch.Tensor:  # pragma: no cover
        """Source activity (B, T, R) of EEG (B, T, C) recorded with ``montage``."""
        raise NotImplementedError


def build_model(name: str, n_regions: int, montage: Montage, config=None, **params) -> SourceModel:
    """Build a registered model by name.

    Parameters
    ----------
    name : str
        ``cnn_transformer``, ``deepsif``, ``convdip`` or ``gru``.
    n_regions : int
        Output regions.
    montage : Montage
        Training montage.
    config : dataclass | None
        Hyper-parameters; by default the model's defaults updated with ``params``.
    **params
        Individual hyper-parameters, e.g. ``d_model=64``.

    Returns
    -------
    model : SourceModel
        Logs its parameter count.
    """
    if name not in MODELS:
        raise BrainForgeError(f"Unknown model {name!r}; choose from {', '.join(sorted(MODELS))}.")
    cls = MODELS[name]
    if config is None:
        config = config_from_dict(cls.config_class, params)
    elif params:
        raise BrainForgeError("Give either a config or keyword hyper-parameters, not both.")
    try:
        model = cls(config, n_regions, montage)
    except BrainForgeError:  # the network's own one-line checks
        raise
    except (ValueError, TypeError, ZeroDivisionError, AssertionError, RuntimeError) as err:
        reason = " ".join(str(err).split()).rstrip(".") or type(err).__name__
        raise BrainForgeError(f"The {name} hyper-parameters do not make a network ({reason}); check them.") from err
    logger.info(model.summary())
    return model


def check_model_params(name: str, n_regions: int, params: dict) -> None:
    """Build the network that ``name`` and ``params`` describe on a stand-in montage, and drop it.

    Finds an unknown model, unknown or mistyped hyper-parameters and values
    that make no network (``n_heads=0``), in a fraction of a second, before
    a training run builds its data.

    Raises
    ------
    BrainForgeError
        Naming the problem.
    """
    # Sixteen electrodes on the upper half of a sphere of 90 mm: any network's input layer fits them.
    theta = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)
    polar = np.linspace(0.3, 1.3, 16)
    positions = 90.0 * np.stack([np.sin(polar) * np.cos(theta), np.sin(polar) * np.sin(theta), np.cos(polar)], 1)
    montage = Montage(tuple(f"E{i}" for i in range(16)), positions)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))  # no parameter count for a network that is dropped
    try:
        build_model(name, n_regions, montage, **params)
    finally:
        logger.setLevel(level)


_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def inference_copy(model: nn.Module) -> nn.Module:
    """Return a copy of ``model`` for inference, each BatchNorm folded into the convolution before it.

    In evaluation mode a BatchNorm after a convolution is an affine map per
    channel, so it can live in the convolution's weights and bias: the same
    output (to float rounding) in one pass instead of two, and PyTorch's CPU
    convolutions run faster with a bias than followed by a separate
    normalization. Activations after them compute in place. Use the copy
    under ``torch.inference_mode()`` only; it is not meant for training.

    Parameters
    ----------
    model : torch.nn.Module
        A model; it is not changed.

    Returns
    -------
    copy : torch.nn.Module
        A copy in evaluation mode, each ``Conv + BatchNorm`` pair inside an
        ``nn.Sequential`` replaced by one convolution and an ``nn.Identity``,
        ELU and ReLU activations in place.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, nn.ELU | nn.ReLU):
            module.inplace = True
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            conv, norm = module._modules[first], module._modules[second]
            if isinstance(conv, _CONVOLUTIONS) and isinstance(norm, nn.modules.batchnorm._BatchNorm):
                module._modules[first] = fuse_conv_bn_eval(conv, norm)
                module._modules[second] = nn.Identity()
    return folded


def sinusoidal_encoding(n_positions: int, d_model: int) -> torch.Tensor:
    """Return the Transformer's sinusoidal positional encoding, shape (n_positions, d_model)."""
    position = np.arange(n_positions)[:, None]
    freq = np.exp(-np.log(10000.0) * np.arange(0, d_model, 2) / d_model)
    table = np.zeros((n_positions, d_model), np.float32)
    table[:, 0::2] = np.sin(position * freq)
    table[:, 1::2] = np.cos(position * freq[: d_model // 2])
    return torch.from_numpy(table)
