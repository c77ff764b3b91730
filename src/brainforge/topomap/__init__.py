"""EEG as images: azimuthal equidistant projection and precomputed interpolation matrices."""

from .interpolation import (
    INTERPOLATION_METHODS,
    Montage,
    Topomap,
    azimuthal_equidistant,
    check_interpolation,
    interpolation_matrix,
    make_topomap,
    montage_upsampling,
    projection_frame,
    spherical_spline_matrix,
)

__all__ = [
    "INTERPOLATION_METHODS",
    "Montage",
    "Topomap",
    "azimuthal_equidistant",
    "check_interpolation",
    "interpolation_matrix",
    "make_topomap",
    "montage_upsampling",
    "projection_frame",
    "spherical_spline_matrix",
]
