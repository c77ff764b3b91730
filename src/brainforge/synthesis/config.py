"""How synthetic samples are drawn: :class:`SynthesisConfig`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._errors import BrainForgeError
from .noise import NOISE_TYPES


@dataclass(frozen=True)
class SynthesisConfig:
    """How samples are drawn.

    Parameters
    ----------
    n_sources : (int, int)
        Fewest and most patches per sample.
    max_patch_regions : int
        Largest patch.
    half_amplitude_mm : (float, float)
        Range of the distance at which a patch's amplitude halves, mm.
    source_snr_db : (float, float)
        Range of each patch's SNR over the background activity, dB.
    sensor_snr_db : (float, float)
        Range of the sensor SNR, dB.
    noise_types : tuple of str
        Sensor noise drawn from these: ``"white"``, ``"pink"`` (1/f),
        ``"realistic"`` (needs realistic noise).
    snr_convention : ``"power"`` | ``"deepsif"``
        Nominal SNR delivered as asked, or as DeepSIF delivers it (about
        3 dB higher).
    deep_share : float
        Probability that a patch is centred on a deep region.
    overlap : bool
        Allow patches to share regions.
    max_onset_delay_ms : float
        Each patch's spike starts up to this much later (moving sources).
    background_share : float
        Probability that a sample holds no source at all: background
        activity and sensor noise only, with an all-zero target. Training on
        such segments keeps a network that slides over a long recording in
        distribution between spikes. Spikes already lie anywhere in the
        segment (the library's clips are cut on fixed 500-sample blocks, as
        DeepSIF's are) and about half the clips hold two or more spikes.
    n_channels : (int, int) | None
        Draw a random subset of this many channels of the head model's
        montage per sample; None keeps every channel.
    noise_bank_segments : int
        White and 1/f sensor noise come from a :class:`NoiseBank` of this
        many segments per type (distinct, circularly shifted, sign-flipped
        segments per channel): the generator runs about 2x faster than with
        fresh Gaussian draws. 0 draws fresh noise for every sample.
    noise_bank_seed : int
        Seed of the noise bank.
    """

    n_sources: tuple[int, int] = (1, 3)
    max_patch_regions: int = 70
    half_amplitude_mm: tuple[float, float] = (40.0, 60.0)
    source_snr_db: tuple[float, float] = (10.0, 20.0)
    sensor_snr_db: tuple[float, float] = (5.0, 20.0)
    noise_types: tuple[str, ...] = ("white", "pink")
    snr_convention: str = "power"
    deep_share: float = 0.0
    overlap: bool = False
    max_onset_delay_ms: float = 0.0
    background_share: float = 0.0
    n_channels: tuple[int, int] | None = None
    noise_bank_segments: int = 8192
    noise_bank_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_sources", "half_amplitude_mm", "source_snr_db", "sensor_snr_db", "n_channels"):
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or not np.isfinite(value).all() or value[0] > value[1]):
                raise BrainForgeError(f"{name} must be a (low, high) range of numbers with low <= high, got {value}.")
        if self.n_sources[0] < 1:
            raise BrainForgeError(f"n_sources must start at 1 or more, got {self.n_sources}.")
        unknown = set(self.noise_types) - set(NOISE_TYPES)
        if unknown or not self.noise_types:
            raise BrainForgeError(f"noise_types must be among {', '.join(NOISE_TYPES)}, got {self.noise_types}.")
        if self.snr_convention not in ("power", "deepsif"):
            raise BrainForgeError(f"snr_convention must be 'power' or 'deepsif', got {self.snr_convention!r}.")
        if not 0.0 <= self.deep_share <= 1.0:
            raise BrainForgeError(f"deep_share must lie in [0, 1], got {self.deep_share}.")
        if not 0.0 <= self.background_share < 1.0:
            raise BrainForgeError(f"background_share must lie in [0, 1), got {self.background_share}.")
        if self.n_channels is not None and self.n_channels[0] < 8:
            raise BrainForgeError("n_channels must keep at least 8 channels.")
        if not 0.0 <= self.max_onset_delay_ms < float("inf"):
            raise BrainForgeError(f"max_onset_delay_ms must be a finite delay >= 0 ms, got {self.max_onset_delay_ms}.")
        if self.noise_bank_segments < 0:
            raise BrainForgeError(
                f"noise_bank_segments must be 0 (fresh noise) or more, got {self.noise_bank_segments}."
            )
