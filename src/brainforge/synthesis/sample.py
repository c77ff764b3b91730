"""One labelled synthetic sample (:class:`Sample`) and its factored source activity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def source_activity(waves: np.ndarray | torch.Tensor, weights: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Activity ``waves @ weights`` of factored targets, summed patch by patch in a fixed order.

    Written as products and sums (not a matrix product) so that NumPy and
    PyTorch, on any device, give the same bits, with no reduced-precision
    (TF32) matrix products on GPUs.

    Parameters
    ----------
    waves : array or tensor, shape (..., n_times, n_patches)
        Patch waveforms.
    weights : array or tensor, shape (..., n_patches, n_regions)
        Patch weights.

    Returns
    -------
    activity : array or tensor, shape (..., n_times, n_regions)
    """
    if waves.shape[-1] == 0:  # no patch (a background-only sample): all zero
        return waves @ weights
    activity = waves[..., :, 0:1] * weights[..., 0:1, :]
    for i in range(1, waves.shape[-1]):
        activity = activity + waves[..., :, i : i + 1] * weights[..., i : i + 1, :]
    return activity


@dataclass
class Sample:
    """One labelled sample.

    Attributes
    ----------
    eeg : array, shape (n_times, n_channels)
        Normalized EEG (time mean, then channel mean removed; divided by the max |value|), float32.
    source_regions : array of int, shape (n_active,)
        The regions of the patches, sorted.
    source_waves : array, shape (n_times, n_sources)
        Each patch's waveform, divided by the max |activity| over all
        regions, float32.
    source_weights : array, shape (n_sources, n_active)
        Each patch's weight on each of ``source_regions`` (0 outside the
        patch), float32.
    source_values : array, shape (n_times, n_active)
        (property) Activity of ``source_regions``: ``source_waves @
        source_weights`` in float32; its max |value| is 1.
    sources : array, shape (n_times, n_regions)
        (property) The dense target: ``source_values`` in the columns
        ``source_regions``, zero elsewhere, float32.
    active : array of bool, shape (n_regions,)
        Regions of any patch.
    centres : array of int, shape (n_sources,)
        Patch centre regions.
    patches : list of arrays of int
        Regions of each patch.
    source_snr_db : array, shape (n_sources,)
        Realized SNR of each patch over the background (module definition).
    sensor_snr_db : float
        Realized sensor SNR.
    noise_type : str
        Sensor noise used.
    onsets : array of int, shape (n_sources,)
        Onset delay of each patch, samples.
    ch_names : list of str
        Channels.
    ch_pos_mm : array, shape (n_channels, 3)
        Channel positions, mm.
    seed : int
        Seed that reproduces this sample.
    peak_time : int
        Time sample of the largest |target| (the spike peak; the first one
        on a tie), as ``np.abs(sources).max(axis=1).argmax()`` gives it;
        0 for a background-only sample (no source: ``source_waves`` has no
        column and ``sources`` is all zero).
    forward_index : int
        Forward model of the generator's forward bank that made the EEG
        (-1: the head model's own leadfield).
    parts : dict | None
        With ``keep_parts=True``: the un-normalized ``clean`` EEG, ``noise``,
        ``background_eeg`` and each patch's ``patch_eeg``, to check SNRs.
    """

    eeg: np.ndarray
    source_regions: np.ndarray
    source_waves: np.ndarray
    source_weights: np.ndarray
    active: np.ndarray
    centres: np.ndarray
    patches: list[np.ndarray]
    source_snr_db: np.ndarray
    sensor_snr_db: float
    noise_type: str
    onsets: np.ndarray
    ch_names: list[str]
    ch_pos_mm: np.ndarray
    seed: int = field(default=0)
    peak_time: int = field(default=0)
    forward_index: int = field(default=-1)
    parts: dict | None = None

    @property
    def source_values(self) -> np.ndarray:
        """Activity of ``source_regions``, shape (n_times, n_active), float32."""
        return source_activity(self.source_waves, self.source_weights)

    @property
    def sources(self) -> np.ndarray:
        """Dense target, shape (n_times, n_regions), zero outside the patches."""
        dense = np.zeros((len(self.source_waves), len(self.active)), np.float32)
        dense[:, self.source_regions] = self.source_values
        return dense
