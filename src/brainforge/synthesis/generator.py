"""Labelled synthetic EEG: spike patches over neural-mass background, projected and noised.

:class:`SampleGenerator` draws samples as :class:`~.config.SynthesisConfig`
says and returns :class:`~.sample.Sample`; its compiled array kernels live in
:mod:`._kernels`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._errors import BrainForgeError, check_seed
from ..anatomy.forward_bank import ForwardBank
from ..anatomy.head_model import HeadModel
from ..nmm.library import SpikeLibrary
from ._kernels import (
    _clean_eeg,
    _interpolate_background,
    _interpolate_topography,
    _largest_product,
    _mix_and_normalize,
    _noise_power,
    _peak_time,
    _reference_background,
    _SensorNoise,
)
from .config import SynthesisConfig
from .noise import (
    NoiseBank,
    RealisticNoise,
    noise_gain,
    pink_noise,
    power,
    touch_rows,
    white_noise,
)
from .patches import grow_patch, patch_weights
from .sample import Sample

if TYPE_CHECKING:
    pass

#: Half-width of the window around a spike peak in which the source SNR is measured, samples.
SOURCE_SNR_HALF_WINDOW = 100

#: Largest memory for projected background clips kept by a generator, bytes.
_CLIP_CACHE_BYTES = 512 * 2**20


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
        segment_ms = library.waveforms.shape[1] / self.sfreq * 1000.0
        if round(self.config.max_onset_delay_ms / 1000.0 * self.sfreq) >= library.waveforms.shape[1]:
            raise BrainForgeError(
                f"max_onset_delay_ms (--max-onset-delay-ms) {self.config.max_onset_delay_ms:g} ms would move spikes "
                f"out of the {segment_ms:g}-ms segment; choose less than {segment_ms:g} ms."
            )
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
        self._distance = head.region_distance_mm
        self._adjacency = head.region_adjacency.astype(np.float64).tocsr()
        candidates = np.arange(head.n_regions)
        self._cortical = candidates[~head.region_is_deep]
        self._deep = candidates[head.region_is_deep]
        if self.config.deep_share > 0 and not len(self._deep):
            raise BrainForgeError("deep_share > 0 but the head model has no deep regions.")
        max_k = self.config.n_sources[1]
        share = self.config.deep_share  # centres come from the deep pool with this probability, else the cortical
        available = (len(self._cortical) if share < 1 else 0) + (len(self._deep) if share > 0 else 0)
        if max_k > available:
            raise BrainForgeError(
                f"{max_k} sources asked for, but the head model has only {available} regions to centre them on "
                f"(deep_share {share:g}); ask for fewer sources (--sources)."
            )
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

                connectome = self.library.metadata["connectome"]
                if Path(connectome).suffix and not Path(connectome).is_file():  # a file, not a bundled name
                    raise BrainForgeError(
                        f"The spike library was simulated on the connectome file {connectome}, which is not there "
                        "now (libraries made before 2026-12-08 recorded it relative to the folder `simulate` ran "
                        "in: run from there); put it back, or simulate a library on a connectome at hand."
                    )
                conn = read_connectivity(connectome)
                if conn.n_nodes != n_nodes:
                    raise BrainForgeError("The spike library's connectome file no longer matches the library.")
                region_node = map_regions_to_nodes(conn, self.head.region_centres_mm)
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
        share that memory instead of each making its own (workers started by
        a forkserver, as in distributed runs, receive a copy); samples do not
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
        """Draw ``k`` distinct centres, each from the deep pool with probability ``deep_share``.

        A pool whose regions are all taken gives way to the other (so that a ``deep_share``
        just below 1 with more sources than deep regions does not draw for ever).
        """
        centres: list[int] = []
        taken = {"deep": 0, "cortical": 0}
        while len(centres) < k:
            kind = "deep" if rng.random() < self.config.deep_share else "cortical"
            if taken[kind] == len(self._deep if kind == "deep" else self._cortical):
                kind = "cortical" if kind == "deep" else "deep"
            pool = self._deep if kind == "deep" else self._cortical
            region = int(pool[rng.integers(len(pool))])
            if region not in centres:
                centres.append(region)
                taken[kind] += 1
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
            projected = _single_thread_matmul(self.library.background[clip].astype(float), self._node_leadfield.T)
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
            vertices = np.ascontiguousarray(
                _single_thread_matmul(clip_nodes, self._bank_node_leadfield[conductivity].T).T
            )
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
        rng = np.random.default_rng(check_seed(seed))
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
                self._adjacency, head.region_centres_mm, int(centre), rng,
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
        # channel means and power, then clean + scale * noise normalized as normalize_eeg() (synthesis.normalize)
        # does (each channel's time mean removed, then each time's channel mean, then / max).
        touch_rows(noise.source, noise.segments)
        clean, clean_means, clean_power = _clean_eeg(background_eeg, waves, topographies)
        scale = noise_gain(clean_power, noise.power, rng.uniform(*cfg.sensor_snr_db), cfg.snr_convention)
        if out is None:
            out = np.empty((n_times, len(channels)), np.float32)
        elif out.shape != (n_times, len(channels)) or out.dtype != np.float32:
            raise BrainForgeError(f"out must be a float32 array of shape {(n_times, len(channels))}, got {out.shape}.")
        eeg = _mix_and_normalize(
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
            ch_pos_mm=head.ch_pos_mm[channels],
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
            means, powers = (moment[segments] for moment in bank.moments(kind, n_times))
            means *= signs
            source = bank.segments(kind, n_times)
            noise_power = float(_noise_power(source, segments, shifts, signs, means, powers, n_times))
            return _SensorNoise(source, segments, shifts, signs, means, noise_power)
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


__all__ = ["SOURCE_SNR_HALF_WINDOW", "SampleGenerator"]


@functools.cache
def _blas_controller():
    """Return the BLAS libraries loaded in this process (found once; threadpoolctl's search takes milliseconds)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _single_thread_matmul(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ right`` on one BLAS thread, so the sums come out in one order, bit for bit.

    OpenBLAS splits a product over its threads and adds the parts in another order than one
    thread does (last-bit differences, seen with a 998-node library), and DataLoader workers
    run on one thread: without this, a sample drawn in a worker would differ from the same
    sample drawn in the main process.
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        return left @ right
