"""The output folder of a localization: checked first, written in a hidden temporary folder, renamed when whole.

A run writes into ``.NAME.brainforge-tmp-XXXX`` beside ``--out`` and renames it to
``--out`` only when every file is complete, so the folder is either whole or
absent. The temporary folder holds an owner file with the process id; a
later run into the same parent removes temporary folders whose process has
died (a run killed with ``kill -9``). The finished folder and its files get
the permissions of the user's umask (0755/0644 by default), not the 0700 of
a temporary folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .._cache import durable_replace
from .._errors import BrainForgeError

logger = logging.getLogger("brainforge")

#: Marks a temporary output folder: ``.NAME.brainforge-tmp-XXXX`` (other tools' ``.tmp-`` folders are not ours).
TMP_MARK = ".brainforge-tmp-"
#: File in a temporary output folder naming the process that writes it: ``pid host``.
OWNER_FILE = ".brainforge-owner"
#: A temporary folder without an owner file counts as stale after this long, s.
ORPHAN_AGE_S = 3600.0


def check_out_dir(out_dir: str | Path) -> Path:
    """Check that ``out_dir`` can become a new output folder (absent, or an empty folder)."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        raise BrainForgeError(f"--out {out_dir} is a symbolic link; give the path of a new or empty folder itself.")
    if out_dir.name in ("", ".", ".."):
        out_dir = Path(os.path.abspath(out_dir))  # a/b/.. -> a: a folder with a name, renamed into place at the end
    cwd, resolved = Path.cwd().resolve(), out_dir.resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise BrainForgeError(
            f"--out {out_dir} is the working folder or one that holds it; give a new folder, e.g. --out results."
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise BrainForgeError(f"--out {out_dir} is an existing file; give the path of a new or empty folder.")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise BrainForgeError(f"{out_dir} exists and is not empty; choose another --out.")
    return out_dir


def _owner_alive(folder: Path) -> bool:
    """Whether the process named in a temporary folder's owner file still runs (True when unknown)."""
    owner = folder / OWNER_FILE
    try:
        pid_text, host = owner.read_text().split()
        pid = int(pid_text)
    except FileNotFoundError:
        return time.time() - folder.stat().st_mtime < ORPHAN_AGE_S
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return True  # another machine's run on a shared disk: leave it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_tmp(parent: str | Path) -> list[Path]:
    """Remove temporary output folders in ``parent`` left by killed runs; return what was removed."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    removed = []
    # Also the .NAME.tmp-XXXX folders of versions before the mark, known by their owner file.
    earlier = [f for f in parent.glob(".*.tmp-*") if (f / OWNER_FILE).is_file()]
    for folder in [*parent.glob(f".*{TMP_MARK}*"), *earlier]:
        if folder.is_dir() and not _owner_alive(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            logger.info("Removed %s, left by an interrupted run.", folder)
    return removed


def open_tmp_dir(out_dir: Path) -> Path:
    """Create the temporary folder a run writes into, beside ``out_dir``; fails at once if it cannot write there."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(out_dir.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}{TMP_MARK}", dir=out_dir.parent))
        (tmp / OWNER_FILE).write_text(f"{os.getpid()} {socket.gethostname()}")
    except OSError as err:
        raise BrainForgeError(
            f"Cannot write the output folder {out_dir} ({err.strerror or err}); choose an --out you can write to."
        ) from err
    return tmp


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def commit_tmp_dir(tmp: Path, out_dir: Path) -> Path:
    """Give the finished temporary folder the umask's permissions and rename it to ``out_dir``."""
    mask = _umask()
    (tmp / OWNER_FILE).unlink(missing_ok=True)
    for path in [tmp, *tmp.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)
    if out_dir.exists():
        out_dir.rmdir()  # empty (checked before the run)
    durable_replace(tmp, out_dir)
    return out_dir


class TimecourseWriter:
    """Append region time courses, chunk by chunk, to Parquet (default), CSV, or nowhere.

    Parameters
    ----------
    folder : path
        Folder to write ``region_timecourses.parquet`` (or ``.csv``) into.
    region_names : list of str
        Column names.
    fmt : {"parquet", "csv", "none"}
        File format. Parquet stores float32 columns (one row group per chunk;
        byte-stream-split and zstd, no dictionary, about 0.8 of raw float32)
        and is read by ``pandas.read_parquet``; CSV keeps 5 significant digits
        of the values and the times to the microsecond.
    """

    FORMATS = ("parquet", "csv", "none")

    def __init__(self, folder: Path, region_names: list[str], fmt: str = "parquet", background: bool = False):
        if fmt not in self.FORMATS:
            raise BrainForgeError(f"--timecourses {fmt!r}: choose one of {', '.join(self.FORMATS)}.")
        self.fmt = fmt
        self.names = list(region_names)
        self.path = None if fmt == "none" else Path(folder) / f"region_timecourses.{fmt}"
        self._writer = None
        self.n_rows = 0
        # One worker thread: block i is written while block i + 1 is computed (PyArrow's encoder
        # releases the GIL); at most one block is pending, so memory stays bounded.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="timecourses") if background else None
        self._pending = None

    def write(self, times_s: np.ndarray, region_data: np.ndarray) -> None:
        """Append samples: ``times_s`` (n_times,) and ``region_data`` (n_regions, n_times).

        With ``background=True`` the block is written by the worker thread
        while the caller goes on; the caller must not change the arrays
        afterwards. An error in the worker is raised by the next
        :meth:`write` or by :meth:`close`.
        """
        if self._pool is None:
            self._write(times_s, region_data)
            return
        self._wait()
        self._pending = self._pool.submit(self._write, times_s, region_data)

    def _wait(self) -> None:
        """Wait for the pending block, raising the worker's error if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write(self, times_s: np.ndarray, region_data: np.ndarray) -> None:
        if self.path is None:
            self.n_rows += len(times_s)
            return
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            # Zero-copy columns over one float32 copy of the block (pa.array per row copies each again).
            values = np.ascontiguousarray(region_data, dtype=np.float32)
            n_times = values.shape[1]
            columns = [pa.array(np.round(times_s, 6))] + [
                pa.Array.from_buffers(pa.float32(), n_times, [None, pa.py_buffer(row)]) for row in values
            ]
            table = pa.Table.from_arrays(columns, names=["time_s", *self.names])
            if self._writer is None:
                self._writer = pq.ParquetWriter(
                    self.path, table.schema, compression="zstd", use_dictionary=False, use_byte_stream_split=True
                )
            self._writer.write_table(table)
        else:
            import pandas as pd

            frame = pd.DataFrame(region_data.T, columns=self.names)
            # The times to the microsecond, whatever their size (float_format's 5 digits are for the values).
            frame.insert(0, "time_s", np.char.mod("%.6f", times_s))
            frame.to_csv(self.path, mode="a", header=self.n_rows == 0, index=False, float_format="%.5g")
        self.n_rows += len(times_s)

    def close(self) -> None:
        """Wait for the pending block and finish the file."""
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def describe(self) -> dict:
        """Return what was written (for summary.json)."""
        return {"file": self.path.name if self.path else None, "format": self.fmt, "n_times": self.n_rows}
