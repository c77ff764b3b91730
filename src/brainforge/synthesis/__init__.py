"""Labelled synthetic EEG from a head model and a spike library."""

from .config import SynthesisConfig
from .dataset import (
    SyntheticBatchLoader,
    SyntheticEEGDataset,
    collate_compact,
    collate_samples,
    densify_sources,
    sample_seed,
)
from .generator import SampleGenerator
from .noise import NoiseBank, RealisticNoise, load_deepsif_noise, pink_noise, scale_to_snr, snr_db, white_noise
from .normalise import normalise_eeg
from .patches import grow_patch, is_connected, patch_weights
from .sample import Sample, source_activity

__all__ = [
    "NoiseBank",
    "RealisticNoise",
    "Sample",
    "SampleGenerator",
    "SynthesisConfig",
    "SyntheticBatchLoader",
    "SyntheticEEGDataset",
    "collate_compact",
    "collate_samples",
    "densify_sources",
    "grow_patch",
    "is_connected",
    "load_deepsif_noise",
    "normalise_eeg",
    "patch_weights",
    "pink_noise",
    "sample_seed",
    "scale_to_snr",
    "snr_db",
    "source_activity",
    "white_noise",
]
