"""One solver interface, classical (MNE-Python) or learned.

``fit(head)`` prepares a solver for a head model; ``apply(eeg)`` returns an
MNE source estimate on fsaverage, ``apply_regions(eeg)`` the region time
courses (:class:`SourceActivity`) that the benchmark and long recordings use.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .._errors import BrainForgeError
from .._logging import quiet_level
from .._logging import verbose as _verbose
from .forward import make_forward, make_info

logger = logging.getLogger("brainforge")

#: MNE's default regularization of the minimum-norm family: 1 / snr**2 for an amplitude SNR of 3.
DEFAULT_LAMBDA2 = 1.0 / 9.0

#: Rate classical solvers work at, and label their results with, when none is given, Hz: the
#: synthetic data's (spike library and networks alike). Their estimates do not depend on it.
DEFAULT_SFREQ_HZ = 500.0

#: Classical solvers, all computed by MNE-Python's own code.
CLASSICAL_SOLVERS = ("mne", "wmne", "dspm", "sloreta", "eloreta", "lcmv")

# name -> (MNE method, depth weighting exponent). MNE is the plain minimum
# norm, wMNE adds MNE's default depth weighting (0.8); dSPM keeps MNE's
# default depth; sLORETA and eLORETA run without it (sLORETA's zero
# localization error for single dipoles holds without depth weighting;
# eLORETA's weights already compensate depth).
_LINEAR = {
    "mne": ("MNE", None),
    "wmne": ("MNE", 0.8),
    "dspm": ("dSPM", 0.8),
    "sloreta": ("sLORETA", None),
    "eloreta": ("eLORETA", None),
}


@dataclass
class SourceActivity:
    """Estimated source activity.

    Attributes
    ----------
    data : array, shape (n_regions, n_times)
        Region time courses (for dipole-level solvers: the mean over each
        region's dipoles).
    sfreq : float
        Sampling rate, Hz.
    solver : str
        Solver name.
    vertex_data : array, shape (n_sources, n_times) | None
        Dipole-level estimate, where the solver has one.
    """

    data: np.ndarray
    sfreq: float
    solver: str
    vertex_data: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_times(self) -> int:
        """Number of time samples."""
        return self.data.shape[1]

    def to_source_estimate(self, head, tmin: float = 0.0):
        """Return the activity as an MNE source estimate on fsaverage.

        Parameters
        ----------
        head : HeadModel
            The head model the solver was fitted on (a template head model with dipoles).
        tmin : float
            Time of the first sample, s.

        Returns
        -------
        stc : mne.SourceEstimate | mne.MixedSourceEstimate
            Dipole-level activity: ``vertex_data`` where the solver has it,
            else each region's time course on all its dipoles.
        """
        if head.leadfield is None:
            raise BrainForgeError(
                "This head model has regions but no dipoles, so there is no source estimate to build; "
                "use apply_regions() for region time courses."
            )
        if self.data.shape[0] != head.n_regions:
            raise BrainForgeError(
                f"The activity has {self.data.shape[0]} regions but the head model {head.n_regions}; "
                "pass the head model the solver was fitted on."
            )
        vertex_data = self.vertex_data if self.vertex_data is not None else self.data[head.source_region]
        return source_estimate(vertex_data, head, tmin, self.sfreq)


def masked_peak_time(region_data: np.ndarray, searched: np.ndarray | None = None) -> int:
    """Return the time index of the largest |activity| over regions among the ``searched`` times.

    Parameters
    ----------
    region_data : array, shape (n_regions, n_times)
        Region time courses.
    searched : array of bool, shape (n_times,) | None
        Times the search may use (all when None); at least one must be True.

    Returns
    -------
    index : int
    """
    largest = np.abs(region_data).max(axis=0)
    if searched is None:
        return int(largest.argmax())
    if not np.any(searched):
        raise BrainForgeError("No time is left to search for a peak: every sample is excluded.")
    return int(np.where(searched, largest, -np.inf).argmax())


def source_estimate(vertex_data: np.ndarray, head, tmin: float, sfreq: float):
    """Wrap dipole-level activity (n_sources, n_times) as an MNE estimate on fsaverage.

    Cortical sources are fsaverage5 vertices, which are the first 10242
    vertices of each fsaverage hemisphere; deep sources form a discrete
    volume part (``MixedSourceEstimate``).
    """
    import mne

    n_left, n_cortical = head.n_left_sources, head.n_cortical_sources
    vertices = [np.arange(n_left), np.arange(n_cortical - n_left)]
    tstep = 1.0 / sfreq
    if head.n_deep_regions:
        vertices.append(np.arange(head.n_sources - n_cortical))
        return mne.MixedSourceEstimate(vertex_data, vertices, tmin, tstep, subject="fsaverage")
    return mne.SourceEstimate(vertex_data[:n_cortical], vertices, tmin, tstep, subject="fsaverage")


class InverseSolver:
    """Base class of every solver.

    Subclasses implement :meth:`fit` (which sets ``head_`` and ``n_channels_``)
    and :meth:`apply_regions`; :meth:`apply` builds on them.
    """

    name = ""

    def fit(self, head) -> InverseSolver:  # pragma: no cover - interface
        """Prepare for a head model."""
        raise NotImplementedError

    def apply_regions(
        self, eeg: np.ndarray, sfreq: float | None = None, *, with_dipoles: bool = False
    ) -> SourceActivity:  # pragma: no cover - interface
        """Estimate region time courses of EEG (n_channels, n_times).

        ``with_dipoles`` also fills ``vertex_data`` where the solver has a
        dipole-level estimate of its own (classical solvers).
        """
        raise NotImplementedError

    def apply(self, eeg: np.ndarray, sfreq: float | None = None, tmin: float = 0.0):
        """Estimate the sources of EEG as an MNE source estimate on fsaverage.

        Parameters
        ----------
        eeg : array, shape (n_channels, n_times)
            Average-referenced EEG in the head model's channel order, V.
        sfreq : float | None
            Sampling rate, Hz (None: the solver's own, :data:`DEFAULT_SFREQ_HZ` for classical solvers).
        tmin : float
            Time of the first sample, s.

        Returns
        -------
        stc : mne.SourceEstimate | mne.MixedSourceEstimate
            Dipole-level activity (``MixedSourceEstimate`` when the head model
            has deep sources). The region time courses are
            :meth:`apply_regions`'s (for a network, each region's value is on
            all its dipoles).
        """
        activity = self.apply_regions(eeg, sfreq, with_dipoles=True)
        return activity.to_source_estimate(self.head_, tmin)

    def get_params(self, deep: bool = True) -> dict:
        """Return the constructor's parameters (scikit-learn's convention: attributes of the same names).

        Parameters
        ----------
        deep : bool
            Unused (no nested estimators); kept for scikit-learn compatibility.

        Returns
        -------
        params : dict
            ``type(self)(**params)`` makes an unfitted copy.
        """
        names = [name for name in inspect.signature(type(self).__init__).parameters if name != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params) -> InverseSolver:
        """Set constructor parameters; call :meth:`fit` again for them to take effect.

        Returns
        -------
        self : InverseSolver
        """
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise BrainForgeError(f"{type(self).__name__} has no parameter {key!r}; it takes {', '.join(valid)}.")
            setattr(self, key, value)
        return self

    def block_grid(self) -> tuple[int, int]:
        """Return (margin, step) for applying the solver to a long recording block by block.

        The estimate of a block equals the same samples of the estimate of
        the whole recording when the block is extended by ``margin`` samples
        on each side (where the recording has them) and starts a multiple of
        ``step`` samples after the recording. A sample-wise solver has (0, 1).
        """
        return 0, 1

    def _check_eeg(self, eeg: np.ndarray) -> np.ndarray:
        """Return ``eeg`` as a float array after checking the solver is fitted and the data fit it."""
        if not hasattr(self, "n_channels_"):  # set by every fit
            raise BrainForgeError(f"Call fit(head) before apply() on the {self.name} solver.")
        eeg = np.asarray(eeg, float)
        if eeg.ndim != 2 or eeg.shape[0] != self.n_channels_:
            raise BrainForgeError(
                f"{self.name} expects EEG of shape ({self.n_channels_} channels, n_times), got {eeg.shape}; "
                "is the data (time, channels)? Transpose it."
            )
        if not np.isfinite(eeg).all():
            raise BrainForgeError("The EEG contains NaN or infinite values; interpolate or drop bad segments.")
        return eeg


def region_mean_matrix(source_region: np.ndarray, n_regions: int) -> sp.csr_matrix:
    """Sparse (n_regions, n_sources) matrix that averages dipoles into regions."""
    counts = np.bincount(source_region, minlength=n_regions).astype(float)
    weights = 1.0 / counts[source_region]
    return sp.csr_matrix((weights, (source_region, np.arange(len(source_region)))), shape=(n_regions, len(weights)))


def _noise_covariance(info, baseline: np.ndarray | None):
    """Noise covariance from a baseline (n_channels, n_times), otherwise MNE's ad hoc diagonal one."""
    import mne

    if baseline is None:
        return mne.make_ad_hoc_cov(info)
    baseline = np.asarray(baseline, float)
    if baseline.ndim != 2 or baseline.shape[0] != len(info["ch_names"]) or baseline.shape[1] < 2:
        raise BrainForgeError(f"The baseline must be (n_channels={len(info['ch_names'])}, n_times >= 2).")
    centred = baseline - baseline.mean(axis=1, keepdims=True)
    data = centred @ centred.T / (baseline.shape[1] - 1)
    return mne.Covariance(data, list(info["ch_names"]), [], [], baseline.shape[1] - 1)


class ClassicalSolver(InverseSolver):
    """MNE, weighted MNE, dSPM, sLORETA, eLORETA or LCMV from MNE-Python, on the head model's own leadfield.

    Parameters
    ----------
    method : str
        One of :data:`CLASSICAL_SOLVERS`.
    lambda2 : float
        Regularization of the minimum-norm family, MNE's ``lambda2`` (its
        default 1/9: ``1 / snr**2`` for an amplitude SNR of 3; an SNR in dB,
        a power ratio, is ``lambda2 = 10 ** (-snr_db / 10)``).
    baseline : array, shape (n_channels, n_times) | None
        Noise-only EEG for the noise covariance; None uses MNE's ad hoc
        diagonal covariance (equal variance on every channel).
    reg : float
        LCMV: regularization of the data covariance (fraction of its trace, MNE's 0.05).
    verbose : bool | str | int | None
        Log level of MNE and BrainForge in :meth:`fit` and :meth:`apply`
        (``"info"`` shows MNE's inverse-operator messages); None keeps the current one.

    Attributes
    ----------
    head_ : HeadModel
        The head model of the last :meth:`fit`.
    forward_ : mne.Forward
        Its forward solution (gain = the head model's leadfield).
    info_, noise_cov_ : mne.Info, mne.Covariance
        Channels with the average-reference projector, and the noise covariance.
    kernel_, region_kernel_ : array, shape (n_sources or n_regions, n_channels)
        Minimum-norm family: the inverse operator, dipoles and region means.
    fixed_forward_ : mne.Forward
        LCMV: the fixed-orientation forward.
    n_channels_ : int
        Channels the EEG must have.

    Notes
    -----
    The minimum-norm family is linear in the data: its kernel is computed once
    in :meth:`fit` by applying MNE's ``apply_inverse`` to identity data, then
    applied by a matrix product. LCMV's filter depends on the data covariance,
    estimated from each segment: :meth:`apply` calls ``make_lcmv`` and
    ``apply_lcmv`` every time. All solvers use fixed orientations (the head
    model's dipole normals) and an average reference.
    """

    def __init__(
        self,
        method: str,
        lambda2: float = DEFAULT_LAMBDA2,
        baseline: np.ndarray | None = None,
        reg: float = 0.05,
        verbose: bool | str | int | None = None,
    ):
        self.method = method
        self.lambda2 = lambda2
        self.baseline = baseline
        self.reg = reg
        self.verbose = verbose
        self._check_params()

    def _check_params(self) -> None:
        """Refuse an unknown method or a non-positive lambda2 (at construction, and in fit after set_params)."""
        if self.method not in CLASSICAL_SOLVERS:
            raise BrainForgeError(f"Unknown solver {self.method!r}; choose from {', '.join(CLASSICAL_SOLVERS)}.")
        if not self.lambda2 > 0:
            raise BrainForgeError(f"lambda2 must be positive, got {self.lambda2}.")

    @property
    def name(self) -> str:
        """The method's name (``method``)."""
        return self.method

    @_verbose
    def fit(self, head) -> ClassicalSolver:
        """Build the MNE forward (and, for linear methods, the inverse kernel) of ``head``."""
        import mne

        self._check_params()
        self.head_ = head
        self.n_channels_ = head.n_channels
        self.forward_ = make_forward(head)
        # The average reference as a projector: MNE's EEG inverses require it.
        blank = mne.EvokedArray(np.zeros((head.n_channels, 1)), make_info(head))
        self.info_ = blank.set_eeg_reference("average", projection=True).info
        self.noise_cov_ = _noise_covariance(self.info_, self.baseline)
        if head.leadfield is not None:
            self.to_regions_ = region_mean_matrix(head.source_region, head.n_regions)
        else:
            self.to_regions_ = sp.identity(head.n_regions, format="csr")
        if self.name in _LINEAR:
            method, depth = _LINEAR[self.name]
            inverse = mne.minimum_norm.make_inverse_operator(
                self.info_, self.forward_, self.noise_cov_, loose=0.0, depth=depth, fixed=True
            )
            identity = mne.EvokedArray(np.eye(self.n_channels_), self.info_)
            stc = mne.minimum_norm.apply_inverse(
                identity, inverse, self.lambda2, method
            )  # fmt: skip
            self.kernel_ = stc.data  # (n_sources, n_channels), average reference included
            self.region_kernel_ = np.asarray(self.to_regions_ @ self.kernel_)
        else:
            # The beamformer takes the normal component directly: a fixed-orientation forward.
            self.fixed_forward_ = mne.convert_forward_solution(self.forward_, surf_ori=True, force_fixed=True)
        return self

    @_verbose
    def apply_regions(
        self, eeg: np.ndarray, sfreq: float | None = None, *, with_dipoles: bool = False
    ) -> SourceActivity:
        """Estimate region time courses (each region's dipole mean) of EEG (n_channels, n_times).

        ``sfreq`` (Hz, default :data:`DEFAULT_SFREQ_HZ`) only labels the result: the estimate does
        not depend on it. ``with_dipoles`` also returns the dipole-level
        estimate as ``vertex_data`` (memory: n_sources x n_times).
        """
        eeg = self._check_eeg(eeg)
        sfreq = DEFAULT_SFREQ_HZ if sfreq is None else sfreq
        if self.name in _LINEAR:
            vertex = self.kernel_ @ eeg if with_dipoles else None
            return SourceActivity(self.region_kernel_ @ eeg, sfreq, self.name, vertex)
        vertex = self._lcmv(eeg, sfreq)
        return SourceActivity(np.asarray(self.to_regions_ @ vertex), sfreq, self.name, vertex if with_dipoles else None)

    @property
    def samplewise(self) -> bool:
        """Whether each sample's estimate depends on that sample alone.

        True for the minimum-norm family; not for LCMV, whose data covariance
        comes from the whole block it is applied to.
        """
        return self.name in _LINEAR

    def _lcmv(self, eeg: np.ndarray, sfreq: float) -> np.ndarray:
        import mne
        from mne.beamformer import apply_lcmv, make_lcmv

        # Run per segment or block: MNE's warnings pass, its per-call progress messages do not.
        level = quiet_level()
        evoked = mne.EvokedArray(eeg, self.info_, verbose=level).apply_proj(verbose=level)
        centred = evoked.data - evoked.data.mean(axis=1, keepdims=True)
        data_cov = mne.Covariance(
            centred @ centred.T / (eeg.shape[1] - 1), list(self.info_["ch_names"]), [], self.info_["projs"],
            eeg.shape[1] - 1, verbose=level,
        )  # fmt: skip
        filters = make_lcmv(
            self.info_, self.fixed_forward_, data_cov, reg=self.reg, noise_cov=self.noise_cov_,
            weight_norm="unit-noise-gain-invariant", rank="info", verbose=level,
        )  # fmt: skip
        return apply_lcmv(evoked, filters, verbose=level).data


class LearnedSolver(InverseSolver):
    """A trained network (a model folder) behind the solver interface.

    Parameters
    ----------
    model_dir : path
        Folder written by ``brainforge train`` (``config.json`` + ``model.safetensors``).
    batch_size : int
        Windows per forward pass. 16 keeps a pass's activations in the CPU
        cache: about a third faster per window than 64 (``benchmarks/long_recording.py``).
    overlap : float
        Fraction of a window shared with the next, in [0, 1). The default 0.1
        joins a whole-segment network's 1-s windows with a 0.1-s Hann
        crossfade: 1.8x fewer forward passes than half overlap, for 2 % fewer
        spikes localized inside their patch on continuous recordings
        (``benchmarks/window_overlap.py``, docs/localize.md); 0.5 is the
        more careful choice when time does not matter.
    window_samples : int | None
        Samples per window; None (default) uses the length the network was
        trained on (its ``--crop``, else its segment).
    upsample : bool
        EEG with fewer channels than the network's training montage is first
        interpolated onto that montage by spherical splines (what MNE's
        ``interpolate_bads`` does for EEG), then run as such. True (default)
        for map-based networks; a 16-channel cap lost 1-2 mm of median
        peak-centre error this way (docs/models.md, "Sparse montages").
        False gives the network the channels as they are. Networks with a
        fixed montage never upsample. A channel-count router
        (:class:`~brainforge.models.ChannelCountRouter`) picks its member by
        the recording's own channel count first; that member is then
        upsampled like any map-based network.
    verbose : bool | str | int | None
        Log level of BrainForge in :meth:`fit` and :meth:`apply`; None keeps the current one.

    Attributes
    ----------
    model_ : SourceModel
        The network in inference form (set by :meth:`fit`, which loads the weights).
    head_ : HeadModel
        The head model of the last :meth:`fit`.
    montage_ : Montage
        The montage the network sees: the head model's channels and positions,
        or the network's training montage when ``upsample_matrix_`` is set.
    n_channels_ : int
        Channels the EEG must have.
    upsample_matrix_ : array, shape (n_montage_channels, n_channels) | None
        The spherical-spline interpolation onto the training montage, or None
        when the EEG goes to the network as it is.

    Notes
    -----
    A network trained on windows (``--crop``) runs on windows of that length,
    overlapping by ``overlap``. Each window is normalized as in training (time
    and channel means removed, divided by its max |value|); its estimate is
    scaled back by that factor, so windows keep their relative amplitude, and
    overlapping windows are blended with a Hann taper.
    """

    def __init__(
        self,
        model_dir: str | Path,
        batch_size: int = 16,
        overlap: float = 0.1,
        window_samples: int | None = None,
        upsample: bool = True,
        verbose: bool | str | int | None = None,
    ):
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.overlap = overlap
        self.window_samples = window_samples
        self.upsample = upsample
        self.verbose = verbose
        self._check_params()

    def _check_params(self) -> None:
        """Refuse an overlap outside [0, 1) or a batch or window below one (at construction and in fit)."""
        if not 0.0 <= self.overlap < 1.0:
            raise BrainForgeError(f"overlap must lie in [0, 1), got {self.overlap}.")
        if self.batch_size < 1 or (self.window_samples is not None and self.window_samples < 1):
            raise BrainForgeError(f"batch_size and window_samples must be 1 or more, got {self.batch_size}, "
                                  f"{self.window_samples}.")  # fmt: skip
        if not isinstance(self.upsample, bool):
            raise BrainForgeError(f"upsample must be True or False, got {self.upsample!r}.")

    @property
    def config(self) -> dict:
        """The model folder's ``config.json`` (read once; no weights are loaded)."""
        from ..models.io import read_model_config

        cached = self.__dict__.get("_config")
        if cached is None or cached[0] != self.model_dir:
            cached = (self.model_dir, read_model_config(self.model_dir))
            self.__dict__["_config"] = cached
        return cached[1]

    @property
    def name(self) -> str:
        """The model folder's name (the network's name for a folder without one)."""
        return self.model_dir.name or self.config["model"]["name"]

    @property
    def sfreq(self) -> float:
        """Sampling rate the network was trained at, Hz."""
        return float((self.config.get("data") or {}).get("sfreq_hz", DEFAULT_SFREQ_HZ))

    @property
    def n_regions(self) -> int:
        """Regions the network outputs."""
        return int(self.config["n_regions"])

    @property
    def window_length(self) -> int:
        """Samples per window: ``window_samples``, else the network's training crop or segment."""
        if self.window_samples is not None:
            return int(self.window_samples)
        # A network sees windows as long as it was trained on: its crop, else the training
        # segment (1 s when an older config does not record it).
        training, data = self.config.get("training") or {}, self.config.get("data") or {}
        return int(training.get("crop_samples") or data.get("segment_samples") or round(self.sfreq))

    @_verbose
    def fit(self, head) -> LearnedSolver:
        """Load the weights (BatchNorm folded in), check the head model's regions and take its montage.

        Sets ``model_`` (the network, ready for inference; a router's member
        for the head's channel count), ``head_``, ``montage_``, ``n_channels_``
        and ``upsample_matrix_``.
        """
        from ..models import load_model
        from ..models.base import inference_copy
        from ..topomap import Montage, montage_upsampling

        self._check_params()
        if head.n_regions != self.n_regions:
            raise BrainForgeError(
                f"Model {self.model_dir} outputs {self.n_regions} regions but the head model has "
                f"{head.n_regions}; use the head model it was trained on, or fine-tune it (--init)."
            )
        model, _ = load_model(self.model_dir)
        self.montage_ = Montage.from_head_model(head)
        model = _member_for(model, self.montage_)
        self.model_ = inference_copy(model)
        self.head_ = head
        self.n_channels_ = head.n_channels
        self.upsample_matrix_ = None
        if self.upsample and _upsamples(model, head.n_channels):
            self.upsample_matrix_ = montage_upsampling(head.ch_pos_mm, model.montage)
            self.montage_ = model.montage
            logger.info(
                "%d channels are interpolated onto the network's %d-channel training montage (spherical splines).",
                head.n_channels,
                model.montage.n_channels,
            )
        return self

    def window_starts(self, n_times: int) -> tuple[list[int], int]:
        """Window starts and length covering ``n_times`` samples, overlapping by ``overlap``."""
        length = self.window_length
        if n_times <= length:
            return [0], n_times
        step = max(1, round(length * (1.0 - self.overlap)))
        starts = list(range(0, n_times - length + 1, step))
        if starts[-1] != n_times - length:
            starts.append(n_times - length)
        return starts, length

    def block_grid(self) -> tuple[int, int]:
        """Return (margin, step): one window of margin, blocks on the grid of window starts."""
        length = self.window_length
        step = max(1, round(length * (1.0 - self.overlap)))
        return -(-length // step) * step, step

    @_verbose
    def apply_regions(
        self, eeg: np.ndarray, sfreq: float | None = None, *, with_dipoles: bool = False
    ) -> SourceActivity:
        """Estimate region time courses of EEG (n_channels, n_times) sampled at the network's rate.

        A network estimates regions only: ``with_dipoles`` leaves ``vertex_data`` None.
        """
        import torch

        from ..synthesis.normalize import normalize_eeg

        eeg = self._check_eeg(eeg)
        if sfreq is not None and abs(sfreq - self.sfreq) > 1e-6:
            raise BrainForgeError(
                f"Model {self.model_dir.name} expects EEG at {self.sfreq:g} Hz, got {sfreq:g} Hz; resample it first."
            )
        if self.upsample_matrix_ is not None:
            eeg = self.upsample_matrix_ @ eeg
        starts, length = self.window_starts(eeg.shape[1])
        overlapping = len(starts) > 1 and self.overlap > 0
        taper = np.hanning(length + 2)[1:-1] if overlapping else np.ones(length)
        # (T, R) float32: windows add along the first axis (the network's own precision).
        total = np.zeros((eeg.shape[1], self.n_regions), np.float32)
        weight = np.zeros(eeg.shape[1], np.float32)
        for first in range(0, len(starts), self.batch_size):
            chunk = starts[first : first + self.batch_size]
            windows = np.stack([eeg[:, s : s + length].T for s in chunk])  # (B, L, C)
            windows, scale = normalize_eeg(windows, return_scale=True)
            with torch.inference_mode():
                estimate = self.model_(torch.from_numpy(windows), self.montage_).numpy()  # (B, L, R)
            estimate *= (scale[:, None] * taper[None, :]).astype(np.float32)[:, :, None]
            _overlap_add(total, weight, estimate, chunk, taper)
        total /= weight[:, None]
        return SourceActivity(total.T, self.sfreq, self.name)


def _member_for(model, montage):
    """Return a channel-count router's member for EEG on ``montage`` (before any upsampling), else ``model``.

    The recording's own channel count decides: upsampled onto the training
    montage first, every cap would go to the dense member.
    """
    from ..models.router import ChannelCountRouter

    return model.member_for(montage) if isinstance(model, ChannelCountRouter) else model


def _upsamples(model, n_channels: int) -> bool:
    """Whether EEG with ``n_channels`` goes through the training montage: a map-based network, fewer channels."""
    return model.any_montage and n_channels < model.montage.n_channels


def _overlap_add(total: np.ndarray, weight: np.ndarray, estimate: np.ndarray, starts: list[int], taper) -> None:
    """Add windows ``estimate`` (B, L, R) starting at ``starts`` into ``total`` (T, R), and ``taper`` into ``weight``.

    Windows on a regular grid whose step divides their length are added in
    ``L / step`` vectorized slices; any other window (the last one, aligned to
    the end) is added on its own.
    """
    length = estimate.shape[1]
    step = starts[1] - starts[0] if len(starts) > 1 else length
    regular = 1
    while regular < len(starts) and starts[regular] - starts[regular - 1] == step:
        regular += 1
    if length % step == 0 and regular > 1:
        pieces = length // step
        first = starts[0]
        for piece in range(pieces):
            # Window i's piece j covers samples first + (i + j) * step ... + step.
            begin = first + piece * step
            span = total[begin : begin + regular * step].reshape(regular, step, -1)
            span += estimate[:regular, piece * step : (piece + 1) * step]
            weight[begin : begin + regular * step] += np.tile(taper[piece * step : (piece + 1) * step], regular)
    else:
        regular = 0
    for index in range(regular, len(starts)):
        s = starts[index]
        total[s : s + length] += estimate[index]
        weight[s : s + length] += taper


def make_solver(name: str, **options) -> InverseSolver:
    """Return an unfitted solver by name: the one lookup the CLI, ``localize`` and the benchmark share.

    Parameters
    ----------
    name : str
        ``"default"`` (the bundled network), a classical method (one of
        :data:`CLASSICAL_SOLVERS`, any case) or a trained-model folder.
    **options
        Parameters of the solver: ``lambda2`` for a classical method,
        ``batch_size``, ``overlap``, ``window_samples`` and ``upsample`` for a
        network, ``verbose`` for both. A parameter the solver
        does not take is a one-line error, never dropped.

    Returns
    -------
    solver : ClassicalSolver | LearnedSolver
    """
    from .._data import default_model_dir

    if name.lower() in CLASSICAL_SOLVERS:
        kind, args = ClassicalSolver, (name.lower(),)
    elif name == "default":
        kind, args = LearnedSolver, (default_model_dir(),)
    elif Path(name).is_dir():
        kind, args = LearnedSolver, (Path(name),)
    else:
        raise BrainForgeError(
            f"Unknown solver {name!r}: use 'default', one of {', '.join(CLASSICAL_SOLVERS)}, or a model folder."
        )
    accepted = [p for p in inspect.signature(kind.__init__).parameters if p not in ("self", "method", "model_dir")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise BrainForgeError(
            f"Solver {name!r} takes no option {', '.join(unknown)}; it takes {', '.join(accepted) or 'none'}."
        )
    solver = kind(*args, **options)
    if kind is LearnedSolver:  # a model folder fails here, in one line, not after a recording was read
        weights = solver.model_dir / "model.safetensors"
        if not solver.config or not weights.is_file():
            raise BrainForgeError(f"Model weights not found: {weights}.")
    return solver
