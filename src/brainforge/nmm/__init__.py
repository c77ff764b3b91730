"""Neural-mass simulation and spike extraction."""

from .campaign import CampaignConfig, CampaignSummary, default_spike_library, run_campaign
from .engine import FastJansenRit
from .library import SpikeLibrary, read_spike_library
from .model import PUBLISHED_SETTINGS, JansenRitParams
from .spikes import (
    RunSummary,
    SpikeClips,
    SpikeRules,
    StreamingSpikeExtractor,
    clip_starts,
    extract_spikes,
    find_spike_peaks,
    preprocess_run,
    select_isolated_peaks,
)

__all__ = [
    "PUBLISHED_SETTINGS",
    "CampaignConfig",
    "CampaignSummary",
    "FastJansenRit",
    "JansenRitParams",
    "RunSummary",
    "SpikeClips",
    "SpikeLibrary",
    "SpikeRules",
    "StreamingSpikeExtractor",
    "clip_starts",
    "default_spike_library",
    "extract_spikes",
    "find_spike_peaks",
    "preprocess_run",
    "read_spike_library",
    "run_campaign",
    "select_isolated_peaks",
    "simulate_tvb",
]


def __getattr__(name):
    # TVB is slow to import; load its backend only when asked for.
    if name == "simulate_tvb":
        from .tvb_backend import simulate_tvb

        return simulate_tvb
    raise AttributeError(name)
