"""Labelled synthetic EEG from a head model and a spike library."""

from .config import SynthesisConfig
from .dataset import SyntheticEEGDataset
from .generator import SampleGenerator
from .noise import NoiseBank, load_deepsif_noise
from .normalize import normalize_eeg
from .sample import Sample

__all__ = [
    "NoiseBank",
    "Sample",
    "SampleGenerator",
    "SynthesisConfig",
    "SyntheticEEGDataset",
    "load_deepsif_noise",
    "normalize_eeg",
]
