"""The proposed hybrid: a CNN over each time step's scalp map, then a Transformer over time."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._errors import BrainForgeError
from ..topomap import Montage, check_interpolation, make_topomap
from .base import SourceModel, register, sinusoidal_encoding


@dataclass(frozen=True)
class CNNTransformerConfig:
    """Hyper-parameters of :class:`CNNTransformer`.

    The defaults train on two CPU cores within two hours (see
    ``benchmarks/models.py``): a 32 x 32 map, two narrow convolution blocks, a
    1 x 1 convolution down to 4 channels before flattening (no pooling, and no
    huge flatten layer), and a small Transformer.

    Parameters
    ----------
    grid_size : int
        Side of the scalp map, pixels.
    interpolation : ``"linear"`` | ``"cubic"`` | ``"rbf"``
        How channel values become a map.
    conv_channels : tuple of int
        Output channels of each Conv2D + BatchNorm + ELU block (3 x 3, no pooling).
    reduce_channels : int
        Channels of the 1 x 1 convolution before flattening.
    mask_channel : bool
        Feed the head mask as a second input channel (tells the network
        where a montage has no electrodes).
    d_model : int
        Transformer width (the linear embedding of each flattened map).
    n_heads : int
        Attention heads.
    n_layers : int
        Transformer encoder layers.
    dim_feedforward : int
        Width of the position-wise feed-forward network.
    dropout : float
        Dropout in the Transformer.
    max_len : int
        Longest sequence, time samples (the positional-encoding table).
    """

    grid_size: int = 32
    interpolation: str = "linear"
    conv_channels: tuple[int, ...] = (8, 8)
    reduce_channels: int = 4
    mask_channel: bool = True
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    dim_feedforward: int = 256
    dropout: float = 0.1
    max_len: int = 4096

    def __post_init__(self) -> None:
        check_interpolation(self.interpolation)
        if self.d_model % self.n_heads or self.d_model % 2:
            raise BrainForgeError(f"d_model ({self.d_model}) must be even and divisible by n_heads ({self.n_heads}).")
        if not self.conv_channels or min(self.conv_channels) < 1 or self.reduce_channels < 1:
            raise BrainForgeError("conv_channels and reduce_channels must be positive.")


def conv_block(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """Conv2D (same padding) + BatchNorm + ELU; no pooling."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ELU(),
    )


@register
class CNNTransformer(SourceModel):
    """Topomap per time step -> CNN -> linear embedding -> sinusoidal positions -> Transformer -> regions.

    Works on any montage: the EEG is interpolated onto a fixed grid first.
    """

    name = "cnn_transformer"
    config_class = CNNTransformerConfig
    any_montage = True

    def __init__(self, config: CNNTransformerConfig, n_regions: int, montage: Montage):
        super().__init__(config, n_regions, montage)
        c = config
        blocks, in_channels = [], 2 if c.mask_channel else 1
        for width in c.conv_channels:
            blocks.append(conv_block(in_channels, width))
            in_channels = width
        # A 1 x 1 convolution cuts the channels before flattening, instead of pooling.
        blocks.append(conv_block(in_channels, c.reduce_channels, kernel_size=1))
        self.cnn = nn.Sequential(*blocks)
        self.embed = nn.Linear(c.reduce_channels * c.grid_size**2, c.d_model)
        self.register_buffer("positions", sinusoidal_encoding(c.max_len, c.d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(
            c.d_model, c.n_heads, c.dim_feedforward, c.dropout, batch_first=True, activation="gelu"
        )
        self.transformer = nn.TransformerEncoder(layer, c.n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(c.d_model, n_regions)

    def maps(self, eeg: torch.Tensor, montage: Montage) -> torch.Tensor:
        """Scalp maps (B * T, 1 or 2, H, W) of EEG (B, T, C), in channels-last memory layout.

        PyTorch's CPU convolutions run about 3x faster on these small maps
        with channels last (the values are the same).
        """
        topomap = make_topomap(montage, self.config.interpolation, self.config.grid_size)
        maps = topomap(eeg).reshape(-1, self.config.grid_size, self.config.grid_size, 1)
        if self.config.mask_channel:
            mask = topomap.mask.to(device=maps.device, dtype=maps.dtype).reshape(maps.shape[1:]).expand_as(maps)
            maps = torch.cat([maps, mask], dim=3)
        return maps.permute(0, 3, 1, 2)

    def forward(self, eeg: torch.Tensor, montage: Montage | None = None) -> torch.Tensor:
        """Source activity (B, T, R) of EEG (B, T, C) recorded with ``montage``."""
        eeg, montage = self.check_input(eeg, montage)
        batch, n_times = eeg.shape[:2]
        if n_times > self.config.max_len:
            raise BrainForgeError(f"{n_times} time samples exceed max_len={self.config.max_len}; cut the EEG.")
        features = self.cnn(self.maps(eeg, montage)).flatten(1)
        tokens = self.embed(features).reshape(batch, n_times, -1) + self.positions[:n_times]
        return self.head(self.transformer(tokens))
