"""Pack the cache entries a ``brainforge train`` command reads into a compact archive for a GPU machine.

Run here, on a full install with a warm cache::

    BRAINFORGE_CACHE=... python scripts/device/pack.py data.tar.xz training_runs/RUN/train_args.txt

It runs the training command of that arguments file (``train.py``'s
:func:`read_options`) for one second of training (into a temporary
folder, on the CPU) with every cache lookup recorded, so the archive holds
exactly the entries this checkout's code reads for those options (head model,
forward bank, spike library, ...) and no cache key is hard-coded. Leadfields
(the largest float arrays) travel as float16 scaled by their largest entry
(errors below 2.5e-4 of it, far below the 5-20 dB sensor noise); outside the
head model, whose arrays feed cache keys, the other float64 arrays of 1,000
values or more (the bank's electrode positions in mm, interpolation weights)
travel as float32 (relative error < 6e-8); integer arrays travel as the
smallest integer type that holds their values (exactly); the rest as it is. ``unpack.py`` restores every array's
dtype under the same names. The device takes at most 64 MiB with the working
tree, so every MB counts. ``manifest.json`` in the archive names the head entry (``"head"``), which the
device passes to ``--head`` so that it need not rebuild the head's inputs, the
``--head`` it stands for (``"head_name"``, which ``run.sh`` writes back into the
run's records, so that ``--resume`` works on a full install), and
the top-level Python modules the run imported (``"modules"``), which ``run.sh``
checks on the device before it trains.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

HALF = {"scalp_leadfield", "leadfield"}
#: float64 arrays at least this large travel as float32; smaller ones (settings, scalars) exactly.
MIN_FLOAT32_SIZE = 1000


def record_training_inputs(train_args: list[str]) -> tuple[Path, list[Path], set[str]]:
    """Run ``brainforge train train_args`` for about a second; return the cache folder, its entries read, the modules.

    The options that decide where and how long it runs (``--out``, ``--max-time``,
    ``--accelerator``, ``--workers``, ``--devices``, and ``--val-samples``, which
    only sizes the validation set) are set here.
    """
    import brainforge._cache as cache_module  # before any module binds ``cached``

    used: list[Path] = []
    original = cache_module.cached

    def cached(path, build, save, load):
        used.append(Path(path))
        return original(path, build, save, load)

    cache_module.cached = cached
    import brainforge.nmm
    import brainforge.nmm.campaign

    original_library = brainforge.nmm.default_spike_library

    def default_spike_library(*args, **kwargs):
        path = original_library(*args, **kwargs)
        used.append(Path(path))
        return path

    # The spike library is a folder the campaign finds by its own key, not a ``cached`` entry.
    brainforge.nmm.default_spike_library = brainforge.nmm.campaign.default_spike_library = default_spike_library
    from brainforge.cli import main

    with tempfile.TemporaryDirectory() as folder:
        sys.argv = ["brainforge", "train", *train_args, "--out", f"{folder}/run", "--max-time", "00:00:00:01",
                    "--val-samples", "64", "--accelerator", "cpu", "--devices", "1", "--workers", "0",
                    "--no-progress"]  # fmt: skip
        try:
            main()
        except SystemExit as stop:
            if stop.code:
                raise
    modules = {name.partition(".")[0] for name in sys.modules}
    return cache_module.get_cache_dir(), list(dict.fromkeys(used)), modules


def compact(src: Path, float32: bool = True) -> bytes:
    """Return the .npz bytes of ``src``, smaller: see the module's docstring for what each array becomes.

    ``float32=False`` keeps every float64 array but the leadfields exact.
    """
    stored = np.load(src)
    arrays = {}
    for key in stored.files:
        values = stored[key]
        if key in HALF:
            scale = float(np.abs(values).max())
            arrays[key] = (values / scale).astype(np.float16)
            arrays["__scale__" + key] = np.array(scale)
            continue
        smaller = values
        if float32 and values.dtype == np.float64 and values.size >= MIN_FLOAT32_SIZE:
            smaller = values.astype(np.float32)
        elif values.dtype.kind in "iu" and values.size:
            small = np.result_type(np.min_scalar_type(values.min()), np.min_scalar_type(values.max()))
            if small.kind in "iu" and small.itemsize < values.itemsize:  # never a float: that would not be exact
                smaller = values.astype(small)
        if smaller.dtype != values.dtype:
            arrays["__dtype__" + key] = np.array(values.dtype.str)
        arrays[key] = smaller
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main(out: Path, args_file: Path) -> None:
    """Write the archive for the training options of ``args_file``."""
    from train import head_name, read_options  # scripts/device/train.py, beside this file

    train_args = read_options(args_file)
    cache, used, modules = record_training_inputs(train_args)
    entries = [path for path in used if path.exists()]
    relative = [str(path.relative_to(cache)) for path in entries]
    heads = [name for name in relative if name.startswith("head/")]
    if len(heads) != 1:
        raise SystemExit(f"expected one head-model entry among the cache entries read, got {heads}")
    with tarfile.open(out, "w:xz") as tar:
        for path, name in zip(entries, relative, strict=True):
            if path.suffix == ".npz":
                # The head's arrays feed the cache keys of what is built from it (the forward bank): exact.
                _add_bytes(tar, name, compact(path, float32=not name.startswith("head/")))
            else:
                tar.add(path, name)
        manifest = {
            "head": heads[0],
            "head_name": head_name(train_args),
            "entries": relative,
            "modules": sorted(modules),
        }
        _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
    print(json.dumps({"head": heads[0], "entries": relative}, indent=1))
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python scripts/device/pack.py ARCHIVE.tar.xz ARGS_FILE")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(Path(sys.argv[1]), Path(sys.argv[2]))
