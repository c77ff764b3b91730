"""``verbose=None`` the MNE way: the level holds for one call, MNE's warnings reach the user."""

from __future__ import annotations

import logging
import warnings

import mne
import numpy as np
import pytest

from brainforge._errors import BrainForgeError
from brainforge._logging import set_log_level, use_log_level, verbose

BRAINFORGE = logging.getLogger("brainforge")


@verbose
def _levels(*, verbose=None):
    return mne.utils.logger.level, BRAINFORGE.level


class _Estimator:
    def __init__(self, verbose=None):
        self.verbose = verbose

    @verbose
    def fit(self):
        return mne.utils.logger.level, BRAINFORGE.level


def test_verbose_holds_for_the_call_only_and_none_keeps_the_current_level():
    set_log_level("warning")
    assert _levels() == (logging.WARNING, logging.WARNING)
    assert _levels(verbose="debug") == (logging.DEBUG, logging.DEBUG)
    assert _levels(verbose=True) == (logging.INFO, logging.INFO)  # MNE's meaning of True
    assert (mne.utils.logger.level, BRAINFORGE.level) == (logging.WARNING, logging.WARNING)
    # An estimator's constructor parameter, as scikit-learn's and MNE's estimators have it.
    assert _Estimator("error").fit() == (logging.ERROR, logging.ERROR)
    assert _Estimator().fit() == (logging.WARNING, logging.WARNING)
    with use_log_level("info"):
        assert _levels() == (logging.INFO, logging.INFO)
    with pytest.raises(BrainForgeError, match="not a log level"):
        _levels(verbose="loud")
    with pytest.raises(TypeError, match="keyword-only"):
        verbose(lambda verbose=None: None)

    def chunks(*, verbose=None):
        yield 1

    with pytest.raises(TypeError, match="generator"):
        verbose(chunks)


def test_brainforge_messages_reach_the_console_at_the_set_level(capsys):
    set_log_level("info")
    BRAINFORGE.info("epoch 3 done")
    set_log_level("warning")
    BRAINFORGE.info("not shown")
    err = capsys.readouterr().err
    assert "epoch 3 done" in err and "not shown" not in err


def test_quiet_level_keeps_warnings_and_follows_a_stricter_level():
    """Per-block filtering and LCMV run at quiet_level: warnings pass, verbose="error" silences them."""
    from brainforge._logging import quiet_level

    set_log_level("info")
    assert quiet_level() == logging.WARNING
    with use_log_level("error"):
        assert quiet_level() == logging.ERROR


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_solver_messages_follow_verbose(head64):
    from brainforge.inverse import ClassicalSolver

    collect = _Collect()
    mne.utils.logger.addHandler(collect)
    try:
        set_log_level("warning")
        ClassicalSolver("sloreta").fit(head64)
        assert not any("inverse operator" in message for message in collect.messages)
        ClassicalSolver("sloreta", verbose="info").fit(head64)
        assert any("Preparing the inverse operator" in message for message in collect.messages)
        # LCMV runs MNE per segment: at info level its per-call progress messages stay out of the log.
        lcmv = ClassicalSolver("lcmv", verbose="info").fit(head64)
        collect.messages.clear()
        lcmv.apply_regions(np.random.default_rng(0).normal(size=(head64.n_channels, 200)))
        assert collect.messages == []
    finally:
        mne.utils.logger.removeHandler(collect)
    assert mne.utils.logger.level == logging.WARNING  # back after the call


def test_mne_warnings_reach_the_user(tmp_path):
    """MNE warns about a FIF name off its conventions; reading through BrainForge passes the warning on."""
    from brainforge.localization import read_recording

    raw = mne.io.RawArray(np.zeros((2, 100)), mne.create_info(["Cz", "Pz"], 100.0, "eeg"))
    raw.save(tmp_path / "recording_raw.fif")
    (tmp_path / "recording_raw.fif").rename(tmp_path / "recording.fif")
    with pytest.warns(RuntimeWarning, match="naming conventions"):
        read_recording(tmp_path / "recording.fif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_recording(tmp_path / "recording.fif", verbose="error")  # silenced on request only
