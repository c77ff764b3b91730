"""Exceptions that carry a one-line, user-facing message."""

from __future__ import annotations

import numpy as np


class BrainForgeError(ValueError):
    """Bad input or an unusable file, with a message that names the fix.

    The CLI prints the message of this exception as a single line and exits
    with status 2 instead of showing a traceback.
    """


def check_seed(seed, option: str = "seed") -> int:
    """Return ``seed`` as an int, or stop on one line when it is not an integer >= 0.

    NumPy's seed sequences take non-negative integers only; ``option`` names the
    argument or CLI flag in the message.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise BrainForgeError(f"{option} {seed!r}: a seed must be an integer, 0 or more.")
    return int(seed)
