"""BrainForge: EEG source imaging with deep learning, from neural masses to real recordings."""

__version__ = "0.1.0"

from ._errors import BrainForgeError

__all__ = ["BrainForgeError", "__version__"]
