"""Pack the three cache entries training reads into a compact archive for the device.

Run here: ``python pack.py CACHE_DIR data.tar.xz``. Leadfields (the only large
float arrays) travel as float16 scaled by their max (relative error < 3e-4,
far below the 5-20 dB sensor noise); every other array travels exactly.
``unpack.py`` restores float64 arrays under the same names.
"""

import io
import sys
import tarfile
from pathlib import Path

import numpy as np

HALF = {"scalp_leadfield", "leadfield"}
ENTRIES = ["forward_bank/98d1d7088b859a08ae82c81a.npz", "head/331dd76f9b24538e784cf777.npz"]
SPIKES = "spikes/tvb76-ec97e50eabc37a8441896b5c.zarr"


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


def main(cache: Path, out: Path) -> None:
    """Write the archive."""
    with tarfile.open(out, "w:xz") as tar:
        for rel in ENTRIES:
            data = compact(cache / rel)
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(cache / SPIKES, SPIKES)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
