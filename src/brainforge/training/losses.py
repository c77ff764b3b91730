"""Training losses: each model's published loss, plus MSE and cosine options."""

from __future__ import annotations

import torch

from .._errors import BrainForgeError
from ..synthesis.normalize import normalize_eeg
from .metrics import peak_times

#: Loss names accepted by :class:`~brainforge.training.TrainingConfig`.
LOSSES = ("mse", "mse_sum", "cosine", "cosine_reprojection", "relative_mse_cosine", "relative_mse_cosine_peak")

#: ``relative_mse_cosine_peak``'s defaults (``TrainingConfig.peak_loss_weight`` and
#: ``peak_loss_sharpness``): weight of its peak cross-entropy term, and the softmax sharpness
#: (logit difference between the estimate's maximum and an all-zero region).
PEAK_LOSS_WEIGHT = 0.1
PEAK_SHARPNESS = 20.0

#: Each model's published loss.
PUBLISHED_LOSS = {
    "cnn_transformer": "mse",
    "deepsif": "mse_sum",  # nn.MSELoss(reduction="sum")
    "convdip": "cosine",
    "gru": "cosine_reprojection",
}


def cosine_distance(estimate: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over batch and time of 1 - cosine similarity between source vectors (last axis).

    Time steps whose target is all zero (background-only samples) have no
    direction to match and are left out; the MSE terms drive their estimate
    to zero. With no non-zero target at all the distance is 0.
    """
    distance = 1.0 - torch.nn.functional.cosine_similarity(estimate, target, dim=-1, eps=eps)
    has_source = target.ne(0).any(dim=-1)
    if bool(has_source.all()):
        return distance.mean()
    return (distance * has_source).sum() / has_source.sum().clamp_min(1)


def relative_mse(estimate: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean squared error divided by the mean square of the target (1 for an all-zero estimate)."""
    return torch.mean((estimate - target) ** 2) / torch.mean(target**2).clamp_min(eps)


def reprojection_rms(estimate: torch.Tensor, eeg: torch.Tensor, leadfield: torch.Tensor) -> torch.Tensor:
    """RMS error between the EEG and the estimate projected back through the leadfield.

    Both are normalized as the network input is (time mean, channel mean,
    divided by the max |value| of each sample), since targets and EEG carry
    no common physical scale.
    """
    reprojected = normalize_eeg(estimate @ leadfield.T)
    return torch.sqrt(torch.mean((reprojected - eeg) ** 2))


def peak_cross_entropy(
    estimate: torch.Tensor, target: torch.Tensor, centre: torch.Tensor, sharpness: float = PEAK_SHARPNESS
) -> torch.Tensor:
    """Cross-entropy that puts the estimate's largest region on a true patch centre at the true peak time.

    At each sample's peak time (largest |target|), the estimate's magnitudes
    relative to their maximum, times ``sharpness``, are the logits of a softmax
    over regions; the target distribution puts each patch centre's weight in
    proportion to its |target| then (so the patch that makes the peak
    dominates). This is the training form of the peak-centre error, whose
    argmax has no gradient. Samples without sources are left out.

    Parameters
    ----------
    estimate, target : tensor, shape (B, T, R)
        Estimated and target sources.
    centre : tensor of bool, shape (B, R)
        Patch-centre regions of each sample.
    sharpness : float
        Logit of the estimate's maximum over a region at 0.
    """
    rows = torch.arange(len(target), device=target.device)
    peak_time = peak_times(target)
    magnitude = estimate[rows, peak_time].abs()
    logits = sharpness * magnitude / magnitude.amax(dim=1, keepdim=True).clamp_min(1e-12)
    weights = target[rows, peak_time].abs() * centre
    total = weights.sum(dim=1)
    keep = total > 0
    if not bool(keep.any()):
        return estimate.new_zeros(())
    log_probability = torch.log_softmax(logits[keep], dim=1)
    return -((weights[keep] / total[keep, None]) * log_probability).sum(dim=1).mean()


def compute_loss(
    name: str,
    estimate: torch.Tensor,
    target: torch.Tensor,
    eeg: torch.Tensor | None = None,
    leadfield: torch.Tensor | None = None,
    centre: torch.Tensor | None = None,
    *,
    peak_weight: float = PEAK_LOSS_WEIGHT,
    peak_sharpness: float = PEAK_SHARPNESS,
) -> torch.Tensor:
    """Compute the loss ``name`` of sources (B, T, R) against targets (B, T, R).

    ``cosine_reprojection`` (the dual-path GRU's) also needs the normalized
    input ``eeg`` (B, T, C) and the average-referenced ``leadfield`` (C, R);
    ``relative_mse_cosine_peak`` the patch centres ``centre`` ((B, R) bool):
    it adds :func:`peak_cross_entropy` (sharpness ``peak_sharpness``), weighted
    by ``peak_weight``, to ``relative_mse_cosine``.
    """
    if name == "mse":
        return torch.mean((estimate - target) ** 2)
    if name == "mse_sum":
        return torch.sum((estimate - target) ** 2)
    if name == "cosine":
        return cosine_distance(estimate, target)
    if name == "cosine_reprojection":
        if eeg is None or leadfield is None:
            raise BrainForgeError("The cosine_reprojection loss needs the EEG and the leadfield.")
        return cosine_distance(estimate, target) + reprojection_rms(estimate, eeg, leadfield)
    if name == "relative_mse_cosine":
        # Sparse targets make plain MSE's all-zero estimate a wide, flat basin; the cosine term
        # rewards the right pattern from the first step, the relative MSE keeps amplitudes.
        return relative_mse(estimate, target) + cosine_distance(estimate, target)
    if name == "relative_mse_cosine_peak":
        if centre is None:
            raise BrainForgeError("The relative_mse_cosine_peak loss needs the patch centres.")
        peak = peak_cross_entropy(estimate, target, centre, peak_sharpness)
        return compute_loss("relative_mse_cosine", estimate, target) + peak_weight * peak
    raise BrainForgeError(f"Unknown loss {name!r}; choose from {', '.join(LOSSES)}.")
