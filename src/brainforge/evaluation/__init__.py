"""Metrics as the references publish them (DeepSIF, ConvDip/esinet, dispersion, HD95, Dice)."""

from .metrics import (
    SPIKE_HALF_WINDOW_MS,
    deepsif_metrics,
    esinet_metrics,
    evaluate,
    local_maxima,
    otsu_regions,
    otsu_threshold,
    overlap_metrics,
    peak_centre_error_mm,
    peak_patch_error_mm,
    spatial_dispersion_mm,
    spike_window,
)

__all__ = [
    "SPIKE_HALF_WINDOW_MS",
    "deepsif_metrics",
    "esinet_metrics",
    "evaluate",
    "local_maxima",
    "otsu_regions",
    "otsu_threshold",
    "overlap_metrics",
    "peak_centre_error_mm",
    "peak_patch_error_mm",
    "spatial_dispersion_mm",
    "spike_window",
]
