"""Why a network looks slower in the benchmark than alone: BLAS threads left spinning by the solver before it.

Usage: BRAINFORGE_CACHE=... python scripts/timing_contention_probe.py TEST_SET [MODEL_DIR] [N]

Fits two instances of MODEL_DIR (default: the bundled model; the same weights,
named A and B) and sLORETA (S) on the 64-channel template and times
``apply_regions`` on the first N (default 60) segments of TEST_SET (a stored
64-channel test set, for example one ``benchmarks/heldout_forward.py`` wrote)
in several orders per segment, as the benchmark interleaves them: A, B, S;
B, A, S; A and B without S; A, B, S with BLAS limited to one thread
(``threadpoolctl``); S, A, B; and A, B, S on one BLAS thread with the CPU
caches flushed before each call (640 MiB written, untimed), as the benchmark's
scoring between calls may leave them. Prints the median ms per call of each
solver (the first 5 segments left out), twice over.
"""

from __future__ import annotations

import sys
import time

import numpy as np

ORDERS = (("ABS", "A, B, sLORETA", None, False), ("BAS", "B, A, sLORETA", None, False),
          ("AB", "A, B (no sLORETA)", None, False), ("ABS", "A, B, sLORETA; BLAS 1 thread", 1, False),
          ("SAB", "sLORETA, A, B", None, False),
          ("ABS", "A, B, sLORETA; BLAS 1; caches flushed", 1, True))  # fmt: skip

#: Bytes written before each call in the orders that flush: more than the caches hold (this machine: 4 MiB L2 per
#: core, 480 MiB L3 as the VM reports it; 64 MiB, beyond L2 only, added 0.35-1.0 ms to the network).
FLUSH_BYTES = 640 * 2**20


def flush_caches(buffer: np.ndarray) -> None:
    """Write ``buffer`` whole, so that the next call finds none of its own data in the CPU caches."""
    buffer += 1.0


def main(test_path: str, model_dir: str = "default", n_segments: int = 60) -> None:
    """Print the median time per call of each solver in each order."""
    from threadpoolctl import threadpool_limits

    from brainforge import set_log_level
    from brainforge.anatomy import make_head_model
    from brainforge.inverse import make_solver
    from brainforge.inverse.solvers import DEFAULT_LAMBDA2
    from brainforge.synthesis.store import read_test_set

    set_log_level("warning")
    test = read_test_set(test_path)
    head = make_head_model("1010-64").pick_channels(list(test.metadata["ch_names"]))
    segments = []
    for i in range(min(n_segments, len(test))):
        eeg = np.asarray(test.eeg[i], float).T
        segments.append(eeg - eeg.mean(axis=0))
    solvers = {
        "A": make_solver(model_dir).fit(head),
        "B": make_solver(model_dir).fit(head),
        "S": make_solver("sloreta", lambda2=DEFAULT_LAMBDA2).fit(head),
    }
    buffer = np.zeros(FLUSH_BYTES // 8)
    for _ in range(2):
        for order, label, blas_threads, flush in ORDERS:
            times: dict = {key: [] for key in order}
            with threadpool_limits(limits=blas_threads, user_api="blas"):
                for eeg in segments:
                    for key in order:
                        if flush:
                            flush_caches(buffer)
                        tic = time.perf_counter()
                        solvers[key].apply_regions(eeg, test.sfreq)
                        times[key].append((time.perf_counter() - tic) * 1e3)
            cells = "  ".join(f"{key}: {np.median(values[5:]):6.2f} ms" for key, values in times.items())
            print(f"{label:32}{cells}", flush=True)


if __name__ == "__main__":
    if not 2 <= len(sys.argv) <= 4:
        raise SystemExit(__doc__.split("\n\n")[1])
    main(sys.argv[1], *(sys.argv[2:3] or ["default"]), *(int(a) for a in sys.argv[3:4]))
