"""Sensor noise and the SNR definitions used everywhere in BrainForge.

SNR definitions (decibels, powers averaged over time and channels, after
removing each channel's mean over time; EEG average-referenced):

- **sensor SNR** = 10 log10(P(clean EEG) / P(noise)), over the whole window.
- **source SNR** = 10 log10(P(EEG of the patch) / P(EEG of the background
  activity of every other region)), in a window of +-100 samples around the
  spike peak, as DeepSIF's ``calcualate_SNR`` computes it.

DeepSIF's implementation scales its noise to half the power its nominal SNR
asks for, so its real sensor SNR is about 3 dB higher than the nominal one;
``snr_convention="deepsif"`` reproduces that, ``"power"`` (the default)
delivers the nominal SNR. Samples always record the SNR they really have.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._errors import BrainForgeError

NOISE_TYPES = ("white", "pink", "realistic")


def power(x: np.ndarray) -> float:
    """Mean power after removing each channel's time mean; ``x`` is (time, channels)."""
    centred = x - x.mean(axis=0)
    return float(np.mean(centred**2))


def white_noise(n_times: int, n_channels: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise, shape (n_times, n_channels)."""
    return rng.standard_normal((n_times, n_channels))


def pink_noise(n_times: int, n_channels: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise (power spectral density proportional to 1/f), independent per channel."""
    n_freqs = n_times // 2 + 1
    parts = rng.standard_normal((2, n_freqs, n_channels))  # real parts, then imaginary parts
    freqs = np.arange(n_freqs, dtype=float)
    freqs[0] = 1.0
    amplitude = np.sqrt(freqs)[:, None]
    spectrum = np.empty((n_freqs, n_channels), complex)
    np.divide(parts[0], amplitude, out=spectrum.real)
    np.divide(parts[1], amplitude, out=spectrum.imag)
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n=n_times, axis=0)


@dataclass(frozen=True)
class RealisticNoise:
    """Segments of resting EEG to use as sensor noise.

    Attributes
    ----------
    segments : array, shape (n_segments, n_times, n_channels)
        The recordings.
    ch_names : list of str
        Their channels.
    """

    segments: np.ndarray
    ch_names: list[str]

    def draw(self, ch_names: list[str], n_times: int, rng: np.random.Generator) -> np.ndarray:
        """Return a random segment for ``ch_names`` (random start when longer than ``n_times``)."""
        missing = [n for n in ch_names if n not in self.ch_names]
        if missing:
            raise BrainForgeError(f"Realistic noise lacks channels {', '.join(missing[:10])}; use white or pink noise.")
        if self.segments.shape[1] < n_times:
            raise BrainForgeError(f"Realistic noise segments have {self.segments.shape[1]} samples; need {n_times}.")
        segment = self.segments[rng.integers(len(self.segments))]
        start = rng.integers(self.segments.shape[1] - n_times + 1)
        index = [self.ch_names.index(n) for n in ch_names]
        return segment[start : start + n_times, index]


def load_deepsif_noise(folder: str | Path) -> RealisticNoise:
    """Read DeepSIF's ``realistic_noise.mat`` (4 x 500 x 75) with the channel names of ``electrode_75.mat``."""
    from scipy.io import loadmat

    folder = Path(folder)
    noise_file, electrodes = folder / "realistic_noise.mat", folder / "electrode_75.mat"
    for f in (noise_file, electrodes):
        if not f.is_file():
            raise BrainForgeError(f"Realistic-noise file missing: {f}.")
    data = np.asarray(loadmat(noise_file)["data"], float)
    names = [str(n) for n in np.atleast_1d(loadmat(electrodes, squeeze_me=True)["eloc75"]["labels"])]
    if data.ndim != 3 or data.shape[2] != len(names):
        raise BrainForgeError(f"{noise_file.name} has shape {data.shape}, expected (segments, times, {len(names)}).")
    return RealisticNoise(segments=data, ch_names=names)


def scale_to_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float, convention: str = "power") -> np.ndarray:
    """Scale ``noise`` so that ``signal`` / ``noise`` has ``snr_db`` (see the module's definitions)."""
    return noise * noise_gain(power(signal), power(noise), snr_db, convention)


def noise_gain(signal_power: float, noise_power: float, snr_db: float, convention: str = "power") -> float:
    """Factor on noise of power ``noise_power`` that gives ``snr_db`` over a signal of ``signal_power``.

    Powers as :func:`power` defines them; ``convention="deepsif"`` halves the
    noise power as DeepSIF does (about 3 dB more SNR than asked).
    """
    if convention not in ("power", "deepsif"):
        raise BrainForgeError(f"snr_convention must be 'power' or 'deepsif', got {convention!r}.")
    if noise_power <= 0:
        raise BrainForgeError("The noise has no power.")
    target = signal_power / 10 ** (snr_db / 10)
    if convention == "deepsif":
        target /= 2.0
    return float(np.sqrt(target / noise_power))


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """Realised SNR in dB (module definition)."""
    return 10.0 * np.log10(power(signal) / power(noise))
