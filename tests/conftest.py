"""Shared fixtures: one cache folder per test session, shared head models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DEEPSIF = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepsif"


_OWN_CACHE: list[str] = []  # the cache folder this session made, removed at its end


def pytest_configure(config):
    # Keep the user's cache untouched unless they point the tests at one.
    if "BRAINFORGE_CACHE" not in os.environ:
        import tempfile

        os.environ["BRAINFORGE_CACHE"] = tempfile.mkdtemp(prefix="brainforge-test-cache-")
        _OWN_CACHE.append(os.environ["BRAINFORGE_CACHE"])


def pytest_unconfigure(config):
    # Hundreds of MB (BEMs, leadfields, the spike library, a forward bank): not left in /tmp.
    import shutil

    for folder in _OWN_CACHE:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def head64():
    from brainforge.anatomy import make_head_model

    return make_head_model("1010-64")


@pytest.fixture(scope="session")
def surfaces():
    from brainforge.anatomy.bem import make_template_bem_surfaces

    return make_template_bem_surfaces()


@pytest.fixture(scope="session")
def cortex():
    from brainforge.anatomy import load_fsaverage5_cortex

    return load_fsaverage5_cortex()


@pytest.fixture(scope="session")
def deepsif_dir():
    if not (SHARED_DEEPSIF / "leadfield_75_20k.mat").is_file():
        pytest.skip("DeepSIF reference anatomy not found beside the repository (../shared/data/deepsif)")
    return SHARED_DEEPSIF


def correlation(a, b):
    """Column-wise Pearson correlation after removing the channel mean."""
    import numpy as np

    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    return (a * b).sum(axis=0) / np.linalg.norm(a, axis=0) / np.linalg.norm(b, axis=0)


@pytest.fixture(scope="session")
def spike_library():
    """The default template spike library (tvb76, built once per test session)."""
    from brainforge.nmm import default_spike_library, read_spike_library

    return read_spike_library(default_spike_library())


@pytest.fixture(autouse=True)
def _keep_log_levels():
    """Restore MNE's and BrainForge's log levels after each test (in-process CLI runs set them)."""
    import logging

    import mne

    mne_level, ours = mne.utils.logger.level, logging.getLogger("brainforge").level
    yield
    mne.utils.logger.setLevel(mne_level)
    logging.getLogger("brainforge").setLevel(ours)


@pytest.fixture
def cli_in_process(capsys, monkeypatch):
    """Run ``brainforge ARGS`` through the real entry point (``brainforge.cli.main``) in this process.

    Returns a function of the arguments giving ``(returncode, stdout, stderr)``: the same exit
    status and one-line error output as the installed command, without a new interpreter's
    imports (several seconds each).
    """
    import sys

    from brainforge.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()  # drop what came before
        monkeypatch.setattr(sys, "argv", ["brainforge", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run
