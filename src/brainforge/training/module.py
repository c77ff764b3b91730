"""The LightningModule that trains any :class:`~brainforge.models.SourceModel`."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch

from .._errors import BrainForgeError
from ..anatomy.montage import CHANNEL_SUBSETS
from ..models.base import SourceModel
from ..synthesis.dataset import densify_sources
from ..synthesis.normalize import normalize_eeg
from ..topomap import Montage, montage_upsampling
from .config import MONITORS, TrainingConfig
from .losses import PUBLISHED_LOSS, compute_loss
from .metrics import (
    background_amplitude,
    centre_mask,
    centre_weights,
    has_sources,
    peak_centre_error_mm,
    peak_patch_error_mm,
    peak_times,
)

#: Metric that early stopping and model export follow unless ``TrainingConfig.monitor`` says otherwise.
MONITOR = MONITORS[0]


def draw_montage_size(rng: np.random.Generator, low: int, high: int, distribution: str = "uniform") -> int:
    """Draw a training montage's channel count in ``[low, high]``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (the step's seeded generator).
    low, high : int
        Fewest and most channels, inclusive.
    distribution : str
        ``"uniform"``: every count equally likely. ``"log-uniform"``: the
        count is ``floor(exp(u))`` with ``u`` uniform on
        ``[log(low), log(high + 1))``, so P(n) = log((n + 1) / n) / log((high
        + 1) / low), about 1/n: each octave of montage size equally likely.

    Returns
    -------
    int
        The channel count.
    """
    if distribution == "uniform":
        return int(rng.integers(low, high + 1))
    if distribution == "log-uniform":
        return int(min(high, np.floor(np.exp(rng.uniform(np.log(low), np.log(high + 1))))))
    raise ValueError(f"Unknown montage size distribution {distribution!r}.")


def channel_subset(eeg: torch.Tensor, montage: Montage, index: np.ndarray) -> tuple[torch.Tensor, Montage]:
    """Keep the channels ``index`` of EEG (B, T, C) and its montage, re-referenced and re-normalized as in training.

    Parameters
    ----------
    eeg : torch.Tensor, shape (n_samples, n_times, n_channels)
        EEG recorded with ``montage``.
    montage : Montage
        Its channels.
    index : array of int
        Channels to keep, in montage order.

    Returns
    -------
    eeg : torch.Tensor, shape (n_samples, n_times, len(index))
        The kept channels, normalized by :func:`brainforge.synthesis.normalize_eeg`.
    montage : Montage
        The kept channels' montage.
    """
    picks = torch.as_tensor(index, device=eeg.device)
    return normalize_eeg(eeg.index_select(2, picks)), montage.pick(index)


def validation_channels(model: SourceModel, val_montage: str | None) -> np.ndarray | None:
    """Return the indices of the ``val_montage`` channels in the model's montage (None: all channels).

    Raises a one-line :class:`BrainForgeError` when the network needs its own
    channels or its montage lacks some of the subset's, before any training.
    """
    if val_montage is None:
        return None
    if not model.any_montage:
        raise BrainForgeError(
            f"--val-montage {val_montage} needs a network that takes any montage; {model.name} does not. "
            "Drop --val-montage."
        )
    montage = model.montage
    missing = [channel for channel in CHANNEL_SUBSETS[val_montage] if channel not in montage.ch_names]
    if missing:
        raise BrainForgeError(
            f"--val-montage {val_montage} needs channels the training montage lacks ({', '.join(missing)}); "
            "choose a subset of the training montage."
        )
    wanted = set(CHANNEL_SUBSETS[val_montage])
    return np.array([i for i, channel in enumerate(montage.ch_names) if channel in wanted])


#: Validation metrics, in the order of the rows of their sums (summed across ranks under DDP).
VALIDATION_METRICS = ("val_loss", "val_peak_patch_error_mm", "val_peak_centre_error_mm", "val_background_amplitude")


class SourceLocalizer(pl.LightningModule):
    """Loss, optimizer, montage subsets and validation metrics around a network.

    Parameters
    ----------
    model : SourceModel
        The network.
    config : TrainingConfig
        Training settings.
    region_distance_mm : array, shape (n_regions, n_regions)
        Distances between region centres (validation metric).
    leadfield : array, shape (n_channels, n_regions)
        Region leadfield of the training montage (re-projection loss).
    """

    def __init__(
        self, model: SourceModel, config: TrainingConfig, region_distance_mm: np.ndarray, leadfield: np.ndarray
    ):
        super().__init__()
        self.model = model
        self.config = config
        if config.loss is None and model.name not in PUBLISHED_LOSS:
            raise BrainForgeError(f"{model.name} has no training loss of its own; train a plain network instead.")
        self.loss_name = config.loss or PUBLISHED_LOSS[model.name]
        self.register_buffer("distance_mm", torch.as_tensor(region_distance_mm, dtype=torch.float32), persistent=False)
        self.register_buffer("leadfield", torch.as_tensor(leadfield, dtype=torch.float32), persistent=False)
        self._validation_sums: torch.Tensor | None = None  # (metric, [sum, count]) of this validation so far
        self._validation_index = validation_channels(model, config.val_montage)
        if config.subset_upsampling and not model.any_montage:
            raise BrainForgeError(
                f"--subset-upsampling needs a network that takes any montage; {model.name} does not. "
                "Drop --subset-upsampling."
            )
        if config.montage_subsets is not None and model.any_montage:  # fixed-montage networks take all channels
            low, high = config.montage_subsets
            if low > model.montage.n_channels:
                raise BrainForgeError(
                    f"--montage-subsets {low},{high} asks for at least {low} channels; the training montage has "
                    f"{model.montage.n_channels}. Lower the first number."
                )
        # The fixed validation cap's spline matrix, computed once (training subsets get theirs per step).
        self._validation_upsampling: np.ndarray | None = None
        index = self._validation_index
        if config.subset_upsampling and index is not None and len(index) < model.montage.n_channels:
            self._validation_upsampling = montage_upsampling(model.montage.pick(index).ch_pos_mm, model.montage)

    # ------------------------------------------------------------------ helpers
    def _subset(self, eeg: torch.Tensor) -> tuple[torch.Tensor, Montage, torch.Tensor]:
        """Pick a random channel subset for this step (seeded by seed and step), re-referenced and re-normalized."""
        montage = self.model.montage
        subsets = self.config.montage_subsets
        if subsets is None or not self.model.any_montage:
            return eeg, montage, self.leadfield
        rng = np.random.default_rng([self.config.seed, self.global_step, 7])
        high = min(subsets[1], montage.n_channels)
        n = draw_montage_size(rng, subsets[0], high, self.config.montage_size_distribution)
        return self._on_channels(eeg, np.sort(rng.choice(montage.n_channels, n, replace=False)))

    def _validation_montage(self, eeg: torch.Tensor) -> tuple[torch.Tensor, Montage | None, torch.Tensor]:
        """Return the validation EEG on ``config.val_montage`` (re-referenced, re-normalized) or on all channels."""
        if self._validation_index is None:
            return eeg, None, self.leadfield
        return self._on_channels(eeg, self._validation_index, upsampling=self._validation_upsampling)

    def _on_channels(
        self, eeg: torch.Tensor, index: np.ndarray, *, upsampling: np.ndarray | None = None
    ) -> tuple[torch.Tensor, Montage, torch.Tensor]:
        """Return EEG, montage and leadfield rows of the channels ``index`` (re-referenced, re-normalized).

        With ``subset_upsampling`` the subset is interpolated back onto the
        full montage (EEG and leadfield through one spherical-spline matrix:
        ``upsampling`` when given, the one computed for these channels otherwise).
        """
        montage = self.model.montage
        eeg, subset_montage = channel_subset(eeg, montage, index)
        leadfield = self.leadfield.index_select(0, torch.as_tensor(index, device=eeg.device))
        if not self.config.subset_upsampling or len(index) == montage.n_channels:
            return eeg, subset_montage, leadfield
        if upsampling is None:
            upsampling = montage_upsampling(subset_montage.ch_pos_mm, montage)
        matrix = torch.as_tensor(upsampling, dtype=eeg.dtype, device=eeg.device)
        return normalize_eeg(eeg @ matrix.T), montage, matrix @ leadfield

    def _crop(self, batch: dict, random: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """EEG and dense targets in windows of ``crop_samples`` that contain each sample's spike peak.

        A compact batch (factored targets, as training batches arrive) is
        cropped first and made dense after, on ``crop_samples`` time samples
        only.
        """
        eeg, length = batch["eeg"], self.config.crop_samples
        n_times = eeg.shape[1]
        if length is None or length >= n_times:
            return eeg, densify_sources(batch)["sources"]
        compact = "source_waves" in batch
        peaks = batch["peak_time"] if compact else peak_times(batch["sources"])  # the generator records it
        if random:
            rng = np.random.default_rng([self.config.seed, self.global_step, 11])
            offsets = torch.as_tensor(rng.integers(0, length, len(peaks)), device=eeg.device)
        else:
            offsets = torch.full_like(peaks, length // 2)
        starts = (peaks - offsets).clamp(0, n_times - length)
        window = starts[:, None] + torch.arange(length, device=eeg.device)
        rows = torch.arange(len(eeg), device=eeg.device)[:, None]
        if compact:
            sources = densify_sources({**batch, "source_waves": batch["source_waves"][rows, window]})["sources"]
        else:
            sources = batch["sources"][rows, window]
        return normalize_eeg(eeg[rows, window]), sources

    def _target(self, sources: torch.Tensor, batch: dict) -> torch.Tensor:
        """Return what the loss fits: the sources, or their centre-weighted version (``target_centre_half_mm``)."""
        half_mm = self.config.target_centre_half_mm
        if half_mm is None:
            return sources
        return sources * centre_weights(batch["centres"], self.distance_mm, half_mm)[:, None, :]

    @staticmethod
    def _centre(batch: dict) -> torch.Tensor:
        """Patch-centre regions (B, R) bool: the validation batches carry them, training batches as indices."""
        return batch["centre"] if "centre" in batch else centre_mask(batch["centres"], batch["active"].shape[1])

    def _loss(self, estimate, sources, eeg, leadfield, batch: dict) -> torch.Tensor:
        leadfield = leadfield - leadfield.mean(dim=0)
        centre = None
        if self.loss_name == "relative_mse_cosine_peak":  # the only loss that reads the patch centres
            centre = self._centre(batch)
        return compute_loss(
            self.loss_name, estimate, sources, eeg, leadfield, centre,
            peak_weight=self.config.peak_loss_weight, peak_sharpness=self.config.peak_loss_sharpness,
        )  # fmt: skip

    # ------------------------------------------------------------------ steps
    def forward(self, eeg: torch.Tensor, montage: Montage | None = None) -> torch.Tensor:
        """Source activity (B, T, R)."""
        return self.model(eeg, montage)

    def on_train_batch_start(self, batch: dict, batch_index: int) -> None:
        """Seed PyTorch's generators (dropout) from the run's seed, the step and the rank.

        Lightning's checkpoints do not keep generator states, so without this a resumed run
        would replay dropout masks from step 0 and differ from an uninterrupted one.
        """
        state = np.random.SeedSequence([self.config.seed, self.global_step, self.global_rank, 13]).generate_state(1)
        torch.manual_seed(int(state[0]))

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        """One optimization step on a batch of on-the-fly samples."""
        eeg, sources = self._crop(batch, random=True)
        eeg, montage, leadfield = self._subset(eeg)
        estimate = self.model(eeg, montage)
        loss = self._loss(estimate, self._target(sources, batch), eeg, leadfield, batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(eeg))
        return loss

    def validation_step(self, batch: dict, batch_index: int) -> None:
        """Loss and peak-region localization error on the fixed validation set (full montage or ``val_montage``)."""
        eeg, sources = self._crop(batch, random=False)
        eeg, montage, leadfield = self._validation_montage(eeg)
        estimate = self.model(eeg, montage)
        loss = self._loss(estimate, self._target(sources, batch), eeg, leadfield, batch)
        active = batch["active"]
        centre = self._centre(batch)
        with_sources = has_sources(active)
        error = peak_patch_error_mm(
            estimate[with_sources], sources[with_sources], active[with_sources], self.distance_mm
        )
        centre_error = (  # the held-out benchmark's headline metric
            peak_centre_error_mm(estimate[with_sources], sources[with_sources], centre[with_sources], self.distance_mm)
            if len(error)
            else error
        )
        amplitude = background_amplitude(estimate, active)
        self._add_validation_sums(
            (loss.detach() * len(eeg), len(eeg)), (error.sum(), len(error)), (centre_error.sum(), len(error)),
            (amplitude.sum(), len(amplitude)),
        )  # fmt: skip

    def _add_validation_sums(self, *totals_and_counts: tuple[torch.Tensor, int]) -> None:
        """Add one batch's (sum, count) of each of :data:`VALIDATION_METRICS`, in that order.

        Kept on the CPU in float64: Apple's MPS has no float64, and the counts already wait for the device.
        """
        batch = torch.tensor(
            [[float(total.detach()), float(count)] for total, count in totals_and_counts], dtype=torch.float64
        )
        self._validation_sums = batch if self._validation_sums is None else self._validation_sums + batch

    def on_validation_epoch_start(self) -> None:
        """Start this validation's sums."""
        self._validation_sums = None

    def on_validation_epoch_end(self) -> None:
        """Log each validation metric: its mean over the whole validation set, on every rank alike.

        The sums and counts of every rank are added in one collective, then each metric with any
        sample is logged unsynced (the same value on every rank). Lightning's own ``sync_dist``
        mean does not serve: it averages the per-rank sample counts as integers, rounding an odd
        total down (a lone spike-free sample on one rank gave an infinite background amplitude),
        and it syncs only the metrics a rank logged, so a rank whose batches held no spike-free
        sample, and logged one metric fewer, left the others waiting.
        """
        sums = self._validation_sums
        if sums is None:
            return
        if self._trainer is not None and self._trainer.world_size > 1:  # on the collective's device (NCCL: a GPU)
            sums = self._trainer.strategy.reduce(sums.to(self._trainer.strategy.root_device), reduce_op="sum").cpu()
        # The starting model's score (``trainer.validate`` before a fine-tune) is not an epoch: kept out of
        # the training log, which holds one validation row per epoch.
        to_logger = self._trainer is None or self._trainer.state.fn != "validate"
        for name, (total, count) in zip(VALIDATION_METRICS, sums.tolist(), strict=True):
            if count > 0:
                self.log(name, total / count, prog_bar=name == self.config.monitor, logger=to_logger)
        self._validation_sums = None

    def configure_optimizers(self):
        """Adam or AdamW with the configured schedule."""
        c = self.config
        cls = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
        optimizer = cls(self.model.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay)
        if c.schedule == "none":
            return optimizer
        if c.schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=c.max_epochs)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=max(1, c.patience // 3)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": c.monitor}}
