"""Labelled synthetic EEG: spike patches over neural-mass background, projected and noised."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._errors import BrainForgeError
from ..anatomy.head_model import HeadModel
from ..nmm.library import SpikeLibrary
from .noise import NOISE_TYPES, RealisticNoise, noise_gain, pink_noise, power, white_noise
from .patches import grow_patch, patch_weights

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
    n_channels : (int, int) | None
        Draw a random subset of this many channels of the head model's
        montage per sample; None keeps every channel.
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
    n_channels: tuple[int, int] | None = None

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
        if self.n_channels is not None and self.n_channels[0] < 8:
            raise BrainForgeError("n_channels must keep at least 8 channels.")


@dataclass
class Sample:
    """One labelled sample.

    Attributes
    ----------
    eeg : array, shape (n_times, n_channels)
        Normalised EEG (time mean, then channel mean removed; divided by the max |value|), float32.
    source_regions : array of int, shape (n_active,)
        The regions of the patches, sorted.
    source_values : array, shape (n_times, n_active)
        Their activity, divided by the max |value| over all regions, float32.
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
    parts : dict | None
        With ``keep_parts=True``: the un-normalised ``clean`` EEG, ``noise``,
        ``background_eeg`` and each patch's ``patch_eeg``, to check SNRs.
    """

    eeg: np.ndarray
    source_regions: np.ndarray
    source_values: np.ndarray
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
    parts: dict | None = None

    @property
    def sources(self) -> np.ndarray:
        """Dense target, shape (n_times, n_regions), zero outside the patches."""
        dense = np.zeros((len(self.source_values), len(self.active)), np.float32)
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
    """

    def __init__(
        self,
        head: HeadModel,
        library: SpikeLibrary,
        config: SynthesisConfig | None = None,
        *,
        region_node: np.ndarray | None = None,
        realistic_noise: RealisticNoise | None = None,
    ):
        self.head = head
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

    # ------------------------------------------------------------------ drawing
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
        eeg : array, shape (n_times, n_channels)
            The clip's node activity projected through the average-referenced leadfield rows.
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
        eeg = projected if full else projected[:, channels]
        eeg = eeg - eeg.mean(axis=1, keepdims=True)
        centred = eeg - eeg.mean(axis=0)
        cumulative = np.concatenate([[0.0], np.cumsum(np.mean(centred**2, axis=1))])
        if full and self._cache_clips:
            self._full_montage[clip] = (eeg, cumulative)
        return eeg, cumulative

    def sample(self, seed: int, *, keep_parts: bool = False) -> Sample:
        """Draw the sample of ``seed`` (the same seed gives the same sample, bit for bit).

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
        background_eeg, background_cumulative = self._background(clip, channels)
        n_times = background_eeg.shape[0]
        k = int(rng.integers(cfg.n_sources[0], cfg.n_sources[1] + 1))
        centres = self._draw_centres(k, rng)
        # Without overlap, a patch may take neither another patch nor another centre.
        taken = np.zeros(head.n_regions, bool)
        if not cfg.overlap:
            taken[centres] = True
        patches, onsets, snrs, windows = [], np.zeros(k, np.int64), np.zeros(k), []
        waves = np.zeros((n_times, k))  # each patch's scaled waveform
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
            topography = self._region_leadfield[:, patch] @ weights
            topography = topography[channels] if len(channels) < head.n_channels else topography
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
            waves[:, i] = gain * wave
            topographies[i] = topography
            patches.append(patch)
            patch_weights_.append(weights)
            windows.append(window)
        clean = background_eeg + waves @ topographies
        noise_type = cfg.noise_types[int(rng.integers(len(cfg.noise_types)))]
        names = [head.ch_names[c] for c in channels]
        noise = self._noise(noise_type, names, n_times, rng)
        # power() and normalise_eeg() share their first step (each channel's time mean
        # removed), so both powers and the normalised EEG come from the centred parts.
        clean_centred, noise_centred = clean - clean.mean(axis=0), noise - noise.mean(axis=0)
        clean_power, noise_power = float(np.mean(clean_centred**2)), float(np.mean(noise_centred**2))
        scale = noise_gain(clean_power, noise_power, rng.uniform(*cfg.sensor_snr_db), cfg.snr_convention)
        eeg = _normalise_time_centred(clean_centred + scale * noise_centred)  # normalise_eeg(clean + scale * noise)
        # Targets: only patch regions are non-zero, so build them on those columns alone:
        # (time x patches) waveforms times a (patches x regions) weight matrix.
        regions = np.unique(np.concatenate(patches))
        weight_matrix = np.zeros((k, len(regions)))
        for i, (patch, weights) in enumerate(zip(patches, patch_weights_, strict=True)):
            weight_matrix[i, np.searchsorted(regions, patch)] += weights
        compact = waves @ weight_matrix
        active = np.zeros(head.n_regions, bool)
        active[regions] = True
        parts = None
        if keep_parts:
            patch_eegs = [(np.outer(waves[:, i], topographies[i]), windows[i]) for i in range(k)]
            parts = {"clean": clean, "noise": scale * noise, "background_eeg": background_eeg, "patch_eeg": patch_eegs}
        return Sample(
            eeg=eeg,
            source_regions=regions,
            source_values=(compact / np.abs(compact).max()).astype(np.float32),
            active=active,
            centres=centres,
            patches=patches,
            source_snr_db=snrs,
            sensor_snr_db=float(10.0 * np.log10(clean_power / (noise_power * scale**2))),
            noise_type=noise_type,
            onsets=onsets,
            ch_names=names,
            ch_pos=head.ch_pos[channels],
            seed=int(seed),
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

    def _noise(self, kind: str, names: list[str], n_times: int, rng: np.random.Generator) -> np.ndarray:
        if kind == "white":
            return white_noise(n_times, len(names), rng)
        if kind == "pink":
            return pink_noise(n_times, len(names), rng)
        return self.realistic_noise.draw(names, n_times, rng)


def _windowed_power(eeg: np.ndarray, window: slice) -> float:
    """DeepSIF's source-SNR power: remove each channel's mean over the whole clip, average over the window."""
    centred = eeg - eeg.mean(axis=0)
    return float(np.mean(centred[window] ** 2))


def _windowed_snr(signal: np.ndarray, background: np.ndarray, window: slice) -> float:
    return 10.0 * np.log10(_windowed_power(signal, window) / _windowed_power(background, window))


def normalise_eeg(eeg: np.ndarray) -> np.ndarray:
    """DeepSIF's normalisation: remove the mean over time, then over channels; divide by the max |value|."""
    return _normalise_time_centred(eeg - eeg.mean(axis=0))


def _normalise_time_centred(eeg: np.ndarray) -> np.ndarray:
    """:func:`normalise_eeg` of EEG whose time mean is already removed (``eeg`` is overwritten)."""
    eeg -= eeg.mean(axis=1, keepdims=True)
    eeg /= np.abs(eeg).max()
    return eeg.astype(np.float32)


__all__ = ["Sample", "SampleGenerator", "SynthesisConfig", "normalise_eeg", "power"]
