"""What a process has used: its own peak memory, for benchmarks and the slow tests."""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_gb() -> float:
    """Return this process's peak resident memory, GiB, counting only its own program.

    On Linux this is ``VmHWM`` from ``/proc/self/status``, which starts again
    at ``exec``. ``getrusage``'s ``ru_maxrss`` (and ``wait4``'s) also keeps
    the high-water mark of the forked copy of the parent before ``exec``: a
    child of a 1.7 GB process reports at least 1.7 GB whatever it uses.
    Elsewhere ``ru_maxrss`` is the best there is (bytes on macOS, KiB on Linux).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**3 if sys.platform == "darwin" else peak / 1024**2
