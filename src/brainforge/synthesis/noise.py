"""Sensor noise and the SNR definitions used everywhere in BrainForge.

SNR definitions (decibels, powers averaged over time and channels, after
removing each channel's mean over time):

- **sensor SNR** = 10 log10(P(clean EEG) / P(noise)), over the whole window,
  both average-referenced (each time's mean over channels removed, as
  :func:`~.normalize.normalize_eeg` does): the SNR of the EEG a sample holds.
- **source SNR** = 10 log10(P(EEG of the patch) / P(EEG of the background
  activity of every other region)), in a window of +-100 samples around the
  spike peak, as DeepSIF's ``calcualate_SNR`` computes it.

DeepSIF's implementation scales its noise to half the power its nominal SNR
asks for, so its real sensor SNR is about 3 dB higher than the nominal one;
``snr_convention="deepsif"`` reproduces that, ``"power"`` (the default)
delivers the nominal SNR. Samples always record the SNR they really have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

from .._errors import BrainForgeError

NOISE_TYPES = ("white", "pink", "realistic")


def power(x: np.ndarray) -> float:
    """Mean power of EEG ``x`` (time, channels) after removing each channel's time mean, average-referenced.

    Each time's channel mean is removed too, as :func:`~.normalize.normalize_eeg`
    does, so that an SNR is that of the EEG a sample holds.
    """
    centred = x - x.mean(axis=0)
    centred -= centred.mean(axis=1, keepdims=True)
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


@njit(cache=True)
def _gather_segments(bank, segments, shifts, signs, out):  # pragma: no cover - compiled
    """``out[t, c] = signs[c] * bank[segments[c], (t + shifts[c]) % n_times]``.

    Channel by channel, so each bank row is read in order (rows picked at
    random from a bank larger than the cache are read 2.5x faster so).
    """
    n_times, n_channels = out.shape
    for c in range(n_channels):
        row = bank[segments[c]]
        shift = shifts[c]
        sign = signs[c]
        for t in range(n_times - shift):
            out[t, c] = sign * row[t + shift]
        for t in range(n_times - shift, n_times):
            out[t, c] = sign * row[t + shift - n_times]
    return out


@njit(cache=True)
def touch_rows(source, rows):  # pragma: no cover - compiled
    """Read one value per cache line of ``source[rows]`` and return their sum.

    Many independent loads let the CPU fetch the rows from memory in
    parallel, ahead of a loop that then finds them in cache (random rows of a
    bank bigger than the cache are then read ~1.5x faster).
    """
    total = 0.0
    step = max(1, 64 // source.itemsize)
    for row in rows:
        for t in range(0, source.shape[1], step):
            total += source[row, t]
    return total


@dataclass
class NoiseBank:
    """White and 1/f noise drawn once, from which every sample takes its sensor noise cheaply.

    A sample's channel ``c`` gets segment ``s_c`` of the bank, circularly
    shifted by ``shift_c`` samples and multiplied by a random sign ``+-1``.
    The channels of one sample take distinct segments, so they are
    independent; each segment is white or 1/f noise generated circularly
    (:func:`white_noise`, :func:`pink_noise`), so a circular shift or a sign
    flip of it is an equally valid draw of the same process. A bank of
    ``n_segments`` segments of ``n_times`` samples offers
    ``2 * n_segments * n_times`` distinct noise channels (8.2 million for the
    default 8,192 x 500), each sample drawing 64 of them at random. Drawing a
    sample's noise is then a gather (35-70 us for 64 x 500 values) instead of
    32,000 fresh Gaussian draws (~0.4 ms, plus an FFT for 1/f noise), the
    largest cost of a sample.

    Parameters
    ----------
    n_segments : int
        Segments per noise type.
    seed : int
        Seed of the bank: the same seed gives the same bank, so a sample is
        fully determined by its own seed and the bank's.
    """

    n_segments: int = 8192
    seed: int = 0
    _banks: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def segments(self, kind: str, n_times: int) -> np.ndarray:
        """Return the bank of ``kind`` (``"white"`` or ``"pink"``), shape (n_segments, n_times), float32.

        Drawn on first use (deterministically from ``seed``, ``kind`` and
        ``n_times``) and kept.
        """
        return self._bank(kind, n_times)[0]

    def moments(self, kind: str, n_times: int) -> tuple[np.ndarray, np.ndarray]:
        """Return each segment's mean and power (mean square about that mean), shape (n_segments,) each.

        A circular shift keeps both; a sign flip negates the mean.
        """
        return self._bank(kind, n_times)[1:]

    def _bank(self, kind: str, n_times: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = (kind, n_times)
        if key not in self._banks:
            if kind not in ("white", "pink"):
                raise BrainForgeError(f"A noise bank holds white or pink noise, not {kind!r}.")
            rng = np.random.default_rng([self.seed, ("white", "pink").index(kind), n_times])
            draw = white_noise if kind == "white" else pink_noise
            bank = np.ascontiguousarray(draw(n_times, self.n_segments, rng).T, dtype=np.float32)
            values = bank.astype(float)
            means = values.mean(axis=1)
            powers = np.mean((values - means[:, None]) ** 2, axis=1)
            self._banks[key] = (bank, means, powers)
        return self._banks[key]

    def pick(self, n_channels: int, n_times: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """Draw which segment, circular shift (samples) and sign each of ``n_channels`` channels takes.

        Returns
        -------
        segments, shifts : arrays of int, shape (n_channels,)
            Distinct segments, and shifts in ``[0, n_times)``.
        signs : array, shape (n_channels,)
            +1.0 or -1.0.
        """
        if n_channels > self.n_segments:
            raise BrainForgeError(
                f"A noise bank of {self.n_segments} segments cannot give {n_channels} independent channels; "
                "use a larger noise_bank_segments."
            )
        segments = rng.choice(self.n_segments, n_channels, replace=False)
        shifts = rng.integers(n_times, size=n_channels)
        signs = np.where(rng.random(n_channels) < 0.5, -1.0, 1.0)
        return segments, shifts, signs

    def draw(self, kind: str, n_times: int, n_channels: int, rng: np.random.Generator) -> np.ndarray:
        """Return ``n_channels`` independent channels of ``kind`` noise, shape (n_times, n_channels).

        Parameters
        ----------
        kind : ``"white"`` | ``"pink"``
            Noise type.
        n_times : int
            Samples.
        n_channels : int
            Channels (at most ``n_segments``).
        rng : numpy.random.Generator
            Picks the segments, shifts and signs (:meth:`pick`).
        """
        bank = self.segments(kind, n_times)
        segments, shifts, signs = self.pick(n_channels, n_times, rng)
        return _gather_segments(bank, segments, shifts, signs, np.empty((n_times, n_channels)))


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
    """Read DeepSIF's ``realistic_noise.mat`` (4 x 500 x 75) with the channel names of ``electrode_75.mat``.

    ``folder`` holds both files (``realistic_noise.mat`` itself is accepted too).
    """
    from scipy.io import loadmat

    folder = Path(folder)
    if folder.name == "realistic_noise.mat":
        folder = folder.parent
    noise_file, electrodes = folder / "realistic_noise.mat", folder / "electrode_75.mat"
    for f in (noise_file, electrodes):
        if not f.is_file():
            raise BrainForgeError(
                f"Realistic-noise file missing: {f}; --realistic-noise takes the folder that holds DeepSIF's "
                "realistic_noise.mat and electrode_75.mat."
            )

    def read(file: Path, field: str, **options):
        try:
            return loadmat(file, **options)[field]
        except Exception as err:  # not MATLAB v5 (an HTML page, a v7.3 file, a download cut short), or other fields
            raise BrainForgeError(
                f"Cannot read DeepSIF's realistic noise from {file} ({type(err).__name__}: {err}); it needs its "
                f"'{field}' as DeepSIF publishes the file."
            ) from err

    data = np.asarray(read(noise_file, "data"), float)
    try:
        names = [str(n) for n in np.atleast_1d(read(electrodes, "eloc75", squeeze_me=True)["labels"])]
    except (ValueError, KeyError, IndexError) as err:
        raise BrainForgeError(f"{electrodes} holds no electrode labels (eloc75.labels) as DeepSIF's does.") from err
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
    """Realized SNR in dB (module definition)."""
    return 10.0 * np.log10(power(signal) / power(noise))
