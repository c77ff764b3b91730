"""EEG as images: azimuthal equidistant projection and precomputed interpolation matrices."""

from .interpolation import (
    INTERPOLATION_METHODS,
    Montage,
    Topomap,
    azimuthal_equidistant,
    check_interpolation,
    interpolation_matrix,
    make_topomap,
    projection_frame,
)

__all__ = [
    "INTERPOLATION_METHODS",
    "Montage",
    "Topomap",
    "azimuthal_equidistant",
    "check_interpolation",
    "interpolation_matrix",
    "make_topomap",
    "projection_frame",
]
