"""BrainForge: EEG source imaging with deep learning, from neural masses to real recordings."""

__version__ = "0.1.0"

from ._errors import BrainForgeError
from ._logging import set_log_level


def localize(inst, solver: str = "default", **options):
    """Localize the sources of an MNE Raw, Epochs or Evoked; see :func:`brainforge.localization.localize`.

    Returns an ``mne.SourceEstimate`` on fsaverage (``MixedSourceEstimate``
    with deep sources). ``verbose=`` sets MNE's and BrainForge's log level for the call.
    """
    from .localization import localize as _localize

    return _localize(inst, solver, **options)


__all__ = ["BrainForgeError", "__version__", "localize", "set_log_level"]
