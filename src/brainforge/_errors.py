"""Exceptions that carry a one-line, user-facing message."""

from __future__ import annotations


class BrainForgeError(ValueError):
    """Bad input or an unusable file, with a message that names the fix.

    The CLI prints the message of this exception as a single line and exits
    with status 2 instead of showing a traceback.
    """
