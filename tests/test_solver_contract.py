"""One contract for every solver, classical or learned: the same battery runs over all of them.

``__init__`` stores parameters; ``fit(head)`` sets underscore-suffixed state; ``apply`` before
``fit`` is one line; ``apply`` returns an MNE source estimate whose region means are
``apply_regions``'s time courses; linearity holds where the method is linear (MNE's minimum-norm family) and
positive homogeneity everywhere; options are honoured, through the constructor and set_params
alike; a classical solver's forward is the head model's leadfield and a network's montage is
the head model's channels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainforge._errors import BrainForgeError
from brainforge.inverse import CLASSICAL_SOLVERS, make_solver

NETWORKS = {
    "gru": {"dense_units": 20, "gru_units": 8},
    "cnn_transformer": {"grid_size": 16, "conv_channels": (4,), "d_model": 32, "n_heads": 2, "n_layers": 1},
}
SOLVERS = [*CLASSICAL_SOLVERS, *NETWORKS]
LINEAR = ("mne", "wmne", "dspm", "sloreta", "eloreta")
#: An option per solver that must change its estimate.
OPTIONS = {name: {"lambda2": 1.0 / 900.0} for name in LINEAR} | {"lcmv": {"reg": 0.5}}
OPTIONS |= {name: {"overlap": 0.5} for name in NETWORKS}
N_TIMES = 1200  # more than two 500-sample network windows at either overlap


@pytest.fixture(scope="module")
def head100(head64):
    from brainforge.anatomy import make_head_model

    return make_head_model("1010-64", n_regions=100)


@pytest.fixture(scope="module")
def folders(head100, tmp_path_factory):
    """Small untrained networks on head100, saved as model folders."""
    from brainforge.models import build_model, save_model
    from brainforge.topomap import Montage

    root = tmp_path_factory.mktemp("contract")
    montage = Montage.from_head_model(head100)
    torch.manual_seed(0)
    return {
        name: save_model(build_model(name, head100.n_regions, montage, **params), root / name)
        for name, params in NETWORKS.items()
    }


def _make(name: str, folders: dict, **options):
    return make_solver(str(folders[name]) if name in folders else name, **options)


@pytest.fixture(scope="module")
def fitted(head100, folders):
    return {name: _make(name, folders).fit(head100) for name in SOLVERS}


def _eeg(head, seed: int = 0) -> np.ndarray:
    """Two dipoles with spike-like waveforms plus 5 % sensor noise, (n_channels, N_TIMES)."""
    rng = np.random.default_rng(seed)
    times = np.arange(N_TIMES) / 500.0
    waves = np.stack([np.exp(-0.5 * ((times - t) / 0.02) ** 2) for t in rng.uniform(0.2, 2.2, 2)])
    eeg = head.leadfield[:, rng.choice(head.n_sources, 2, replace=False)] @ waves
    return eeg + 0.05 * np.abs(eeg).max() * rng.standard_normal(eeg.shape)


def _fitted_state(solver) -> list[str]:
    return sorted(name for name in vars(solver) if name.endswith("_") and not name.startswith("_"))


@pytest.mark.parametrize("name", SOLVERS)
def test_init_stores_parameters_only_and_apply_before_fit_is_one_line(name, folders):
    solver = _make(name, folders)
    assert _fitted_state(solver) == []  # nothing fitted, no weights loaded
    params = solver.get_params()
    assert type(solver)(**params).get_params() == params  # an unfitted copy, as sklearn.clone makes
    with pytest.raises(BrainForgeError, match=r"Call fit\(head\) before apply"):
        solver.apply_regions(np.zeros((64, 10)))


@pytest.mark.parametrize("name", SOLVERS)
def test_fit_sets_underscored_state_and_apply_gives_region_time_courses(name, fitted, head100):
    solver = fitted[name]
    assert "n_channels_" in _fitted_state(solver) and solver.n_channels_ == head100.n_channels
    eeg = _eeg(head100)
    activity = solver.apply_regions(eeg)
    assert activity.data.shape == (head100.n_regions, N_TIMES) and np.isfinite(activity.data).all()
    assert np.abs(activity.data).max() > 0
    with pytest.raises(BrainForgeError, match="Transpose"):
        solver.apply_regions(eeg.T)


@pytest.mark.parametrize("name", SOLVERS)
def test_apply_returns_an_mne_source_estimate_that_holds_the_region_time_courses(name, fitted, head100, head64):
    import mne

    from brainforge.inverse import region_mean_matrix

    solver = fitted[name]
    eeg = _eeg(head100)
    stc = solver.apply(eeg, tmin=-0.5)
    regions = solver.apply_regions(eeg).data
    deep = head100.n_deep_regions > 0
    assert isinstance(stc, mne.MixedSourceEstimate if deep else mne.SourceEstimate)
    assert stc.subject == "fsaverage" and stc.data.shape == (head100.n_sources, N_TIMES)
    assert stc.tmin == -0.5 and np.isclose(stc.tstep, 1 / 500)
    assert [len(v) for v in stc.vertices][:2] == [
        head100.n_left_sources,
        head100.n_cortical_sources - head100.n_left_sources,
    ]
    means = region_mean_matrix(head100.source_region, head100.n_regions) @ stc.data
    np.testing.assert_allclose(means, regions, rtol=0, atol=1e-6 * np.abs(regions).max())
    if name in LINEAR:  # a dipole-level estimate of its own, not the region means spread over dipoles
        assert not np.allclose(stc.data, regions[head100.source_region])
    with pytest.raises(BrainForgeError, match="pass the head model the solver was fitted on"):
        solver.apply_regions(eeg).to_source_estimate(head64)  # 1014 regions, not the fitted head's 114


@pytest.mark.parametrize("name", SOLVERS)
def test_linear_where_the_method_is_and_homogeneous_everywhere(name, fitted, head100):
    solver = fitted[name]
    x, y = _eeg(head100, seed=1), _eeg(head100, seed=2)
    at_x, at_y = solver.apply_regions(x).data, solver.apply_regions(y).data
    scale = np.abs(at_x).max()
    # Positive homogeneity: twice the EEG, twice the estimate (networks normalize and scale back,
    # LCMV's filter does not change when its data covariance is scaled).
    np.testing.assert_allclose(solver.apply_regions(3.7 * x).data, 3.7 * at_x, rtol=0, atol=1e-4 * 3.7 * scale)
    combined = solver.apply_regions(x + 2.0 * y).data
    if name in LINEAR:
        np.testing.assert_allclose(combined, at_x + 2.0 * at_y, rtol=0, atol=1e-9 * scale)
    else:  # LCMV's covariance and a network's per-window normalization depend on the data
        assert not np.allclose(combined, at_x + 2.0 * at_y, rtol=0, atol=1e-3 * scale)


@pytest.mark.parametrize("name", SOLVERS)
def test_options_are_honoured_through_init_and_set_params(name, fitted, folders, head100):
    option = OPTIONS[name]
    eeg = _eeg(head100)
    default = fitted[name].apply_regions(eeg).data
    built = _make(name, folders, **option).fit(head100).apply_regions(eeg).data
    reset = _make(name, folders).set_params(**option).fit(head100).apply_regions(eeg).data
    np.testing.assert_array_equal(built, reset)
    assert not np.allclose(built, default, rtol=1e-3, atol=0)
    if name in NETWORKS:  # batching is arithmetic only: one window per pass gives the same estimate
        one = _make(name, folders, batch_size=1).fit(head100).apply_regions(eeg).data
        np.testing.assert_allclose(one, default, rtol=1e-5, atol=1e-6 * np.abs(default).max())


@pytest.mark.parametrize("name", SOLVERS)
def test_forward_is_the_head_models_leadfield(name, fitted, head100):
    """A classical solver's MNE forward carries the head model's leadfield; a network takes its channels."""
    import mne

    solver = fitted[name]
    if name in NETWORKS:
        assert solver.montage_.ch_names == tuple(head100.ch_names)
        np.testing.assert_array_equal(solver.montage_.ch_pos_mm, head100.ch_pos_mm)
        return
    fixed = mne.convert_forward_solution(solver.forward_, surf_ori=True, force_fixed=True, verbose="error")
    scale = np.abs(head100.leadfield).max()
    np.testing.assert_allclose(fixed["sol"]["data"], head100.leadfield, rtol=0, atol=1e-6 * scale)  # float32
    assert fixed["sol"]["row_names"] == list(head100.ch_names)
