"""Training with PyTorch Lightning: data module, losses, metrics, resumable safetensors checkpoints."""

from .checkpoint_io import SafetensorsCheckpointIO, load_training_state, save_training_state
from .config import TrainingConfig
from .data import SyntheticDataModule, epoch_seed, validation_seed
from .losses import LOSSES, PUBLISHED_LOSS, compute_loss
from .metrics import peak_patch_error_mm, random_region_error_mm
from .module import MONITOR, SourceLocalizer, channel_subset
from .train import TrainingResult, evaluate_peak_error, train

__all__ = [
    "LOSSES",
    "MONITOR",
    "PUBLISHED_LOSS",
    "SafetensorsCheckpointIO",
    "SourceLocalizer",
    "SyntheticDataModule",
    "TrainingConfig",
    "TrainingResult",
    "channel_subset",
    "compute_loss",
    "epoch_seed",
    "evaluate_peak_error",
    "load_training_state",
    "peak_patch_error_mm",
    "random_region_error_mm",
    "save_training_state",
    "train",
    "validation_seed",
]
