"""Labelled synthetic EEG: spike patches over neural-mass background, projected and noised."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from .._errors import BrainForgeError
from ..anatomy.forward_bank import ForwardBank
from ..anatomy.head_model import HeadModel
from ..nmm.library import SpikeLibrary
from .noise import (
    NOISE_TYPES,
    NoiseBank,
    RealisticNoise,
    _gather_segments,
    noise_gain,
    pink_noise,
    power,
    touch_rows,
    white_noise,
)
from .patches import grow_patch, patch_weights

if TYPE_CHECKING:
    import torch

#: Half-width of the window around a spike peak in which the source SNR is measured, samples.
SOURCE_SNR_HALF_WINDOW = 100

#: Largest memory for projected background clips kept by a generator, bytes.
_CLIP_CACHE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class SynthesisConfig:
    """How samples are drawn.

    Parameters
    ----------
    n_sources : (int, int)
        Fewest and most patches per sample.
    max_patch_regions : int
        Largest patch.
    half_amplitude_mm : (float, float)
        Range of the distance at which a patch's amplitude halves, mm.
    source_snr_db : (float, float)
        Range of each patch's SNR over the background activity, dB.
    sensor_snr_db : (float, float)
        Range of the sensor SNR, dB.
    noise_types : tuple of str
        Sensor noise drawn from these: ``"white"``, ``"pink"`` (1/f),
        ``"realistic"`` (needs realistic noise).
    snr_convention : ``"power"`` | ``"deepsif"``
        Nominal SNR delivered as asked, or as DeepSIF delivers it (about
        3 dB higher).
    deep_share : float
        Probability that a patch is centred on a deep region.
    overlap : bool
        Allow patches to share regions.
    max_onset_delay_ms : float
        Each patch's spike starts up to this much later (moving sources).
    background_share : float
        Probability that a sample holds no source at all: background
        activity and sensor noise only, with an all-zero target. Training on
        such segments keeps a network that slides over a long recording in
        distribution between spikes. Spikes already lie anywhere in the
        segment (the library's clips are cut on fixed 500-sample blocks, as
        DeepSIF's are) and about half the clips hold two or more spikes.
    n_channels : (int, int) | None
        Draw a random subset of this many channels of the head model's
        montage per sample; None keeps every channel.
    noise_bank_segments : int
        White and 1/f sensor noise come from a :class:`NoiseBank` of this
        many segments per type (distinct, circularly shifted, sign-flipped
        segments per channel): the generator runs about 2x faster than with
        fresh Gaussian draws. 0 draws fresh noise for every sample.
    noise_bank_seed : int
        Seed of the noise bank.
    """

    n_sources: tuple[int, int] = (1, 3)
    max_patch_regions: int = 70
    half_amplitude_mm: tuple[float, float] = (40.0, 60.0)
    source_snr_db: tuple[float, float] = (10.0, 20.0)
    sensor_snr_db: tuple[float, float] = (5.0, 20.0)
    noise_types: tuple[str, ...] = ("white", "pink")
    snr_convention: str = "power"
    deep_share: float = 0.0
    overlap: bool = False
    max_onset_delay_ms: float = 0.0
    background_share: float = 0.0
    n_channels: tuple[int, int] | None = None
    noise_bank_segments: int = 8192
    noise_bank_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_sources", "half_amplitude_mm", "source_snr_db", "sensor_snr_db", "n_channels"):
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or value[0] > value[1]):
                raise BrainForgeError(f"{name} must be a (low, high) range with low <= high, got {value}.")
        if self.n_sources[0] < 1:
            raise BrainForgeError(f"n_sources must start at 1 or more, got {self.n_sources}.")
        unknown = set(self.noise_types) - set(NOISE_TYPES)
        if unknown or not self.noise_types:
            raise BrainForgeError(f"noise_types must be among {', '.join(NOISE_TYPES)}, got {self.noise_types}.")
        if self.snr_convention not in ("power", "deepsif"):
            raise BrainForgeError(f"snr_convention must be 'power' or 'deepsif', got {self.snr_convention!r}.")
        if not 0.0 <= self.deep_share <= 1.0:
            raise BrainForgeError(f"deep_share must lie in [0, 1], got {self.deep_share}.")
        if not 0.0 <= self.background_share < 1.0:
            raise BrainForgeError(f"background_share must lie in [0, 1), got {self.background_share}.")
        if self.n_channels is not None and self.n_channels[0] < 8:
            raise BrainForgeError("n_channels must keep at least 8 channels.")
        if self.noise_bank_segments < 0:
            raise BrainForgeError(
                f"noise_bank_segments must be 0 (fresh noise) or more, got {self.noise_bank_segments}."
            )


def source_activity(waves: np.ndarray | torch.Tensor, weights: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Activity ``waves @ weights`` of factored targets, summed patch by patch in a fixed order.

    Written as products and sums (not a matrix product) so that NumPy and
    PyTorch, on any device, give the same bits, with no reduced-precision
    (TF32) matrix products on GPUs.

    Parameters
    ----------
    waves : array or tensor, shape (..., n_times, n_patches)
        Patch waveforms.
    weights : array or tensor, shape (..., n_patches, n_regions)
        Patch weights.

    Returns
    -------
    activity : array or tensor, shape (..., n_times, n_regions)
    """
    if waves.shape[-1] == 0:  # no patch (a background-only sample): all zero
        return waves @ weights
    activity = waves[..., :, 0:1] * weights[..., 0:1, :]
    for i in range(1, waves.shape[-1]):
        activity = activity + waves[..., :, i : i + 1] * weights[..., i : i + 1, :]
    return activity


@dataclass
class Sample:
    """One labelled sample.

    Attributes
    ----------
    eeg : array, shape (n_times, n_channels)
        Normalised EEG (time mean, then channel mean removed; divided by the max |value|), float32.
    source_regions : array of int, shape (n_active,)
        The regions of the patches, sorted.
    source_waves : array, shape (n_times, n_sources)
        Each patch's waveform, divided by the max |activity| over all
        regions, float32.
    source_weights : array, shape (n_sources, n_active)
        Each patch's weight on each of ``source_regions`` (0 outside the
        patch), float32.
    source_values : array, shape (n_times, n_active)
        (property) Activity of ``source_regions``: ``source_waves @
        source_weights`` in float32; its max |value| is 1.
    sources : array, shape (n_times, n_regions)
        (property) The dense target: ``source_values`` in the columns
        ``source_regions``, zero elsewhere, float32.
    active : array of bool, shape (n_regions,)
        Regions of any patch.
    centres : array of int, shape (n_sources,)
        Patch centre regions.
    patches : list of arrays of int
        Regions of each patch.
    source_snr_db : array, shape (n_sources,)
        Realised SNR of each patch over the background (module definition).
    sensor_snr_db : float
        Realised sensor SNR.
    noise_type : str
        Sensor noise used.
    onsets : array of int, shape (n_sources,)
        Onset delay of each patch, samples.
    ch_names : list of str
        Channels.
    ch_pos : array, shape (n_channels, 3)
        Channel positions, mm.
    seed : int
        Seed that reproduces this sample.
    peak_time : int
        Time sample of the largest |target| (the spike peak; the first one
        on a tie), as ``np.abs(sources).max(axis=1).argmax()`` gives it;
        0 for a background-only sample (no source: ``source_waves`` has no
        column and ``sources`` is all zero).
    forward_index : int
        Forward model of the generator's forward bank that made the EEG
        (-1: the head model's own leadfield).
    parts : dict | None
        With ``keep_parts=True``: the un-normalised ``clean`` EEG, ``noise``,
        ``background_eeg`` and each patch's ``patch_eeg``, to check SNRs.
    """

    eeg: np.ndarray
    source_regions: np.ndarray
    source_waves: np.ndarray
    source_weights: np.ndarray
    active: np.ndarray
    centres: np.ndarray
    patches: list[np.ndarray]
    source_snr_db: np.ndarray
    sensor_snr_db: float
    noise_type: str
    onsets: np.ndarray
    ch_names: list[str]
    ch_pos: np.ndarray
    seed: int = field(default=0)
    peak_time: int = field(default=0)
    forward_index: int = field(default=-1)
    parts: dict | None = None

    @property
    def source_values(self) -> np.ndarray:
        """Activity of ``source_regions``, shape (n_times, n_active), float32."""
        return source_activity(self.source_waves, self.source_weights)

    @property
    def sources(self) -> np.ndarray:
        """Dense target, shape (n_times, n_regions), zero outside the patches."""
        dense = np.zeros((len(self.source_waves), len(self.active)), np.float32)
        dense[:, self.source_regions] = self.source_values
        return dense


class SampleGenerator:
    """Draw labelled samples from a head model and a spike library.

    Parameters
    ----------
    head : HeadModel
        Regions, their graph and the region leadfield used to make the EEG
        (pass an alternative forward model with the same regions for test
        data free of the inverse crime).
    library : SpikeLibrary
        Spike waveforms and background activity.
    config : SynthesisConfig | None
        Sampling parameters.
    region_node : array of int, shape (n_regions,) | None
        Library node driving each region; by default the head model's own
        (DeepSIF's rule) when it has one for this connectome, otherwise the
        nearest node centre.
    realistic_noise : RealisticNoise | None
        Needed when ``"realistic"`` is among the noise types.
    forward_bank : ForwardBank | None
        Draw every sample's forward model (skull conductivity, cap placement,
        head shape, electrode jitter) from this bank around ``head``
        (:func:`~brainforge.anatomy.make_forward_bank`); None uses the head
        model's own leadfield.
    """

    def __init__(
        self,
        head: HeadModel,
        library: SpikeLibrary,
        config: SynthesisConfig | None = None,
        *,
        region_node: np.ndarray | None = None,
        realistic_noise: RealisticNoise | None = None,
        forward_bank: ForwardBank | None = None,
    ):
        self.head = head
        self.forward_bank = forward_bank
        self.library = library
        self.config = config or SynthesisConfig()
        self.realistic_noise = realistic_noise
        if "realistic" in self.config.noise_types and realistic_noise is None:
            raise BrainForgeError("noise_types include 'realistic' but no realistic noise was given.")
        if not len(library.waveforms):
            raise BrainForgeError("The spike library holds no spike; build it with `brainforge simulate`.")
        if not len(library.background):
            raise BrainForgeError("The spike library holds no background activity.")
        self.region_node = self._region_node(region_node)
        self._node_spikes = self._spikes_by_node()
        # Background activity lives on connectome nodes: summing the region
        # leadfield by node once lets every sample project it with a
        # (channels x nodes) matrix instead of (channels x regions).
        membership = np.zeros((head.n_regions, library.n_nodes))
        membership[np.arange(head.n_regions), self.region_node] = 1.0
        self._node_leadfield = head.region_leadfield @ membership
        self._region_leadfield = np.ascontiguousarray(head.region_leadfield)
        self._bank_projected: dict[tuple[int, int], np.ndarray] = {}
        if forward_bank is not None:
            if forward_bank.n_channels != head.n_channels or forward_bank.scalp_leadfield.shape[2] != head.n_regions:
                n_bank = (forward_bank.n_channels, forward_bank.scalp_leadfield.shape[2])
                raise BrainForgeError(
                    f"The forward bank has {n_bank[0]} channels and {n_bank[1]} regions, the head model "
                    f"{head.n_channels} and {head.n_regions}; build the bank for this head."
                )
            self._bank_node_leadfield = (forward_bank.scalp_leadfield @ membership).astype(np.float32)
        # Projected background clips, kept while they take little memory (17 clips of the
        # default library at 64 channels: 4 MB): per clip, all channels (_projected) and
        # the full montage average-referenced with its cumulative power (_full_montage).
        n_clips, n_times = library.background.shape[:2]
        self._cache_clips = 2 * n_clips * n_times * head.n_channels * 8 <= _CLIP_CACHE_BYTES
        self._projected: dict[int, np.ndarray] = {}
        self._full_montage: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._spike_median = np.median(np.asarray(library.waveforms, float), axis=1)
        self._distance = head.region_distance
        self._adjacency = head.region_adjacency.astype(np.float64).tocsr()
        candidates = np.arange(head.n_regions)
        self._cortical = candidates[~head.region_is_deep]
        self._deep = candidates[head.region_is_deep]
        if self.config.deep_share > 0 and not len(self._deep):
            raise BrainForgeError("deep_share > 0 but the head model has no deep regions.")
        max_k = self.config.n_sources[1]
        if max_k > head.n_regions:
            raise BrainForgeError(f"{max_k} sources asked for, but the head model has only {head.n_regions} regions.")
        if self.config.n_channels is not None and self.config.n_channels[1] > head.n_channels:
            raise BrainForgeError(
                f"n_channels up to {self.config.n_channels[1]} asked for, but the head model has {head.n_channels}."
            )
        self._noise_bank = None
        if self.config.noise_bank_segments:
            if self.config.noise_bank_segments < head.n_channels:
                raise BrainForgeError(
                    f"noise_bank_segments={self.config.noise_bank_segments} is fewer than the {head.n_channels} "
                    "channels of the head model; use at least that many, or 0 for fresh noise."
                )
            self._noise_bank = NoiseBank(self.config.noise_bank_segments, self.config.noise_bank_seed)

    # ------------------------------------------------------------------ set-up
    def _region_node(self, region_node) -> np.ndarray:
        n_nodes = self.library.n_nodes
        if region_node is None:
            head_nodes = self.head.region_node
            if head_nodes is not None and head_nodes.max() < n_nodes and self.head.connectivity is not None:
                if self.head.connectivity.n_nodes != n_nodes:
                    raise BrainForgeError(
                        f"The spike library comes from a {n_nodes}-node connectome, the head model's from "
                        f"{self.head.connectivity.n_nodes}; simulate a library on the head model's connectome."
                    )
                region_node = head_nodes
            else:
                from ..anatomy.connectivity import map_regions_to_nodes, read_connectivity

                conn = read_connectivity(self.library.metadata["connectome"])
                if conn.n_nodes != n_nodes:
                    raise BrainForgeError("The spike library's connectome file no longer matches the library.")
                region_node = map_regions_to_nodes(conn, self.head.region_centres)
        region_node = np.asarray(region_node, np.int64)
        if region_node.shape != (self.head.n_regions,) or region_node.min() < 0 or region_node.max() >= n_nodes:
            raise BrainForgeError(
                f"region_node must give one node in 0..{n_nodes - 1} for each of the {self.head.n_regions} regions; "
                "is the spike library from another connectome?"
            )
        return region_node

    def _spikes_by_node(self) -> list[np.ndarray]:
        """Spike indices for every node; nodes without spikes borrow the nearest node's."""
        lib = self.library
        by_node = [np.flatnonzero(lib.nodes == n) for n in range(lib.n_nodes)]
        have = np.array([len(s) > 0 for s in by_node])
        centres = np.asarray(lib.metadata.get("centres") or np.zeros((lib.n_nodes, 3)), float)
        donors = np.flatnonzero(have)
        for node in np.flatnonzero(~have):
            nearest = donors[np.argmin(np.linalg.norm(centres[donors] - centres[node], axis=1))]
            by_node[node] = by_node[nearest]
        return by_node

    def prepare(self) -> SampleGenerator:
        """Project every background clip on the full montage and draw the noise banks now, not on first use.

        Call it before DataLoader workers fork from this process, so they
        share that memory instead of each making its own; samples do not
        change.

        Returns
        -------
        generator : SampleGenerator
            This generator.
        """
        channels = np.arange(self.head.n_channels)
        if self._cache_clips:
            for clip in range(len(self.library.background)):
                self._background(clip, channels)
        if self.forward_bank is not None:
            for conductivity in np.unique(self.forward_bank.conductivity_index):
                for clip in range(len(self.library.background)):
                    self._bank_vertex_background(clip, int(conductivity))
        if self._noise_bank is not None:
            n_times = self.library.background.shape[1]
            for kind in set(self.config.noise_types) - {"realistic"}:
                self._noise_bank.segments(kind, n_times)
        return self

    # ------------------------------------------------------------------ drawing
    def _n_sources(self, rng: np.random.Generator) -> int:
        """Patches of the next sample: 0 with probability ``background_share``, else a draw from ``n_sources``."""
        cfg = self.config
        if cfg.background_share > 0.0 and rng.random() < cfg.background_share:
            return 0
        return int(rng.integers(cfg.n_sources[0], cfg.n_sources[1] + 1))

    def _draw_centres(self, k: int, rng: np.random.Generator) -> np.ndarray:
        centres: list[int] = []
        while len(centres) < k:
            pool = self._deep if rng.random() < self.config.deep_share else self._cortical
            region = int(pool[rng.integers(len(pool))])
            if region not in centres:
                centres.append(region)
        return np.array(centres, np.int64)

    def _channels(self, rng: np.random.Generator) -> np.ndarray:
        n_all = self.head.n_channels
        if self.config.n_channels is None:
            return np.arange(n_all)
        n = int(rng.integers(self.config.n_channels[0], self.config.n_channels[1] + 1))
        return np.sort(rng.choice(n_all, n, replace=False))

    def _waveform(self, region: int, rng: np.random.Generator) -> np.ndarray:
        spikes = self._node_spikes[self.region_node[region]]
        spike = spikes[rng.integers(len(spikes))]
        return self.library.waveforms[spike].astype(float) - self._spike_median[spike]

    def _background(self, clip: int, channels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Background EEG of library clip ``clip`` on ``channels``, and its cumulative windowed power.

        Returns
        -------
        eeg : array, shape (n_channels, n_times)
            The clip's node activity projected through the average-referenced
            leadfield rows, channels first (as the sample is assembled).
        cumulative_power : array, shape (n_times + 1,)
            ``cumulative_power[t]`` sums, over the first ``t`` samples, the power
            across channels of the EEG with each channel's clip mean removed, so
            :func:`_windowed_power` of any window is one subtraction.
        """
        full = len(channels) == self.head.n_channels
        if full and clip in self._full_montage:
            return self._full_montage[clip]
        projected = self._projected.get(clip)
        if projected is None:
            # Every channel of the montage at once, before the average reference, so that
            # any channel subset is a column pick and a row mean away.
            projected = self.library.background[clip].astype(float) @ self._node_leadfield.T
            if self._cache_clips:
                self._projected[clip] = projected
        eeg, cumulative = _reference_background(projected if full else projected[:, channels])
        if full and self._cache_clips:
            self._full_montage[clip] = (eeg, cumulative)
        return eeg, cumulative

    def _bank_background(self, clip: int, forward: int, channels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_background` through forward model ``forward`` of the forward bank.

        A clip is projected once per skull conductivity onto every scalp vertex
        of the dense leadfield; a forward model then interpolates three
        vertices per electrode.
        """
        bank = self.forward_bank
        vertices = self._bank_vertex_background(clip, int(bank.conductivity_index[forward]))
        index = bank.vertex_index[forward][channels]
        weights = bank.vertex_weight[forward][channels]
        return _interpolate_background(vertices, index, weights)

    def _bank_vertex_background(self, clip: int, conductivity: int) -> np.ndarray:
        """Clip ``clip`` projected onto the bank's scalp vertices (n_vertices, n_times), float32, kept."""
        key = (clip, conductivity)
        vertices = self._bank_projected.get(key)
        if vertices is None:
            clip_nodes = self.library.background[clip].astype(np.float32)
            vertices = np.ascontiguousarray((clip_nodes @ self._bank_node_leadfield[conductivity].T).T)
            self._bank_projected[key] = vertices
        return vertices

    def _topography(self, patch: np.ndarray, weights: np.ndarray, channels: np.ndarray, forward: int) -> np.ndarray:
        """EEG per unit waveform of a patch on ``channels`` (reference-free), through ``forward`` if a bank is on."""
        if self.forward_bank is None:
            topography = self._region_leadfield[:, patch] @ weights
            return topography[channels] if len(channels) < self.head.n_channels else topography
        bank = self.forward_bank
        dense = bank.scalp_leadfield[bank.conductivity_index[forward]]
        index = bank.vertex_index[forward][channels]
        vertex_weights = bank.vertex_weight[forward][channels]
        return _interpolate_topography(dense, index, vertex_weights, patch, weights)

    def sample(self, seed: int, *, keep_parts: bool = False, out: np.ndarray | None = None) -> Sample:
        """Draw the sample of ``seed`` (the same seed gives the same sample, bit for bit).

        ``out``, a float32 (n_times, n_channels) array, receives the EEG (for
        example a row of a batch), which ``Sample.eeg`` then is.

        Each patch carries one waveform scaled by its region weights, so its
        activity is ``outer(wave, weights)`` and its EEG is the rank-one
        ``outer(wave, leadfield[:, patch] @ weights)``: its SNR and EEG are
        computed from the waveform and that topography, never from a
        (time x regions) array, and the background EEG of a library clip is
        projected once and reused.
        """
        cfg = self.config
        rng = np.random.default_rng(seed)
        head = self.head
        channels = self._channels(rng)
        clip = int(rng.integers(len(self.library.background)))
        if self.forward_bank is None:
            forward = -1
            background_eeg, background_cumulative = self._background(clip, channels)  # channels first
        else:
            forward = int(rng.integers(self.forward_bank.n_placements))
            background_eeg, background_cumulative = self._bank_background(clip, forward, channels)
        n_times = background_eeg.shape[1]
        k = self._n_sources(rng)
        centres = self._draw_centres(k, rng)
        # Without overlap, a patch may take neither another patch nor another centre.
        taken = np.zeros(head.n_regions, bool)
        if not cfg.overlap:
            taken[centres] = True
        patches, onsets, snrs, windows = [], np.zeros(k, np.int64), np.zeros(k), []
        waves = np.zeros((k, n_times))  # each patch's scaled waveform
        topographies = np.zeros((k, len(channels)))  # each patch's EEG per unit waveform
        patch_weights_: list[np.ndarray] = []
        max_delay = round(cfg.max_onset_delay_ms / 1000.0 * self.sfreq)
        for i, centre in enumerate(centres):
            taken[centre] = False
            patch = grow_patch(
                self._adjacency, head.region_centres, int(centre), rng,
                max_regions=cfg.max_patch_regions, excluded=None if cfg.overlap else taken,
            )  # fmt: skip
            taken[patch] = True
            weights = patch_weights(self._distance[centre, patch], rng.uniform(*cfg.half_amplitude_mm))
            wave = self._waveform(int(centre), rng)
            onsets[i] = int(rng.integers(0, max_delay + 1)) if max_delay else 0
            wave = np.concatenate([np.zeros(onsets[i]), wave[: n_times - onsets[i]]])
            topography = self._topography(patch, weights, channels, forward)
            topography = topography - topography.mean()
            peak = int(np.argmax(np.abs(wave)))
            window = slice(max(0, peak - SOURCE_SNR_HALF_WINDOW), min(n_times, peak + SOURCE_SNR_HALF_WINDOW))
            background_power = (background_cumulative[window.stop] - background_cumulative[window.start]) / (
                window.stop - window.start
            )
            # Windowed power of outer(wave, topography) with each channel's time mean removed.
            centred_wave = wave[window] - wave.mean()
            patch_power = float(np.dot(centred_wave, centred_wave) / len(centred_wave) * np.mean(topography**2))
            gain = self._gain(patch_power, background_power, rng.uniform(*cfg.source_snr_db))
            snrs[i] = 10.0 * np.log10(gain**2 * patch_power / background_power)
            waves[i] = gain * wave
            topographies[i] = topography
            patches.append(patch)
            patch_weights_.append(weights)
            windows.append(window)
        noise_type = cfg.noise_types[int(rng.integers(len(cfg.noise_types)))]
        names = [head.ch_names[c] for c in channels]
        noise = self._draw_noise(noise_type, names, n_times, rng)
        # The EEG is assembled channels first, in two compiled passes: the clean EEG with its
        # channel means and power, then clean + scale * noise normalised as normalise_eeg() (synthesis.normalise)
        # does (each channel's time mean removed, then each time's channel mean, then / max).
        touch_rows(noise.source, noise.segments)
        clean, clean_means, clean_power = _clean_eeg(background_eeg, waves, topographies)
        scale = noise_gain(clean_power, noise.power, rng.uniform(*cfg.sensor_snr_db), cfg.snr_convention)
        if out is None:
            out = np.empty((n_times, len(channels)), np.float32)
        elif out.shape != (n_times, len(channels)) or out.dtype != np.float32:
            raise BrainForgeError(f"out must be a float32 array of shape {(n_times, len(channels))}, got {out.shape}.")
        eeg = _mix_and_normalise(
            clean, clean_means, noise.source, noise.segments, noise.shifts, noise.signs, noise.means, scale, out
        )
        # Targets: only patch regions are non-zero, and their activity is the rank-k product
        # (time x patches) waveforms @ (patches x regions) weights; both factors are kept.
        regions = np.unique(np.concatenate(patches)) if patches else np.zeros(0, np.int64)
        weight_matrix = np.zeros((k, len(regions)))
        for i, (patch, weights) in enumerate(zip(patches, patch_weights_, strict=True)):
            weight_matrix[i, np.searchsorted(regions, patch)] += weights
        largest = _largest_product(waves.T, weight_matrix) if k else 1.0
        source_waves = (waves.T / largest).astype(np.float32)
        source_weights = weight_matrix.astype(np.float32)
        active = np.zeros(head.n_regions, bool)
        active[regions] = True
        parts = None
        if keep_parts:
            patch_eegs = [(np.outer(waves[i], topographies[i]), windows[i]) for i in range(k)]
            background = background_eeg.T
            clean = background + waves.T @ topographies
            parts = {"clean": clean, "noise": scale * noise.gather(n_times), "background_eeg": background}
            parts["patch_eeg"] = patch_eegs
        return Sample(
            eeg=eeg,
            source_regions=regions,
            source_waves=source_waves,
            source_weights=source_weights,
            active=active,
            centres=centres,
            patches=patches,
            source_snr_db=snrs,
            sensor_snr_db=float(10.0 * np.log10(clean_power / (noise.power * scale**2))),
            noise_type=noise_type,
            onsets=onsets,
            ch_names=names,
            ch_pos=head.ch_pos[channels],
            seed=int(seed),
            peak_time=_peak_time(source_waves, source_weights),
            forward_index=forward,
            parts=parts,
        )

    @property
    def sfreq(self) -> float:
        """Sampling rate of the samples (the spike library's), Hz."""
        return float(self.library.metadata.get("sfreq_hz", 500.0))

    @staticmethod
    def _gain(signal: float, background_power: float, target_db: float) -> float:
        """Gain that puts a patch of windowed power ``signal`` ``target_db`` above the background."""
        if signal <= 0:
            raise BrainForgeError("A patch projects to nothing on this montage.")
        return float(np.sqrt(10 ** (target_db / 10) * background_power / signal))

    def _draw_noise(self, kind: str, names: list[str], n_times: int, rng: np.random.Generator) -> _SensorNoise:
        """Draw the sensor noise of ``kind`` for channels ``names`` (from the noise bank when there is one)."""
        if kind != "realistic" and self._noise_bank is not None:
            bank = self._noise_bank
            segments, shifts, signs = bank.pick(len(names), n_times, rng)
            means, powers = bank.moments(kind, n_times)
            return _SensorNoise(
                bank.segments(kind, n_times), segments, shifts, signs, signs * means[segments],
                float(np.mean(powers[segments])),
            )  # fmt: skip
        if kind == "white":
            noise = white_noise(n_times, len(names), rng)
        elif kind == "pink":
            noise = pink_noise(n_times, len(names), rng)
        else:
            noise = np.asarray(self.realistic_noise.draw(names, n_times, rng), float)
        n_channels = len(names)
        return _SensorNoise(
            np.ascontiguousarray(noise.T), np.arange(n_channels), np.zeros(n_channels, np.int64),
            np.ones(n_channels), noise.mean(axis=0), power(noise),
        )  # fmt: skip


@dataclass
class _SensorNoise:
    """A sample's sensor noise: channel ``c`` is ``signs[c] * source[segments[c]]`` shifted by ``shifts[c]``.

    Attributes
    ----------
    source : array, shape (n_rows, n_times)
        Noise rows (a noise bank, or the sample's own noise channels first).
    segments, shifts : arrays of int, shape (n_channels,)
        Row and circular shift (samples) of each channel.
    signs : array, shape (n_channels,)
        +1.0 or -1.0.
    means : array, shape (n_channels,)
        Each channel's time mean.
    power : float
        Mean power after removing each channel's time mean (:func:`power`).
    """

    source: np.ndarray
    segments: np.ndarray
    shifts: np.ndarray
    signs: np.ndarray
    means: np.ndarray
    power: float

    def gather(self, n_times: int) -> np.ndarray:
        """Return the noise as an array, shape (n_times, n_channels)."""
        out = np.empty((n_times, len(self.segments)))
        return _gather_segments(self.source, self.segments, self.shifts, self.signs, out)


@njit(cache=True, fastmath=True)
def _clean_eeg(background, waves, topographies):  # pragma: no cover - compiled
    """Clean EEG ``background + (waves.T @ topographies).T``, channels first, its channel means and power.

    Parameters
    ----------
    background : array, shape (n_channels, n_times)
        Background EEG.
    waves : array, shape (n_patches, n_times)
        Each patch's scaled waveform.
    topographies : array, shape (n_patches, n_channels)
        Each patch's EEG per unit waveform.

    Returns
    -------
    clean : array, shape (n_channels, n_times)
    means : array, shape (n_channels,)
        Each channel's time mean.
    power : float
        Mean power after removing each channel's time mean (:func:`power`).
    """
    n_channels, n_times = background.shape
    clean = np.empty((n_channels, n_times))
    means = np.empty(n_channels)
    power_sum = 0.0
    for c in range(n_channels):
        row = clean[c]
        for t in range(n_times):
            row[t] = background[c, t]
        for i in range(waves.shape[0]):
            weight = topographies[i, c]
            for t in range(n_times):
                row[t] += weight * waves[i, t]
        total = 0.0
        for t in range(n_times):
            total += row[t]
        mean = total / n_times
        squares = 0.0
        for t in range(n_times):
            squares += (row[t] - mean) * (row[t] - mean)
        means[c] = mean
        power_sum += squares
    return clean, means, power_sum / (n_channels * n_times)


@njit(cache=True, fastmath=True)
def _mix_and_normalise(
    clean, clean_means, source, segments, shifts, signs, noise_means, scale, out
):  # pragma: no cover
    """:func:`normalise_eeg` of ``clean + scale * noise`` into float32 ``out``, shape (n_times, n_channels).

    ``clean`` (channels first, see :func:`_clean_eeg`) is overwritten; the
    noise is read from its rows as :class:`_SensorNoise` describes.
    """
    n_channels, n_times = clean.shape
    time_means = np.zeros(n_times)
    for c in range(n_channels):
        row = clean[c]
        noise_row = source[segments[c]]
        split = n_times - shifts[c]
        gain = scale * signs[c]
        offset = clean_means[c] + scale * noise_means[c]
        for t in range(split):
            value = row[t] + gain * noise_row[t + shifts[c]] - offset
            row[t] = value
            time_means[t] += value
        for t in range(split, n_times):
            value = row[t] + gain * noise_row[t - split] - offset
            row[t] = value
            time_means[t] += value
    time_means /= n_channels
    largest = np.zeros(n_times)  # per time sample: a max over channels vectorises, one over all does not
    for c in range(n_channels):
        row = clean[c]
        for t in range(n_times):
            value = row[t] - time_means[t]
            row[t] = value
            if abs(value) > largest[t]:
                largest[t] = abs(value)
    inverse = 1.0 / largest.max()
    for t in range(n_times):
        for c in range(n_channels):
            out[t, c] = clean[c, t] * inverse
    return out


def _largest_product(waves: np.ndarray, weight_matrix: np.ndarray) -> float:
    """Largest ``|waves @ weight_matrix|`` without forming the whole product.

    A region in one patch only (a column with one non-zero weight) peaks at
    that patch's largest ``|wave|`` times its weight; only regions shared by
    patches need their time course.
    """
    shared = np.count_nonzero(weight_matrix, axis=0) > 1
    peaks = np.abs(waves).max(axis=0)
    largest = float((peaks[:, None] * weight_matrix[:, ~shared]).max(initial=0.0))
    if shared.any():
        largest = max(largest, float(np.abs(waves @ weight_matrix[:, shared]).max()))
    return largest


def _peak_time(source_waves: np.ndarray, source_weights: np.ndarray) -> int:
    """Time of the largest ``|source_activity(source_waves, source_weights)|``, from the patch maxima.

    A region in one patch only peaks with that patch's |wave| times its
    weight; float32 rounding keeps the order, so the largest weight gives the
    same maxima, bit for bit, as the full product. Shared regions are computed
    in full.
    """
    shared = np.count_nonzero(source_weights, axis=0) > 1
    largest = np.zeros(len(source_waves), np.float32)
    alone = np.where(shared, 0, source_weights).max(axis=1, initial=0)  # (n_patches,); weights are >= 0
    for i in range(source_waves.shape[1]):
        np.maximum(largest, np.abs(source_waves[:, i]) * alone[i], out=largest)
    if shared.any():
        activity = source_activity(source_waves, source_weights[:, shared])
        np.maximum(largest, np.abs(activity).max(axis=1), out=largest)
    return int(np.argmax(largest))


def _windowed_power(eeg: np.ndarray, window: slice) -> float:
    """DeepSIF's source-SNR power: remove each channel's mean over the whole clip, average over the window."""
    centred = eeg - eeg.mean(axis=0)
    return float(np.mean(centred[window] ** 2))


def _windowed_snr(signal: np.ndarray, background: np.ndarray, window: slice) -> float:
    return 10.0 * np.log10(_windowed_power(signal, window) / _windowed_power(background, window))


@njit(cache=True, nogil=True)
def _interpolate_topography(dense, index, vertex_weights, patch, weights):  # pragma: no cover - compiled
    """``vertex_weights``-interpolated rows ``index`` of ``dense[:, patch] @ weights``, one value per channel."""
    n_channels = index.shape[0]
    out = np.zeros(n_channels)
    for c in range(n_channels):
        for j in range(3):
            row = dense[index[c, j]]
            value = 0.0
            for k in range(len(patch)):
                value += row[patch[k]] * weights[k]
            out[c] += vertex_weights[c, j] * value
    return out


@njit(cache=True, nogil=True)
def _interpolate_background(vertices, index, weights):  # pragma: no cover - compiled
    """Background EEG of scalp-vertex activity (n_vertices, n_times) at interpolated electrodes.

    Returns what :func:`_reference_background` returns: the average-referenced
    EEG channels first and its cumulative windowed power.
    """
    n_channels, n_times = index.shape[0], vertices.shape[1]
    eeg = np.empty((n_channels, n_times))
    for c in range(n_channels):
        out, w0, w1, w2 = eeg[c], weights[c, 0], weights[c, 1], weights[c, 2]
        r0, r1, r2 = vertices[index[c, 0]], vertices[index[c, 1]], vertices[index[c, 2]]
        for t in range(n_times):
            out[t] = w0 * r0[t] + w1 * r1[t] + w2 * r2[t]
    for t in range(n_times):
        mean = 0.0
        for c in range(n_channels):
            mean += eeg[c, t]
        mean /= n_channels
        for c in range(n_channels):
            eeg[c, t] -= mean
    channel_mean = np.zeros(n_channels)
    for c in range(n_channels):
        channel_mean[c] = eeg[c].mean()
    cumulative = np.zeros(n_times + 1)
    for t in range(n_times):
        power = 0.0
        for c in range(n_channels):
            value = eeg[c, t] - channel_mean[c]
            power += value * value
        cumulative[t + 1] = cumulative[t] + power / n_channels
    return eeg, cumulative


def _reference_background(projected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average-reference background EEG (n_times, n_channels); channels-first copy and cumulative power."""
    eeg = projected - projected.mean(axis=1, keepdims=True)
    centred = eeg - eeg.mean(axis=0)
    cumulative = np.concatenate([[0.0], np.cumsum(np.mean(centred**2, axis=1))])
    return np.ascontiguousarray(eeg.T), cumulative


__all__ = ["Sample", "SampleGenerator", "SynthesisConfig", "power", "source_activity"]
