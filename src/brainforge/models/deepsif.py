"""DeepSIF (Sun et al. 2022): spatial MLP with residuals, then a 3-layer LSTM to the regions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._errors import BrainForgeError
from ..topomap import Montage
from .base import SourceModel, register


@dataclass(frozen=True)
class DeepSIFConfig:
    """Hyper-parameters of :class:`DeepSIF`, the published ones by default.

    Parameters
    ----------
    hidden : int
        Width of the spatial module's output (``temporal_input_size``, 500).
    lstm_layers : int
        Stacked LSTM layers (3); the LSTM's hidden size is the number of regions.
    activation : str
        ``"ELU"`` (published) or ``"ReLU"``.
    """

    hidden: int = 500
    lstm_layers: int = 3
    activation: str = "ELU"

    def __post_init__(self) -> None:
        if self.activation not in ("ELU", "ReLU"):
            raise BrainForgeError(f"activation must be 'ELU' or 'ReLU', got {self.activation!r}.")


class MLPSpatialFilter(nn.Module):
    """DeepSIF's spatial module: C -> C -> C with a residual, C -> H -> H with a C -> H skip, an H value layer."""

    def __init__(self, n_channels: int, hidden: int, activation: str):
        super().__init__()
        self.fc11 = nn.Linear(n_channels, n_channels)
        self.fc12 = nn.Linear(n_channels, n_channels)
        self.fc21 = nn.Linear(n_channels, hidden)
        self.fc22 = nn.Linear(hidden, hidden)
        self.fc23 = nn.Linear(n_channels, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.activation = getattr(nn, activation)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial features, the published ``value_activation`` output."""
        act = self.activation
        x = act(self.fc12(act(self.fc11(x))) + x)
        x = act(self.fc22(act(self.fc21(x))) + self.fc23(x))
        return act(self.value(x))


@register
class DeepSIF(SourceModel):
    """The published DeepSIF network (``TemporalInverseNet``), for a fixed montage."""

    name = "deepsif"
    config_class = DeepSIFConfig

    def __init__(self, config: DeepSIFConfig, n_regions: int, montage: Montage):
        super().__init__(config, n_regions, montage)
        self.spatial = MLPSpatialFilter(montage.n_channels, config.hidden, config.activation)
        self.temporal = nn.LSTM(config.hidden, n_regions, num_layers=config.lstm_layers, batch_first=True)

    def forward(self, eeg: torch.Tensor, montage: Montage | None = None) -> torch.Tensor:
        """Source activity (B, T, R) of EEG (B, T, C)."""
        eeg, _ = self.check_input(eeg, montage)
        return self.temporal(self.spatial(eeg))[0]
