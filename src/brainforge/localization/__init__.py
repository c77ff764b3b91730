"""Localize real recordings: read, prepare, solve, and write MNE objects, tables and an HTML report."""

from .._data import default_model_dir
from .core import Localization, localize, localize_file, localize_prepared, write_outputs
from .demo import TrueSource, run_demo, simulate_recording, source_errors_mm, write_long_recording
from .positions import read_positions
from .recording import PreparedEEG, PreprocessingConfig, prepare_recording, read_recording

__all__ = [
    "Localization",
    "PreparedEEG",
    "PreprocessingConfig",
    "TrueSource",
    "default_model_dir",
    "localize",
    "localize_file",
    "localize_prepared",
    "prepare_recording",
    "read_positions",
    "read_recording",
    "run_demo",
    "simulate_recording",
    "source_errors_mm",
    "write_long_recording",
    "write_outputs",
]
