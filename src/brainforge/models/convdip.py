"""ConvDip (Hecker et al. 2021): one small scalp map per time point, a CNN, dense layers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..topomap import Montage, check_interpolation, make_topomap
from .base import SourceModel, register


@dataclass(frozen=True)
class ConvDipConfig:
    """Hyper-parameters of :class:`ConvDip`, the published ones by default.

    Parameters
    ----------
    grid_size : int
        Side of the scalp map (9 in the reference implementation).
    interpolation : ``"linear"`` | ``"cubic"`` | ``"rbf"``
        How channel values become a map.
    n_filters : int
        Filters of each 3 x 3 convolution (64).
    n_conv_layers : int
        Convolution layers (1).
    dense_units : int
        Width of the dense layer (200).
    dropout : float
        Dropout before the output layer.
    """

    grid_size: int = 9
    interpolation: str = "linear"
    n_filters: int = 64
    n_conv_layers: int = 1
    dense_units: int = 200
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_interpolation(self.interpolation)


@register
class ConvDip(SourceModel):
    """Single time point: map -> Conv2D(64, 3x3, ReLU) -> flatten -> dense 200 (ReLU) -> linear output.

    Each time step is localized on its own (no temporal context). Because it
    reads a scalp map, any montage is accepted.
    """

    name = "convdip"
    config_class = ConvDipConfig
    any_montage = True

    def __init__(self, config: ConvDipConfig, n_regions: int, montage: Montage):
        super().__init__(config, n_regions, montage)
        layers, in_channels = [], 1
        for _ in range(config.n_conv_layers):
            layers += [nn.Conv2d(in_channels, config.n_filters, 3, padding=1), nn.ReLU()]
            in_channels = config.n_filters
        self.cnn = nn.Sequential(*layers)
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * config.grid_size**2, config.dense_units),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.dense_units, n_regions),
        )

    def forward(self, eeg: torch.Tensor, montage: Montage | None = None) -> torch.Tensor:
        """Source activity (B, T, R) of EEG (B, T, C)."""
        eeg, montage = self.check_input(eeg, montage)
        batch, n_times = eeg.shape[:2]
        size = self.config.grid_size
        maps = make_topomap(montage, self.config.interpolation, size)(eeg).reshape(-1, 1, size, size)
        return self.dense(self.cnn(maps)).reshape(batch, n_times, -1)
