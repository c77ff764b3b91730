"""Fork while threads started outside Python enter it, and count the children that hang (CPython gh-112275).

A thread created by C code (here with ``pthread_create`` through ctypes, as
C++ libraries start theirs) that calls into Python makes and deletes a Python
thread state each time, under the interpreter's thread-state lock. A
``fork`` in that moment copies the lock held into the child, which then waits
for it forever in ``PyOS_AfterFork_Child`` before running any Python code.
On 2026-12-07 (two cores, 6,000 forks each): 14 children hung on Python
3.11.7, none on 3.12.1 or 3.13.0. This is why DataLoader workers of a
distributed run start from a forkserver
(``brainforge.synthesis.dataset.worker_start_method``).

Run: ``python scripts/fork_hang_probe.py [--forks 3000]``. Prints the forks
made and the children that had not exited after 2 s (killed then).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time
import warnings


def _churn(stop: threading.Event) -> None:
    """Start C threads, one after another, each of which enters Python once."""
    libc = ctypes.CDLL(None)
    callback = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(lambda arg: None)
    while not stop.is_set():
        thread_id = ctypes.c_ulong()
        libc.pthread_create(ctypes.byref(thread_id), None, callback, None)
        libc.pthread_join(thread_id, None)


def _child_exits(pid: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for child ``pid``; kill it and return False if it has not exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return True
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return False


def main() -> None:
    """Fork ``--forks`` times beside ``--threads`` churning C threads; print how many children hung."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forks", type=int, default=3000, help="forks to make (default 3000)")
    parser.add_argument("--threads", type=int, default=2, help="threads entering Python meanwhile (default 2)")
    args = parser.parse_args()
    stop = threading.Event()
    for _ in range(args.threads):
        threading.Thread(target=_churn, args=(stop,), daemon=True).start()
    hung = 0
    for _ in range(args.forks):
        with warnings.catch_warnings():  # Python >= 3.12 warns of forking with threads: the point here
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            os._exit(0)
        hung += not _child_exits(pid, timeout_s=2.0)
    stop.set()
    print(f"Python {sys.version.split()[0]}: {args.forks} forks, {hung} child(ren) hung")


if __name__ == "__main__":
    main()
