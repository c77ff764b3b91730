"""The generator's array kernels: sensor-noise gathering, compiled mixing and normalization, SNR windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .noise import _gather_segments
from .sample import source_activity


@dataclass
class _SensorNoise:
    """A sample's sensor noise: channel ``c`` is ``signs[c] * source[segments[c]]`` shifted by ``shifts[c]``.

    Attributes
    ----------
    source : array, shape (n_rows, n_times)
        Noise rows (a noise bank, or the sample's own noise channels first).
    segments, shifts : arrays of int, shape (n_channels,)
        Row and circular shift (samples) of each channel.
    signs : array, shape (n_channels,)
        +1.0 or -1.0.
    means : array, shape (n_channels,)
        Each channel's time mean.
    power : float
        Mean power after removing each channel's time mean and each time's
        channel mean (the average reference; :func:`power`).
    """

    source: np.ndarray
    segments: np.ndarray
    shifts: np.ndarray
    signs: np.ndarray
    means: np.ndarray
    power: float

    def gather(self, n_times: int) -> np.ndarray:
        """Return the noise as an array, shape (n_times, n_channels)."""
        out = np.empty((n_times, len(self.segments)))
        return _gather_segments(self.source, self.segments, self.shifts, self.signs, out)


@njit(cache=True, fastmath=True)
def _clean_eeg(background, waves, topographies):  # pragma: no cover - compiled
    """Clean EEG ``background + (waves.T @ topographies).T``, channels first, its channel means and power.

    Parameters
    ----------
    background : array, shape (n_channels, n_times)
        Background EEG.
    waves : array, shape (n_patches, n_times)
        Each patch's scaled waveform.
    topographies : array, shape (n_patches, n_channels)
        Each patch's EEG per unit waveform.

    Returns
    -------
    clean : array, shape (n_channels, n_times)
    means : array, shape (n_channels,)
        Each channel's time mean.
    power : float
        Mean power after removing each channel's time mean and each time's
        channel mean (the average reference; :func:`power`).
    """
    n_channels, n_times = background.shape
    clean = np.empty((n_channels, n_times))
    means = np.empty(n_channels)
    time_sums = np.zeros(n_times)
    power_sum = 0.0
    for c in range(n_channels):
        row = clean[c]
        for t in range(n_times):
            row[t] = background[c, t]
        for i in range(waves.shape[0]):
            weight = topographies[i, c]
            for t in range(n_times):
                row[t] += weight * waves[i, t]
        total = 0.0
        for t in range(n_times):
            total += row[t]
        mean = total / n_times
        squares = 0.0
        for t in range(n_times):
            value = row[t] - mean
            squares += value * value
            time_sums[t] += value
        means[c] = mean
        power_sum += squares
    return clean, means, _referenced(power_sum, time_sums, n_channels)


@njit(cache=True, fastmath=True)
def _referenced(power_sum, time_sums, n_channels):  # pragma: no cover - compiled
    """Mean power after the average reference, from the sum of squares and each time's channel sum.

    Removing each time's channel mean ``m_t`` takes ``mean_t m_t**2`` from the mean power.
    """
    n_times = len(time_sums)
    common = 0.0
    for t in range(n_times):
        common += (time_sums[t] / n_channels) ** 2
    return power_sum / (n_channels * n_times) - common / n_times


@njit(cache=True, fastmath=True)
def _noise_power(source, segments, shifts, signs, noise_means, channel_powers, n_times):  # pragma: no cover
    """Mean power of :class:`_SensorNoise` after removing each channel's time mean and the average reference.

    ``channel_powers`` are the channels' powers about their time means (a noise bank's
    :meth:`~.noise.NoiseBank.moments`, which shifts and signs keep); only each time's
    channel sum is computed here.
    """
    n_channels = len(segments)
    time_sums = np.zeros(n_times)
    offset = 0.0
    power_sum = 0.0
    for c in range(n_channels):
        noise_row = source[segments[c]]
        shift = shifts[c]
        split = n_times - shift
        sign = signs[c]
        for t in range(split):
            time_sums[t] += sign * noise_row[t + shift]
        for t in range(split, n_times):
            time_sums[t] += sign * noise_row[t - split]
        offset += noise_means[c]
        power_sum += channel_powers[c] * n_times
    for t in range(n_times):
        time_sums[t] -= offset
    return _referenced(power_sum, time_sums, n_channels)


@njit(cache=True, fastmath=True)
def _mix_and_normalize(
    clean, clean_means, source, segments, shifts, signs, noise_means, scale, out
):  # pragma: no cover
    """:func:`normalize_eeg` of ``clean + scale * noise`` into float32 ``out``, shape (n_times, n_channels).

    ``clean`` (channels first, see :func:`_clean_eeg`) is overwritten; the
    noise is read from its rows as :class:`_SensorNoise` describes.
    """
    n_channels, n_times = clean.shape
    time_means = np.zeros(n_times)
    for c in range(n_channels):
        row = clean[c]
        noise_row = source[segments[c]]
        split = n_times - shifts[c]
        gain = scale * signs[c]
        offset = clean_means[c] + scale * noise_means[c]
        for t in range(split):
            value = row[t] + gain * noise_row[t + shifts[c]] - offset
            row[t] = value
            time_means[t] += value
        for t in range(split, n_times):
            value = row[t] + gain * noise_row[t - split] - offset
            row[t] = value
            time_means[t] += value
    time_means /= n_channels
    largest = np.zeros(n_times)  # per time sample: a max over channels vectorizes, one over all does not
    for c in range(n_channels):
        row = clean[c]
        for t in range(n_times):
            value = row[t] - time_means[t]
            row[t] = value
            if abs(value) > largest[t]:
                largest[t] = abs(value)
    inverse = 1.0 / largest.max()
    for t in range(n_times):
        for c in range(n_channels):
            out[t, c] = clean[c, t] * inverse
    return out


def _largest_product(waves: np.ndarray, weight_matrix: np.ndarray) -> float:
    """Largest ``|waves @ weight_matrix|`` without forming the whole product.

    A region in one patch only (a column with one non-zero weight) peaks at
    that patch's largest ``|wave|`` times its weight; only regions shared by
    patches need their time course.
    """
    shared = np.count_nonzero(weight_matrix, axis=0) > 1
    peaks = np.abs(waves).max(axis=0)
    largest = float((peaks[:, None] * weight_matrix[:, ~shared]).max(initial=0.0))
    if shared.any():
        largest = max(largest, float(np.abs(waves @ weight_matrix[:, shared]).max()))
    return largest


def _peak_time(source_waves: np.ndarray, source_weights: np.ndarray) -> int:
    """Time of the largest ``|source_activity(source_waves, source_weights)|``, from the patch maxima.

    A region in one patch only peaks with that patch's |wave| times its
    weight; float32 rounding keeps the order, so the largest weight gives the
    same maxima, bit for bit, as the full product. Shared regions are computed
    in full.
    """
    shared = np.count_nonzero(source_weights, axis=0) > 1
    largest = np.zeros(len(source_waves), np.float32)
    alone = np.where(shared, 0, source_weights).max(axis=1, initial=0)  # (n_patches,); weights are >= 0
    for i in range(source_waves.shape[1]):
        np.maximum(largest, np.abs(source_waves[:, i]) * alone[i], out=largest)
    if shared.any():
        activity = source_activity(source_waves, source_weights[:, shared])
        np.maximum(largest, np.abs(activity).max(axis=1), out=largest)
    return int(np.argmax(largest))


def _windowed_power(eeg: np.ndarray, window: slice) -> float:
    """DeepSIF's source-SNR power: remove each channel's mean over the whole clip, average over the window."""
    centred = eeg - eeg.mean(axis=0)
    return float(np.mean(centred[window] ** 2))


def _windowed_snr(signal: np.ndarray, background: np.ndarray, window: slice) -> float:
    return 10.0 * np.log10(_windowed_power(signal, window) / _windowed_power(background, window))


@njit(cache=True, nogil=True)
def _interpolate_topography(dense, index, vertex_weights, patch, weights):  # pragma: no cover - compiled
    """``vertex_weights``-interpolated rows ``index`` of ``dense[:, patch] @ weights``, one value per channel."""
    n_channels = index.shape[0]
    out = np.zeros(n_channels)
    for c in range(n_channels):
        for j in range(3):
            row = dense[index[c, j]]
            value = 0.0
            for k in range(len(patch)):
                value += row[patch[k]] * weights[k]
            out[c] += vertex_weights[c, j] * value
    return out


@njit(cache=True, nogil=True)
def _interpolate_background(vertices, index, weights):  # pragma: no cover - compiled
    """Background EEG of scalp-vertex activity (n_vertices, n_times) at interpolated electrodes.

    Returns what :func:`_reference_background` returns: the average-referenced
    EEG channels first and its cumulative windowed power.
    """
    n_channels, n_times = index.shape[0], vertices.shape[1]
    eeg = np.empty((n_channels, n_times))
    for c in range(n_channels):
        out, w0, w1, w2 = eeg[c], weights[c, 0], weights[c, 1], weights[c, 2]
        r0, r1, r2 = vertices[index[c, 0]], vertices[index[c, 1]], vertices[index[c, 2]]
        for t in range(n_times):
            out[t] = w0 * r0[t] + w1 * r1[t] + w2 * r2[t]
    for t in range(n_times):
        mean = 0.0
        for c in range(n_channels):
            mean += eeg[c, t]
        mean /= n_channels
        for c in range(n_channels):
            eeg[c, t] -= mean
    channel_mean = np.zeros(n_channels)
    for c in range(n_channels):
        channel_mean[c] = eeg[c].mean()
    cumulative = np.zeros(n_times + 1)
    for t in range(n_times):
        power = 0.0
        for c in range(n_channels):
            value = eeg[c, t] - channel_mean[c]
            power += value * value
        cumulative[t + 1] = cumulative[t] + power / n_channels
    return eeg, cumulative


def _reference_background(projected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average-reference background EEG (n_times, n_channels); channels-first copy and cumulative power."""
    eeg = projected - projected.mean(axis=1, keepdims=True)
    centred = eeg - eeg.mean(axis=0)
    cumulative = np.concatenate([[0.0], np.cumsum(np.mean(centred**2, axis=1))])
    return np.ascontiguousarray(eeg.T), cumulative
