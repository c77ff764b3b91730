"""Test sets whose EEG comes from forward models outside the training bank.

A network scored on its own training head model proves nothing. These forward
models lie outside :func:`~brainforge.anatomy.make_forward_bank`'s defaults
(cap shift up to 20 mm, skull 0.003-0.015 S/m on a grid, the BEM):

- ``shift15`` and ``shift25``: the whole cap moved 15 or 25 mm along the
  scalp towards the nose (MNE's exact forward at the moved electrodes);
- ``skull0.01``: a skull conductivity that is not on the bank's grid;
- ``sphere``: a 3-shell sphere instead of the BEM.

and, on request (``forwards=``), ``lower25``: the whole cap 25 mm lower on the
head (moved down the vertical axis, then back onto the scalp), beyond the
vertical range of any bank trained so far (``max_vertical_shift_mm`` up to 20).

Every solver is then fitted on the standard template head, as a user would.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

#: Held-out forward models: name -> options of :func:`~brainforge.anatomy.make_head_model`.
HELDOUT_FORWARDS = {
    "shift15": {"cap_shift_mm": (0.0, 15.0)},
    "shift25": {"cap_shift_mm": (0.0, 25.0)},
    "skull0.01": {"conductivity": (0.3, 0.01, 0.3)},
    "sphere": {"conductor": "sphere"},
    "lower25": {"cap_vertical_shift_mm": -25.0},
}

#: The sets written when none are named: the first four (every held-out result before ``lower25`` existed).
DEFAULT_HELDOUT_FORWARDS = ("shift15", "shift25", "skull0.01", "sphere")


def write_heldout_test_sets(
    out_dir: str | Path,
    n_samples: int,
    *,
    seed: int = 2026,
    n_sources: tuple[int, int] = (1, 2),
    sensor_snr_db: tuple[float, float] = (5.0, 20.0),
    deep_share: float = 0.15,
    forwards: Sequence[str] | None = None,
    montage: str = "1010-64",
    n_regions: int = 1000,
) -> list[Path]:
    """Write (or reuse) one stored test set per held-out forward model.

    Parameters
    ----------
    out_dir : path
        Folder of the test sets (``NAME.zarr``); sets already there are reused.
    n_samples : int
        Samples per forward model.
    seed : int
        Seed of the first set; the k-th set uses ``seed + k``.
    n_sources : (int, int)
        Fewest and most patches per sample.
    sensor_snr_db : (float, float)
        Sensor SNR range, dB (power).
    deep_share : float
        Share of patches centred on deep regions.
    forwards : list of str | None
        Names from :data:`HELDOUT_FORWARDS` (default:
        :data:`DEFAULT_HELDOUT_FORWARDS`); the k-th entry of
        :data:`HELDOUT_FORWARDS` always uses ``seed + k``.
    montage : str
        Template montage of the head models.
    n_regions : int
        Cortical regions of the head models (those of the networks to score).

    Returns
    -------
    paths : list of Path
    """
    from .._errors import BrainForgeError
    from ..anatomy import make_head_model
    from ..nmm import default_spike_library, read_spike_library
    from ..synthesis import SampleGenerator, SynthesisConfig
    from ..synthesis.store import write_test_set

    names = list(DEFAULT_HELDOUT_FORWARDS) if forwards is None else list(forwards)
    unknown = [name for name in names if name not in HELDOUT_FORWARDS]
    if unknown:
        raise BrainForgeError(f"Unknown held-out forward model {unknown}; choose from {', '.join(HELDOUT_FORWARDS)}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    library = None
    config = SynthesisConfig(n_sources=n_sources, sensor_snr_db=sensor_snr_db, deep_share=deep_share)
    paths = []
    for name in names:
        offset = list(HELDOUT_FORWARDS).index(name)
        options = HELDOUT_FORWARDS[name]
        path = out_dir / f"{name}.zarr"
        if path.exists():
            _check_heldout_reuse(path, n_samples, seed + offset, config, options, montage, n_regions)
        else:
            library = library or read_spike_library(default_spike_library(progress=False))
            head = make_head_model(montage, n_regions=n_regions, **options)
            generator = SampleGenerator(head, library, config)
            description = {"forward_mismatch": options}
            write_test_set(generator, n_samples, path, seed=seed + offset, description=description, progress=False)
        paths.append(path)
    return paths


def _check_heldout_reuse(
    path: Path, n_samples: int, seed: int, config, forward_mismatch: dict, montage: str, n_regions: int = 1000
) -> None:
    """Refuse to reuse a stored held-out set drawn with other settings than those asked for.

    Compares the sample count, the set's seed, the forward model's changes, the synthesis
    settings the sets vary (sources per sample, SNR range, deep share), the head model's
    cortical regions and, for a named 10-10 montage, the channels.
    """
    from .._errors import BrainForgeError
    from ..synthesis.store import read_test_set

    stored = (read_test_set(path).metadata.get("head_config") or {}).get("n_regions", 1000)
    if stored != n_regions:
        raise BrainForgeError(
            f"{path} holds a held-out set on {stored} cortical regions, not {n_regions}; delete it (or choose another "
            "folder) to draw it again."
        )
    from dataclasses import asdict

    from ..anatomy import CHANNEL_SUBSETS
    from ..synthesis.store import check_test_set_reuse

    varied = ("n_sources", "sensor_snr_db", "deep_share")
    check_test_set_reuse(
        path, n_samples=n_samples, seed=seed,
        synthesis={key: value for key, value in asdict(config).items() if key in varied},
        metadata={"forward_mismatch": forward_mismatch}, ch_names=CHANNEL_SUBSETS.get(montage),
    )  # fmt: skip
