"""The proposed hybrid: a CNN over each time step's scalp map, then a Transformer over time."""

from __future__ import annotations

import math
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
    samples_per_token : int
        Consecutive time samples grouped into one Transformer token: their
        ``k`` maps are stacked as CNN input channels and the token's output
        gives ``k`` time samples of every region. ``k = 10`` at 500 Hz makes
        a 1-s segment 50 tokens of 20 ms, so attention spans the whole spike
        (rise, peak and slow wave) at a tenth of the CNN and attention cost
        of one token per sample. 1 (one map per token) is the original
        design. EEG whose length is not a multiple of ``k`` is padded with
        its last sample and the padding cut from the output.
    output_smoothing_samples : float
        Standard deviation, in time samples, of a fixed Gaussian low-pass
        applied to the output along time (kernel cut at 3 standard
        deviations, edges replicated); 0 applies none. With ``k > 1`` the
        head gives each token's ``k`` samples from one Transformer output,
        so consecutive tokens meet in a step. For the bundled default
        (``k = 10``) 2 samples cut the jump across a token boundary from ten
        times the jump inside a token to about twice (docs/MODEL_CARD.md).
        The amplitude response is ``exp(-2 (pi sigma f) ** 2)`` with sigma in
        seconds and f in Hz: 2 samples at 500 Hz (4 ms) are -3 dB at 33 Hz
        (-1.1 dB at 20 Hz). It has no weights, so it can be set on a trained
        model through its config.
    head_hidden : int
        Width of a second output path beside the linear head: Linear
        (``d_model`` -> ``head_hidden``), GELU, Linear (-> ``k`` x regions),
        added to the linear head's output; 0 adds none. A linear head from
        ``d_model`` features can only give maps in one (``d_model`` + bias)
        affine subspace of the regions. For the bundled default (128
        features) that subspace keeps 33-58 % of the energy of the
        centre-weighted patch it is trained to give (the best possible 128
        dimensions 72 %, 256 keep 92 %; ``scripts/head_rank_probe.py``),
        which bounds how sharp its maps can be. A fine-tune with
        ``head_hidden=512`` did not narrow the estimates, though
        (``training_runs/README.md``, default-v16). The path's last layer
        starts at zero, so a model fine-tuned from one without it
        (``brainforge train --init``) starts with the same outputs.
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
    samples_per_token: int = 1
    output_smoothing_samples: float = 0.0
    head_hidden: int = 0

    def __post_init__(self) -> None:
        check_interpolation(self.interpolation)
        if self.n_heads < 1 or self.n_layers < 1:
            raise BrainForgeError(f"n_heads and n_layers must be 1 or more, got {self.n_heads} and {self.n_layers}.")
        if self.d_model % self.n_heads or self.d_model % 2:
            raise BrainForgeError(f"d_model ({self.d_model}) must be even and divisible by n_heads ({self.n_heads}).")
        if not self.conv_channels or min(self.conv_channels) < 1 or self.reduce_channels < 1:
            raise BrainForgeError("conv_channels and reduce_channels must be positive.")
        if self.head_hidden < 0:
            raise BrainForgeError(f"head_hidden must be 0 (no second output path) or more, got {self.head_hidden}.")
        if self.samples_per_token < 1:
            raise BrainForgeError(f"samples_per_token must be 1 or more, got {self.samples_per_token}.")
        if not (math.isfinite(self.output_smoothing_samples) and 0 <= self.output_smoothing_samples <= self.max_len):
            raise BrainForgeError(
                f"output_smoothing_samples must be 0 (none) or a positive number of samples up to max_len "
                f"({self.max_len}), got {self.output_smoothing_samples}."
            )


def gaussian_weights(sigma_samples: float) -> tuple[float, ...]:
    """Normalised Gaussian of standard deviation ``sigma_samples``, cut at 3 deviations (odd length, >= 1).

    The radius is SciPy's (``scipy.ndimage.gaussian_filter1d`` with ``truncate=3``):
    ``int(3 * sigma + 0.5)`` samples.
    """
    if sigma_samples == 0:
        return (1.0,)
    half = int(3 * sigma_samples + 0.5)
    weights = [math.exp(-0.5 * (offset / sigma_samples) ** 2) for offset in range(-half, half + 1)]
    return tuple(weight / math.fsum(weights) for weight in weights)


def _replicate_pad(activity: torch.Tensor, half: int) -> torch.Tensor:
    """Return activity (B, T, R) with its first and last time samples repeated ``half`` times at each end."""
    first, last = activity[:, :1], activity[:, -1:]
    return torch.cat([first.expand(-1, half, -1), activity, last.expand(-1, half, -1)], dim=1)


def _shifted_sum(padded: torch.Tensor, weights: tuple[float, ...], n_times: int) -> torch.Tensor:
    """Return ``sum_i weights[i] * padded[:, i : i + n_times]``: one in-place pass per kernel tap."""
    total = padded[:, :n_times] * weights[0]
    for offset, weight in enumerate(weights[1:], start=1):
        total.add_(padded[:, offset : offset + n_times], alpha=weight)
    return total


class _SmoothTime(torch.autograd.Function):
    """Smoothing along time (edges replicated) with a hand-written backward pass.

    Autograd through the shifted views of :func:`_shifted_sum` would keep one
    zero-filled, padded-size gradient per tap and a separate multiply per tap
    (``benchmarks/training_step.py`` prints the low-pass's share of a
    training step). The gradient of a convolution with replicated edges is
    the transposed convolution with the padding folded back onto the edge
    samples: one buffer, one fused multiply-add per tap. First derivatives
    only (``once_differentiable``: no double backward, which nothing here
    uses).
    """

    @staticmethod
    def forward(ctx, activity: torch.Tensor, weights: tuple[float, ...]) -> torch.Tensor:
        """Return the smoothed activity (B, T, R)."""
        ctx.weights = weights
        return _shifted_sum(_replicate_pad(activity, len(weights) // 2), weights, activity.shape[1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Return the gradient with respect to the activity (none for the weights)."""
        weights = ctx.weights
        n_times, half = grad.shape[1], len(weights) // 2
        grad_padded = grad.new_zeros(grad.shape[0], n_times + 2 * half, grad.shape[2])
        for offset, weight in enumerate(weights):
            grad_padded[:, offset : offset + n_times].add_(grad, alpha=weight)
        grad_activity = grad_padded[:, half : half + n_times]
        grad_activity[:, :1] += grad_padded[:, :half].sum(dim=1, keepdim=True)
        grad_activity[:, -1:] += grad_padded[:, half + n_times :].sum(dim=1, keepdim=True)
        return grad_activity, None


def smooth_time(activity: torch.Tensor, weights: tuple[float, ...]) -> torch.Tensor:
    """Convolve activity (B, T, R) with the kernel ``weights`` along time, edges replicated.

    A weighted sum of shifted views in the (B, T, R) layout: one pass per
    kernel tap, with no transpose: about 1 ms for one 1-s segment of 1014
    regions. ``conv1d`` over the ``B * R`` single-channel series gave the same
    values but nearly doubled the network's inference time and at least halved
    training steps per minute (under 5 against 10). The backward pass is
    written by hand (:class:`_SmoothTime`): a training step of default-v12's
    size runs 1.46 times as fast as with autograd through the views
    (``benchmarks/training_step.py``). The weights are Python floats, so no
    device transfer is needed on any device.
    """
    if len(weights) == 1:
        return activity
    return _SmoothTime.apply(activity, weights)


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
        k = c.samples_per_token
        blocks, in_channels = [], k + (1 if c.mask_channel else 0)
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
        self.head = nn.Linear(c.d_model, k * n_regions)
        self.head_mlp = None
        if c.head_hidden:
            self.head_mlp = nn.Sequential(
                nn.Linear(c.d_model, c.head_hidden), nn.GELU(), nn.Linear(c.head_hidden, k * n_regions)
            )
            nn.init.zeros_(self.head_mlp[-1].weight)  # starts as the linear head alone
            nn.init.zeros_(self.head_mlp[-1].bias)
        self.smoothing_weights = gaussian_weights(c.output_smoothing_samples)  # from the config: no state

    def maps(self, eeg: torch.Tensor, montage: Montage) -> torch.Tensor:
        """Scalp maps (B * T / k, k, H, W) of EEG (B, T, C), in channels-last memory layout.

        Each token's ``k`` maps are its input channels. ``T`` must be a
        multiple of ``k``. PyTorch's CPU convolutions run about 3x faster on
        these small maps with channels last (the values are the same).
        """
        size, k = self.config.grid_size, self.config.samples_per_token
        topomap = make_topomap(montage, self.config.interpolation, size)
        return topomap(eeg).reshape(-1, k, size, size).permute(0, 2, 3, 1).permute(0, 3, 1, 2)

    def features(self, eeg: torch.Tensor, montage: Montage) -> torch.Tensor:
        """CNN features (B * T / k, reduce_channels * H * W) of EEG (B, T, C).

        With ``mask_channel`` the head mask is the first convolution's last
        input channel. A convolution is linear, so that channel's response is
        computed once, from the mask alone, and added to the response to the
        maps: the same values as convolving maps and mask stacked, without
        copying the mask into every token (about a tenth of the CPU time).
        """
        maps = self.maps(eeg, montage)
        first, *rest = self.cnn
        if self.config.mask_channel:
            k, size = self.config.samples_per_token, self.config.grid_size
            conv = first[0]
            mask = make_topomap(montage, self.config.interpolation, size).mask
            mask = mask.to(device=maps.device, dtype=maps.dtype).reshape(1, 1, size, size)
            x = nn.functional.conv2d(maps, conv.weight[:, :k], conv.bias, padding=conv.padding)
            x += nn.functional.conv2d(mask, conv.weight[:, k:], padding=conv.padding)  # one map, broadcast over tokens
            for layer in first[1:]:
                x = layer(x)
        else:
            x = first(maps)
        for block in rest:
            x = block(x)
        return x.flatten(1)

    def forward(self, eeg: torch.Tensor, montage: Montage | None = None) -> torch.Tensor:
        """Source activity (B, T, R) of EEG (B, T, C) recorded with ``montage``."""
        eeg, montage = self.check_input(eeg, montage)
        batch, n_times = eeg.shape[:2]
        if n_times > self.config.max_len:
            raise BrainForgeError(f"{n_times} time samples exceed max_len={self.config.max_len}; cut the EEG.")
        k = self.config.samples_per_token
        padding = -n_times % k
        if padding:
            eeg = torch.cat([eeg, eeg[:, -1:].expand(batch, padding, eeg.shape[2])], dim=1)
        n_tokens = (n_times + padding) // k
        features = self.features(eeg, montage)
        tokens = self.embed(features).reshape(batch, n_tokens, -1) + self.positions[:n_tokens]
        hidden = self.transformer(tokens)
        out = self.head(hidden)
        if self.head_mlp is not None:
            out = out + self.head_mlp(hidden)
        out = out.reshape(batch, n_tokens * k, self.n_regions)
        return smooth_time(out[:, :n_times], self.smoothing_weights)
