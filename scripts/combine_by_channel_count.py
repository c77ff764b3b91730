"""Combine a network for dense montages and its low-density fine-tune into one channel-count router.

Usage: python scripts/combine_by_channel_count.py OUT_DIR DENSE_DIR SPARSE_DIR [SPARSE_MAX_CHANNELS]

EEG with at most SPARSE_MAX_CHANNELS channels (default 32) goes to SPARSE_DIR's
network, more to DENSE_DIR's (``brainforge.models.ChannelCountRouter``). Both
must be the same network trained for the same input (name, hyper-parameters,
regions, montage, head model, sampling rate, segment length, crop). The router
is written with ``save_model`` to a new folder; its config keeps DENSE_DIR's
head model, data and training records, which inference reads, and each
member's own records under ``members``.
"""

from __future__ import annotations

import sys


def combine(out_dir: str, dense_dir: str, sparse_dir: str, sparse_max_channels: int = 32) -> None:
    """Write the router of ``dense_dir`` and ``sparse_dir`` to ``out_dir``."""
    from pathlib import Path

    from brainforge import BrainForgeError
    from brainforge.models import combine_by_channel_count, load_model, save_model
    from brainforge.models.io import training_input

    if Path(out_dir).exists():
        raise BrainForgeError(f"{out_dir} exists; give a new folder for the router (the inputs stay as they are).")
    (dense, dense_config), (sparse, sparse_config) = load_model(dense_dir), load_model(sparse_dir)

    if training_input(dense_config) != training_input(sparse_config):
        raise BrainForgeError(
            f"{sparse_dir} was trained for other input (head model, sampling rate, segment or crop) than "
            f"{dense_dir}; fine-tune the sparse member from the dense one on the same head (--init)."
        )
    router = combine_by_channel_count(dense, sparse, sparse_max_channels)
    member_keys = ("training", "montage_handling", "init", "soup_of", "metrics")
    members = {
        role: {"path": str(path), **{k: config[k] for k in member_keys if k in config}}
        for role, path, config in (("dense", dense_dir, dense_config), ("sparse", sparse_dir, sparse_config))
    }
    kept = {"format", "format_version", "brainforge_version", "model", "n_regions", "montage", "metrics"}
    info = {k: v for k, v in dense_config.items() if k not in kept}
    save_model(router, out_dir, info={**info, "members": members})
    print(
        f"{out_dir}: {sparse_dir} for <= {sparse_max_channels} channels, {dense_dir} for more "
        f"({router.n_parameters:,} parameters)"
    )


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        raise SystemExit(__doc__.splitlines()[2])
    from brainforge import BrainForgeError

    if len(sys.argv) == 5 and not sys.argv[4].isdigit():
        raise SystemExit(f"error: SPARSE_MAX_CHANNELS must be a whole number of channels, got {sys.argv[4]!r}.")
    try:
        combine(*sys.argv[1:4], *(int(a) for a in sys.argv[4:]))
    except BrainForgeError as err:
        raise SystemExit(f"error: {err}") from None
