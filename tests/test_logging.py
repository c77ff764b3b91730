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


@pytest.fixture(autouse=True)
def _restore_levels():
    mne_level, ours = mne.utils.logger.level, BRAINFORGE.level
    yield
    mne.utils.logger.setLevel(mne_level)
    BRAINFORGE.setLevel(ours)


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
    finally:
        mne.utils.logger.removeHandler(collect)
    assert any("Preparing the inverse operator" in message for message in collect.messages)
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
