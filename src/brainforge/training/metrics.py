"""Fast localization metrics used during training (the full published metrics live in evaluation)."""

from __future__ import annotations

import torch


def peak_times(target: torch.Tensor) -> torch.Tensor:
    """Time index of each sample's largest |target| (the spike peak), shape (B,)."""
    return target.abs().amax(dim=2).argmax(dim=1)


def peak_patch_error_mm(
    estimate: torch.Tensor, target: torch.Tensor, active: torch.Tensor, distance_mm: torch.Tensor
) -> torch.Tensor:
    """Peak-patch localization error per sample, mm (the benchmark's ``peak_patch_error_mm``, batched).

    At the time of the largest true activity, the region with the largest
    |estimate| is compared with the true patches: the error is its distance
    to the nearest active region (0 when it lies inside a patch).

    Parameters
    ----------
    estimate, target : tensor, shape (B, T, R)
        Estimated and true source activity.
    active : tensor of bool, shape (B, R)
        Regions of the true patches.
    distance_mm : tensor, shape (R, R)
        Distances between region centres, mm.

    Returns
    -------
    error : tensor, shape (B,)
        ``inf`` for a sample without sources (no active region); see
        :func:`has_sources`.
    """
    batch = torch.arange(len(target), device=target.device)
    estimate_at_peak = estimate[batch, peak_times(target)]
    region = estimate_at_peak.abs().argmax(dim=1)
    to_active = distance_mm[region].masked_fill(~active, float("inf"))
    return to_active.amin(dim=1)


def peak_centre_error_mm(
    estimate: torch.Tensor, target: torch.Tensor, centre: torch.Tensor, distance_mm: torch.Tensor
) -> torch.Tensor:
    """Peak-centre localization error per sample, mm (the benchmark's ``peak_centre_error_mm``, batched).

    As :func:`peak_patch_error_mm`, but measured to the nearest patch *centre*
    (``centre``: (B, R) bool, one region per patch) rather than to any
    region of a patch.
    """
    return peak_patch_error_mm(estimate, target, centre, distance_mm)


def centre_mask(centres: torch.Tensor, n_regions: int) -> torch.Tensor:
    """Patch-centre regions (B, K; -1 padded) as a (B, R) bool mask."""
    mask = torch.zeros(len(centres), n_regions, dtype=torch.bool, device=centres.device)
    rows, slots = torch.nonzero(centres >= 0, as_tuple=True)
    mask[rows, centres[rows, slots]] = True
    return mask


def centre_weights(centres: torch.Tensor, distance_mm: torch.Tensor, half_mm: float) -> torch.Tensor:
    """Gaussian weight of each region's distance to the nearest patch centre, 0.5 at ``half_mm`` (B, R).

    Parameters
    ----------
    centres : tensor of int, shape (B, K)
        Patch-centre regions of each sample, -1 padded.
    distance_mm : tensor, shape (R, R)
        Distances between region centres, mm.
    half_mm : float
        Distance at which the weight halves, mm.

    Returns
    -------
    weights : tensor, shape (B, R)
        1 at a centre; 0 everywhere for a sample without patches.
    """
    to_centre = distance_mm[centres.clamp_min(0)]  # (B, K, R)
    to_centre = to_centre.masked_fill((centres < 0)[:, :, None], float("inf"))
    return torch.exp2(-((to_centre.amin(dim=1) / half_mm) ** 2))


def has_sources(active: torch.Tensor) -> torch.Tensor:
    """Which samples hold a source (any active region), shape (B,); background-only samples do not."""
    return active.any(dim=1)


def background_amplitude(estimate: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Largest |estimate| of each background-only sample, shape (n_background,).

    Targets of samples with sources peak at 1, so this is the estimate's
    false activity relative to a true spike: near 0 is right.
    """
    background = ~has_sources(active)
    return estimate[background].abs().flatten(1).amax(dim=1) if background.any() else estimate.new_zeros(0)


def random_region_error_mm(active: torch.Tensor, distance_mm: torch.Tensor) -> torch.Tensor:
    """Compute the expected peak-region error of a uniformly random region guess, per sample, mm (chance level)."""
    return torch.stack([distance_mm[:, row].amin(dim=1).mean() for row in active])
