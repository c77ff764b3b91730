"""Restore the cache entries packed by ``pack.py`` (each array in its own dtype) into $BRAINFORGE_CACHE.

``BRAINFORGE_CACHE=... python scripts/device/unpack.py data.tar.xz``
"""

import io
import os
import sys
import tarfile
from pathlib import Path

import numpy as np


def main(archive: str) -> None:
    """Unpack ``archive`` into the cache folder."""
    cache = Path(os.environ["BRAINFORGE_CACHE"])
    cache.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:xz") as tar:
        for member in tar.getmembers():
            if not member.name.endswith(".npz"):
                tar.extract(member, cache)
                continue
            stored = np.load(io.BytesIO(tar.extractfile(member).read()))
            arrays = {}
            for key in stored.files:
                if key.startswith(("__scale__", "__dtype__")):
                    continue
                values = stored[key]
                if "__scale__" + key in stored.files:
                    values = values.astype(np.float64) * float(stored["__scale__" + key])
                if "__dtype__" + key in stored.files:
                    values = values.astype(np.dtype(str(stored["__dtype__" + key])))
                arrays[key] = values
            path = cache / member.name
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **arrays)
    print("unpacked", sorted(str(p.relative_to(cache)) for p in cache.glob("*/*")))


if __name__ == "__main__":
    main(sys.argv[1])
