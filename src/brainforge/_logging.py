"""Log levels the MNE way: long public functions take ``verbose=None``.

``verbose`` sets, for the length of one call, both MNE-Python's log level
(through :func:`mne.utils.use_log_level`) and BrainForge's own logger
(``logging.getLogger("brainforge")``). None leaves the levels as they are:
MNE's (``mne.set_log_level`` or the ``MNE_LOGGING_LEVEL`` setting) and
BrainForge's (:func:`set_log_level`). MNE's warnings are never silenced
by BrainForge; ``verbose="error"`` silences them on request.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sys

from ._errors import BrainForgeError

logger = logging.getLogger("brainforge")


class _StderrHandler(logging.StreamHandler):
    """Write to whatever ``sys.stderr`` is at the time (notebooks and test capture replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


if not logger.handlers:  # as MNE does for its own logger: messages at the set level reach the console
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)


def _level(verbose: bool | str | int) -> int:
    """Return the :mod:`logging` level of a ``verbose`` value (MNE's meanings: True is info, False warning)."""
    if isinstance(verbose, bool):
        return logging.INFO if verbose else logging.WARNING
    if isinstance(verbose, str):
        level = logging.getLevelName(verbose.upper())
        if not isinstance(level, int):
            raise BrainForgeError(
                f"verbose={verbose!r} is not a log level; use debug, info, warning, error or critical."
            )
        return level
    return int(verbose)


def set_log_level(verbose: bool | str | int) -> None:
    """Set MNE's and BrainForge's log level for the rest of the session.

    Parameters
    ----------
    verbose : bool | str | int
        ``"debug"``, ``"info"``, ``"warning"``, ``"error"``, ``"critical"``,
        a :mod:`logging` level, True (info) or False (warning).
    """
    import mne

    level = _level(verbose)
    mne.set_log_level(level)
    logger.setLevel(level)


def quiet_level() -> int:
    """Return MNE's current log level, but at least WARNING: for MNE calls repeated per block or sample.

    Their warnings pass (and ``verbose="error"`` still silences them); their
    progress messages, the same at every repetition, do not flood the log.
    """
    import mne

    return max(logging.WARNING, mne.utils.logger.getEffectiveLevel())


@contextlib.contextmanager
def use_log_level(verbose: bool | str | int | None):
    """Hold MNE's and BrainForge's log level at ``verbose`` inside a ``with`` block (None: unchanged)."""
    if verbose is None:
        yield
        return
    from mne.utils import use_log_level as mne_log_level

    level = _level(verbose)
    previous = logger.level
    logger.setLevel(level)
    try:
        with mne_log_level(level):
            yield
    finally:
        logger.setLevel(previous)


def verbose(function):
    """Decorate a function that takes a keyword-only ``verbose=None``, or a method of an object with ``verbose``.

    As MNE's own decorator: an explicit ``verbose=`` argument wins, then the
    object's ``verbose`` attribute (an estimator's constructor parameter);
    None leaves the current levels.
    """
    if inspect.isgeneratorfunction(function):
        raise TypeError(f"{function.__qualname__} is a generator: a call-scoped level would end before its body runs")
    parameters = inspect.signature(function).parameters
    is_method = next(iter(parameters), None) == "self"
    if "verbose" in parameters:
        if parameters["verbose"].kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"{function.__qualname__}: verbose must be keyword-only")
    elif not is_method:
        raise TypeError(f"{function.__qualname__} takes no verbose and is not a method")

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        level = kwargs.get("verbose")
        if level is None and is_method:
            level = getattr(args[0], "verbose", None)
        if level is None:
            return function(*args, **kwargs)
        with use_log_level(level):
            return function(*args, **kwargs)

    return wrapper
