"""Training settings as one typed dataclass."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .._config import config_from_dict
from .._errors import BrainForgeError, check_seed
from ..anatomy.montage import CHANNEL_SUBSETS
from .losses import LOSSES, PEAK_LOSS_WEIGHT, PEAK_SHARPNESS

OPTIMIZERS = ("adam", "adamw")
#: Validation metrics that early stopping, the plateau schedule and model export can follow.
MONITORS = ("val_peak_patch_error_mm", "val_peak_centre_error_mm")
SCHEDULES = ("plateau", "cosine", "none")
MONTAGE_SIZE_DISTRIBUTIONS = ("uniform", "log-uniform")


@dataclass(frozen=True)
class TrainingConfig:
    """How a network is trained.

    Parameters
    ----------
    loss : str | None
        ``mse``, ``mse_sum``, ``cosine``, ``cosine_reprojection``,
        ``relative_mse_cosine`` or ``relative_mse_cosine_peak``; None uses
        the model's published loss (DeepSIF: summed MSE, ConvDip: cosine,
        dual-path GRU: cosine + re-projection RMS, CNN-Transformer: MSE).
    optimizer : ``"adam"`` | ``"adamw"``
        Optimizer.
    learning_rate : float
        Initial learning rate (DeepSIF: 3e-4).
    weight_decay : float
        Weight decay (DeepSIF: 1e-6).
    schedule : ``"plateau"`` | ``"cosine"`` | ``"none"``
        Learning-rate schedule: halve on a validation plateau, cosine decay
        over ``max_epochs``, or constant.
    batch_size : int
        Samples per step (DeepSIF: 64).
    samples_per_epoch : int
        Fresh on-the-fly samples per epoch (each epoch draws new ones).
    val_samples : int
        Size of the fixed validation set.
    max_epochs : int
        Most epochs.
    patience : int
        Early stopping: epochs without a better validation localization error.
    seed : int
        Seeds weights, data, validation set and montage subsets.
    montage_subsets : (int, int) | None
        Train map-based models on a random subset of this many channels per
        batch (re-referenced and re-normalized), so they work on any montage.
    montage_size_distribution : str
        How the subset's channel count is drawn from ``montage_subsets``:
        ``"uniform"`` (every count equally likely) or ``"log-uniform"``
        (every octave equally likely, P(n) ~ 1/n: 16-32 channels as often as
        32-64, the clinical 19-25-channel caps more often than under
        ``"uniform"``).
    crop_samples : int | None
        Train and validate on windows of this many samples that contain the
        spike peak, instead of whole segments (faster; for tests and probes).
    num_workers : int
        DataLoader worker processes making samples.
    gradient_clip : float
        Gradient norm clipping (0 = none).
    target_centre_half_mm : float | None
        Train on a centre-weighted target: each region's true activity times
        a Gaussian of its distance to the nearest patch centre that halves at
        this distance, mm. The synthetic sources are nearly flat across a
        patch (their own decay halves at 40-60 mm), so a network fitted to
        them has no reason to peak at the centre, which the headline
        ``peak_centre_error_mm`` measures to; this teaches it to. The EEG and
        the test sets are unchanged. None trains on the source activity.
    monitor : str
        Validation metric (mm, lower is better) that early stopping, the
        plateau schedule and the exported best model follow:
        ``val_peak_patch_error_mm`` (peak to the nearest patch region) or
        ``val_peak_centre_error_mm`` (peak to the nearest patch centre, the
        held-out benchmark's headline; the natural choice with
        ``target_centre_half_mm``). Both are logged either way.
    peak_loss_weight : float
        Weight of the peak cross-entropy in ``relative_mse_cosine_peak``
        (:func:`~brainforge.training.losses.peak_cross_entropy`).
    peak_loss_sharpness : float
        Its softmax sharpness: the logit of the estimate's maximum over a
        region at 0.
    val_montage : str | None
        Score validation on this named channel subset of the model's montage
        (a key of :data:`brainforge.anatomy.montage.CHANNEL_SUBSETS`, e.g.
        ``"1010-16"``), re-referenced and re-normalized as in training, so
        that early stopping and the exported epoch follow that montage. None
        scores the full montage. Only for networks that take any montage.
    subset_upsampling : bool
        Interpolate every channel subset (``montage_subsets``, ``val_montage``)
        onto the full training montage by spherical splines before the
        network sees it, as :class:`~brainforge.inverse.LearnedSolver` does
        with a sparse cap at inference (the loss's leadfield goes through the
        same matrix). False (default) gives the network the subset's own map.
        Only for networks that take any montage.
    """

    loss: str | None = None
    optimizer: str = "adam"
    learning_rate: float = 3e-4
    weight_decay: float = 1e-6
    schedule: str = "plateau"
    batch_size: int = 32
    samples_per_epoch: int = 4096
    val_samples: int = 256
    max_epochs: int = 200
    patience: int = 10
    seed: int = 0
    montage_subsets: tuple[int, int] | None = None
    montage_size_distribution: str = "uniform"
    crop_samples: int | None = None
    num_workers: int = 1
    gradient_clip: float = 1.0
    target_centre_half_mm: float | None = None
    monitor: str = MONITORS[0]
    peak_loss_weight: float = PEAK_LOSS_WEIGHT
    peak_loss_sharpness: float = PEAK_SHARPNESS
    val_montage: str | None = None
    subset_upsampling: bool = False

    def __post_init__(self) -> None:
        if self.loss is not None and self.loss not in LOSSES:
            raise BrainForgeError(f"Unknown loss {self.loss!r}; choose from {', '.join(LOSSES)}.")
        if self.optimizer not in OPTIMIZERS:
            raise BrainForgeError(f"Unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}.")
        if self.schedule not in SCHEDULES:
            raise BrainForgeError(f"Unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}.")
        for name in ("batch_size", "samples_per_epoch", "val_samples", "max_epochs", "patience"):
            if getattr(self, name) < 1:
                raise BrainForgeError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.montage_subsets is not None:
            low, high = self.montage_subsets
            if not 4 <= low <= high:
                raise BrainForgeError(f"montage_subsets must be (low, high) with 4 <= low <= high, got {(low, high)}.")
        if self.montage_size_distribution not in MONTAGE_SIZE_DISTRIBUTIONS:
            raise BrainForgeError(
                f"Unknown montage_size_distribution {self.montage_size_distribution!r}; "
                f"choose from {', '.join(MONTAGE_SIZE_DISTRIBUTIONS)}."
            )
        if self.monitor not in MONITORS:
            raise BrainForgeError(f"Unknown monitor {self.monitor!r}; choose from {', '.join(MONITORS)}.")
        half_mm = self.target_centre_half_mm
        if half_mm is not None and not 0 < half_mm < float("inf"):
            raise BrainForgeError(f"target_centre_half_mm must be a finite distance > 0 mm, got {half_mm}.")
        for name in ("peak_loss_weight", "peak_loss_sharpness"):
            value = getattr(self, name)
            if not 0 <= value < float("inf"):
                raise BrainForgeError(f"{name} must be a finite number >= 0, got {value}.")
        if self.val_montage is not None and self.val_montage not in CHANNEL_SUBSETS:
            raise BrainForgeError(
                f"Unknown val_montage {self.val_montage!r}; choose from {', '.join(CHANNEL_SUBSETS)}."
            )
        if self.crop_samples is not None and self.crop_samples < 2:
            raise BrainForgeError(f"crop_samples must be at least 2, got {self.crop_samples}.")
        if not 0 <= self.learning_rate < float("inf"):  # 0 trains nothing: scoring a start, as a test does
            raise BrainForgeError(f"learning_rate must be a finite number >= 0, got {self.learning_rate}.")
        if not 0 <= self.weight_decay < float("inf"):
            raise BrainForgeError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}.")
        if self.num_workers < 0:
            raise BrainForgeError(f"num_workers must be 0 or more, got {self.num_workers}.")
        check_seed(self.seed)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingConfig:
        """Inverse of :meth:`to_dict`."""
        return config_from_dict(cls, data)

    def to_json(self) -> str:
        """JSON string."""
        return json.dumps(self.to_dict())
