"""On-disk cache: content-addressed entries written atomically.

Every expensive artefact (BEM solution, leadfield, parcellation, whole head
model) is stored under a key that hashes every input that determines it. A
partially written file can never be observed: entries are written to a
temporary name in the same folder, flushed to the disk and renamed into place. An entry that
cannot be read is deleted and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

logger = logging.getLogger("brainforge")

T = TypeVar("T")

CACHE_ENV = "BRAINFORGE_CACHE"


def get_cache_dir() -> Path:
    """Return the cache folder, creating it if needed.

    Returns
    -------
    path : Path
        ``$BRAINFORGE_CACHE`` when set, otherwise the platform's user cache
        folder (``~/.cache/brainforge`` on Linux).
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("brainforge", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _update_hash(hasher: Any, value: Any) -> None:
    """Feed ``value`` into ``hasher`` in a type-aware, order-stable way."""
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        hasher.update(f"nd:{arr.dtype.str}:{arr.shape}".encode())
        hasher.update(arr.tobytes())
    elif isinstance(value, dict):
        hasher.update(b"dict:")
        for key in sorted(value):
            hasher.update(str(key).encode() + b"=")
            _update_hash(hasher, value[key])
    elif isinstance(value, list | tuple):
        hasher.update(f"seq{len(value)}:".encode())
        for item in value:
            _update_hash(hasher, item)
    elif isinstance(value, float):
        hasher.update(f"f:{value!r}".encode())
    else:
        hasher.update(f"{type(value).__name__}:{json.dumps(value, default=str)}".encode())


def hash_inputs(*values: Any) -> str:
    """Hash arrays, numbers, strings and nested containers into a key.

    Parameters
    ----------
    *values
        Everything that determines the cached artefact.

    Returns
    -------
    key : str
        24 hexadecimal characters of a SHA-256 digest.
    """
    hasher = hashlib.sha256()
    for value in values:
        _update_hash(hasher, value)
    return hasher.hexdigest()[:24]


def _fsync(path: Path, directory: bool) -> None:
    """Flush one file's or folder's data to the disk (folders where the system allows it)."""
    if directory:
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    else:  # Windows flushes (FlushFileBuffers) only through a handle open for writing
        flags = os.O_RDWR | getattr(os, "O_BINARY", 0) if os.name == "nt" else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # Windows cannot open a folder; its renames are durable without it
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def durable_replace(source: Path | str, destination: Path | str) -> None:
    """Rename a finished file or folder to ``destination``, durably.

    Every file under ``source`` and every folder in it is flushed to the disk
    first, then :func:`os.replace` renames it, then the folder that holds
    ``destination`` is flushed: after a crash or a power loss, ``destination``
    is either absent or whole, never a name for empty or partial files.
    """
    source, destination = Path(source), Path(destination)
    if source.is_dir():

        def unreadable(error: OSError) -> None:
            raise error

        for folder, _, files in os.walk(source, onerror=unreadable):
            for name in files:
                if not os.path.islink(os.path.join(folder, name)):  # a link's target is not ours to flush
                    _fsync(Path(folder) / name, directory=False)
            _fsync(Path(folder), directory=True)
    else:
        _fsync(source, directory=False)
    os.replace(source, destination)
    _fsync(destination.parent, directory=True)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path that is renamed to ``path`` on success.

    The temporary file lives in the destination folder, so the final
    rename is atomic, and it is flushed to the disk first
    (:func:`durable_replace`). Its name keeps the destination's suffixes
    (MNE checks them). On error the temporary file is removed and ``path`` is
    left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) if path.suffixes else ""
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        durable_replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def cached(
    path: Path,
    build: Callable[[], T],
    save: Callable[[T, Path], None],
    load: Callable[[Path], T],
) -> T:
    """Load ``path`` if it holds a readable entry, otherwise build and save it.

    Parameters
    ----------
    path : Path
        Where the entry lives.
    build : callable
        Computes the artefact.
    save : callable
        ``save(obj, tmp_path)`` writes it; called through :func:`atomic_path`.
    load : callable
        ``load(path)`` reads it back; any exception marks the entry corrupt.

    Returns
    -------
    obj
        The artefact as read back from ``path`` (or as built, if it could
        not be written).
    """
    if path.exists():
        try:
            return load(path)
        except Exception as err:
            logger.warning("Cache entry %s is unreadable (%s); rebuilding it.", path.name, err)
            with contextlib.suppress(OSError):
                path.unlink()
    obj = build()
    try:
        with atomic_path(path) as tmp:
            save(obj, tmp)
    except OSError as err:
        logger.warning("Could not write cache entry %s (%s); continuing without it.", path, err)
        return obj
    # Return what later calls will load, so a fresh build and a cache hit are
    # bit-identical (file formats may store less precision, e.g. FIF float32).
    return load(path)
