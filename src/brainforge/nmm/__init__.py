"""Neural-mass simulation and spike extraction."""

from .spikes import (
    SpikeClips,
    SpikeRules,
    clip_starts,
    extract_spikes,
    find_spike_peaks,
    preprocess_run,
    select_isolated_peaks,
)

__all__ = [
    "SpikeClips",
    "SpikeRules",
    "clip_starts",
    "extract_spikes",
    "find_spike_peaks",
    "preprocess_run",
    "select_isolated_peaks",
]
