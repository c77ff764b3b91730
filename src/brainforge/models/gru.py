"""The dual-path GRU network (Khosravi et al. 2023): a dense path gated by a bidirectional-GRU path."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..topomap import Montage
from .base import SourceModel, register


@dataclass(frozen=True)
class GRUConfig:
    """Hyper-parameters of :class:`DualPathGRU`, the published ones by default.

    Parameters
    ----------
    dense_units : int
        Hidden width of the dense path.
    gru_units : int
        Units of each bidirectional GRU, each way (32).
    dropout : float
        Dropout (0.2).
    """

    dense_units: int = 300
    gru_units: int = 32
    dropout: float = 0.2


@register
class DualPathGRU(SourceModel):
    """Path 1: two dense layers (tanh, then linear) from channels to regions, per time step.

    Path 2: two bidirectional GRUs over time, then a dense sigmoid layer: a
    mask in [0, 1] per region and time. The output is their product.
    """

    name = "gru"
    config_class = GRUConfig

    def __init__(self, config: GRUConfig, n_regions: int, montage: Montage):
        super().__init__(config, n_regions, montage)
        c = config
        self.dense_path = nn.Sequential(
            nn.Linear(montage.n_channels, c.dense_units), nn.Tanh(), nn.Dropout(c.dropout),
            nn.Linear(c.dense_units, n_regions),
        )  # fmt: skip
        self.gru1 = nn.GRU(montage.n_channels, c.gru_units, batch_first=True, bidirectional=True)
        self.gru2 = nn.GRU(2 * c.gru_units, c.gru_units, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(c.dropout)
        self.mask = nn.Sequential(nn.Linear(2 * c.gru_units, n_regions), nn.Sigmoid())

    def forward(self, eeg: torch.Tensor, montage: Montage | None = None) -> torch.Tensor:
        """Source activity (B, T, R) of EEG (B, T, C)."""
        eeg, _ = self.check_input(eeg, montage)
        context = self.dropout(self.gru1(eeg)[0])
        context = self.dropout(self.gru2(context)[0])
        return self.dense_path(eeg) * self.mask(context)
