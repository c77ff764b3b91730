"""DeepSIF's input normalization: the one definition used by synthesis, training and every solver."""

from __future__ import annotations

import numpy as np


def normalize_eeg(eeg, *, return_scale: bool = False):
    """Normalize EEG shaped (..., n_times, n_channels) as DeepSIF does.

    Remove each channel's mean over time, then each sample's mean over the
    channels (the average reference), and divide each segment by its largest
    absolute value. Leading axes are a batch: every segment gets its own scale.

    Parameters
    ----------
    eeg : numpy.ndarray | torch.Tensor, shape (..., n_times, n_channels)
        EEG, V or any unit (the result has none).
    return_scale : bool
        Also return the divisor of each segment, to scale an estimate back.

    Returns
    -------
    normalized : numpy.ndarray of float32 | torch.Tensor
        NumPy input gives float32 (computed in the input's precision); a
        tensor keeps its dtype and device.
    scale : numpy.ndarray | torch.Tensor, shape (...)
        Only with ``return_scale``: the largest |value| after centring
        (at least the dtype's smallest normal number, so that a flat segment
        gives zeros, not NaN).
    """
    if isinstance(eeg, np.ndarray):
        eeg = eeg - eeg.mean(axis=-2, keepdims=True)
        eeg -= eeg.mean(axis=-1, keepdims=True)
        scale = np.maximum(np.abs(eeg).max(axis=(-2, -1)), np.finfo(np.float32).tiny)
        normalized = (eeg / scale[..., None, None]).astype(np.float32)
    else:
        import torch

        eeg = eeg - eeg.mean(dim=-2, keepdim=True)
        eeg = eeg - eeg.mean(dim=-1, keepdim=True)
        scale = eeg.abs().amax(dim=(-2, -1)).clamp_min(torch.finfo(eeg.dtype).tiny)
        normalized = eeg / scale[..., None, None]
    return (normalized, scale) if return_scale else normalized
