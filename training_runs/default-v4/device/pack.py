"""Pack the three cache entries training reads into a compact archive for the device.

Run here: ``BRAINFORGE_CACHE=... python pack.py data.tar.xz``. The entries are
the ones this checkout's code reads (the template ``1010-64`` head, its default
forward bank and the default spike library), found by running that code with
the cache's lookup recorded, so no cache key is hard-coded. Leadfields (the only
large float arrays) travel as float16 scaled by their max (relative error
< 3e-4, far below the 5-20 dB sensor noise); every other array travels exactly.
``unpack.py`` restores float64 arrays under the same names; ``manifest.json``
in the archive names the head file that ``run.sh`` passes to ``--head``.
"""

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np

HALF = {"scalp_leadfield", "leadfield"}


def cache_entries() -> tuple[Path, dict[str, Path]]:
    """Return the cache folder and the head, forward-bank and spike-library entries training reads."""
    import brainforge.anatomy.forward_bank as forward_bank
    import brainforge.anatomy.head_model as head_model
    from brainforge._cache import get_cache_dir
    from brainforge.anatomy import make_forward_bank, make_head_model
    from brainforge.nmm import default_spike_library

    used: dict[str, Path] = {}

    def recording(module, name):
        original = module.cached

        def cached(path, build, save, load):
            used[name] = Path(path)
            return original(path, build, save, load)

        module.cached = cached

    recording(head_model, "head")
    recording(forward_bank, "forward_bank")
    head = make_head_model("1010-64")
    make_forward_bank(head)
    used["spikes"] = Path(default_spike_library())
    return get_cache_dir(), used


def compact(src: Path) -> bytes:
    """Return the .npz bytes of ``src`` with its leadfields as scaled float16."""
    stored = np.load(src)
    arrays = {}
    for key in stored.files:
        values = stored[key]
        if key in HALF:
            scale = float(np.abs(values).max())
            arrays[key] = (values / scale).astype(np.float16)
            arrays["__scale__" + key] = np.array(scale)
        else:
            arrays[key] = values
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main(out: Path) -> None:
    """Write the archive."""
    cache, used = cache_entries()
    relative = {name: str(path.relative_to(cache)) for name, path in used.items()}
    with tarfile.open(out, "w:xz") as tar:
        for name in ("head", "forward_bank"):
            _add_bytes(tar, relative[name], compact(used[name]))
        tar.add(used["spikes"], relative["spikes"])
        _add_bytes(tar, "manifest.json", json.dumps(relative, indent=1).encode())
    print(json.dumps(relative, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
