"""The fast engine against TVB itself (the reference) on tvb-data's 76-region connectome."""

import numpy as np
import pytest

from brainforge import BrainForgeError
from brainforge.anatomy import read_connectivity
from brainforge.nmm.engine import FastJansenRit
from brainforge.nmm.model import JansenRitParams, check_run, random_initial_history
from brainforge.nmm.tvb_backend import history_length, simulate_tvb

pytest.importorskip("tvb.simulator")


@pytest.fixture(scope="module")
def conn76():
    return read_connectivity("tvb76")


def _tvb(conn, stimulated, mu, factor, duration_ms, **kwargs):
    return np.concatenate(list(simulate_tvb(conn, stimulated, mu, factor, duration_ms, **kwargs)))


@pytest.mark.parametrize("dt_ms", [1.0, 0.5])
def test_noise_free_trajectories_match_tvb(conn76, dt_ms):
    engine = FastJansenRit(conn76, dt_ms)
    assert engine.n_history == history_length(conn76, JansenRitParams(), dt_ms)
    history = random_initial_history(engine.n_history, conn76.n_nodes, np.random.default_rng(7))
    duration_ms = 2000.0
    reference = _tvb(conn76, 5, 0.087, 1.0, duration_ms, dt_ms=dt_ms, initial_history=history, noise=False)
    fast = np.concatenate(
        list(
            engine.simulate(
                [5], [0.087], [1.0], duration_ms, initial_history=history[..., None], noise=False, dtype=np.float64
            )
        )
    )[..., 0]
    assert fast.shape == reference.shape == (int(duration_ms / dt_ms), 76)
    relative = np.abs(fast - reference).max() / np.abs(reference).max()
    print(f"dt {dt_ms} ms: max relative difference to TVB over {duration_ms:g} ms: {relative:.1e}")
    assert relative <= 1e-9


def _statistics(runs, stimulated, dt_ms):
    """Per-run regional means and stds, and the stimulated region's peaks above 10 mV, after 1 s."""
    from scipy.signal import find_peaks

    skip = int(1000 / dt_ms)
    means = np.array([r[skip:].mean(axis=0) for r in runs])
    stds = np.array([r[skip:].std(axis=0) for r in runs])
    n_peaks, waveforms = 0, []
    half = int(100 / dt_ms)
    for r in runs:
        x = r[skip:, stimulated]
        peaks = find_peaks(x, height=10.0, distance=int(100 / dt_ms))[0]
        peaks = peaks[(peaks >= half) & (peaks < len(x) - half)]
        n_peaks += len(peaks)
        waveforms += [x[p - half : p + half] for p in peaks]
    seconds = sum(len(r) - skip for r in runs) * dt_ms / 1000
    # Peaks above 10 mV per second, per run and region.
    distance = int(100 / dt_ms)
    rates = np.array(
        [[len(find_peaks(r[skip:, j], height=10.0, distance=distance)[0]) for j in range(r.shape[1])] for r in runs]
    ) / ((len(runs[0]) - skip) * dt_ms / 1000)
    return means, stds, n_peaks / seconds, np.mean(waveforms, axis=0), rates


def test_noisy_statistics_match_tvb(conn76):
    """With noise the paths differ; regional statistics and spikes must not.

    Six 10-s runs per engine (different seeds). Regional means and every
    region's spike rate are compared with two-sample z-scores (some regions
    switch between states slowly, so their run means scatter widely);
    standard deviations, the spike rate and the mean spike waveform of the
    stimulated region with relative bounds.
    """
    dt_ms, duration_ms, n_runs, stimulated = 1.0, 10000.0, 6, 5
    tvb_runs = [_tvb(conn76, stimulated, 0.087, 1.0, duration_ms, dt_ms=dt_ms, seed=s) for s in range(n_runs)]
    engine = FastJansenRit(conn76, dt_ms)
    fast = np.concatenate(
        list(
            engine.simulate([stimulated] * n_runs, [0.087] * n_runs, [1.0] * n_runs, duration_ms, seeds=range(100, 106))
        )
    )
    fast_runs = [fast[:, :, k].astype(float) for k in range(n_runs)]
    m_tvb, s_tvb, rate_tvb, wave_tvb, rates_tvb = _statistics(tvb_runs, stimulated, dt_ms)
    m_fast, s_fast, rate_fast, wave_fast, rates_fast = _statistics(fast_runs, stimulated, dt_ms)
    z = (m_tvb.mean(0) - m_fast.mean(0)) / np.sqrt((m_tvb.var(0) + m_fast.var(0)) / n_runs + 1e-12)
    std_rel = np.abs(s_tvb.mean(0) - s_fast.mean(0)) / s_tvb.mean(0)
    print(
        f"regional means: median |z| {np.median(np.abs(z)):.2f}, max {np.abs(z).max():.2f}; "
        f"stds: mean relative difference {std_rel.mean():.3f}, max {std_rel.max():.3f}; "
        f"spike rate (peaks > 10 mV): TVB {rate_tvb:.2f}/s, fast {rate_fast:.2f}/s"
    )
    assert np.median(np.abs(z)) < 1.5 and np.abs(z).max() < 5
    # Per-region spike rates (peaks above 10 mV) of every region.
    z_rates = (rates_tvb.mean(0) - rates_fast.mean(0)) / np.sqrt(
        (rates_tvb.var(0) + rates_fast.var(0)) / n_runs + 1e-12
    )
    print(
        f"per-region spike rates: correlation {np.corrcoef(rates_tvb.mean(0), rates_fast.mean(0))[0, 1]:.3f}, "
        f"median |z| {np.median(np.abs(z_rates)):.2f}, max {np.abs(z_rates).max():.2f}"
    )
    assert np.corrcoef(rates_tvb.mean(0), rates_fast.mean(0))[0, 1] > 0.9
    assert np.median(np.abs(z_rates)) < 1.5 and np.abs(z_rates).max() < 5
    assert std_rel.mean() < 0.07 and std_rel.max() < 0.25
    assert rate_tvb > 1.0
    assert abs(rate_fast - rate_tvb) / rate_tvb < 0.15
    assert np.corrcoef(wave_tvb, wave_fast)[0, 1] > 0.98
    assert abs(wave_fast.max() - wave_tvb.max()) / wave_tvb.max() < 0.05


def test_same_seed_same_output_whatever_the_batch(conn76):
    engine = FastJansenRit(conn76, 1.0, block=2)
    alone = np.concatenate(list(engine.simulate([3], [0.08], [1.7], 300.0, seeds=[11])))[..., 0]
    batch = np.concatenate(
        list(engine.simulate([1, 3, 9], [0.087, 0.08, 0.083], [1, 1.7, 1.5], 300.0, seeds=[5, 11, 6]))
    )
    np.testing.assert_array_equal(alone, batch[..., 1])
    again = np.concatenate(list(engine.simulate([3], [0.08], [1.7], 300.0, seeds=[11])))[..., 0]
    np.testing.assert_array_equal(alone, again)
    other = np.concatenate(list(engine.simulate([3], [0.08], [1.7], 300.0, seeds=[12])))[..., 0]
    assert not np.array_equal(alone, other)


def test_chunking_does_not_change_the_output(conn76):
    engine = FastJansenRit(conn76, 1.0)
    whole = np.concatenate(list(engine.simulate([3, 4], [0.08] * 2, [1.0] * 2, 700.0, seeds=[1, 2], chunk_steps=700)))
    pieces = np.concatenate(list(engine.simulate([3, 4], [0.08] * 2, [1.0] * 2, 700.0, seeds=[1, 2], chunk_steps=123)))
    np.testing.assert_array_equal(whole, pieces)


def test_bad_parameters_fail_before_work(conn76):
    with pytest.raises(BrainForgeError, match="dt must be > 0"):
        FastJansenRit(conn76, 0.0)
    engine = FastJansenRit(conn76, 1.0)
    with pytest.raises(BrainForgeError, match="stimulated nodes"):
        next(engine.simulate([76], [0.08], [1.0], 100.0))
    with pytest.raises(BrainForgeError, match="transient"):
        check_run(500.0, 1.0, transient_ms=1000.0)
    with pytest.raises(BrainForgeError, match="duration"):
        next(engine.simulate([1], [0.08], [1.0], -5.0))


def test_exp_kernels_match_numpy():
    """The vector exp (glibc's libmvec, where the CPU and numba allow) and the scalar fallback."""
    from brainforge.nmm import engine as engine_module

    x = np.random.default_rng(3).uniform(-740.0, 705.0, 4096)
    x[:8] = [-1e4, 1e4, np.inf, -np.inf, 0.0, 1.0, 709.0, -745.0]
    with np.errstate(over="ignore"):
        reference = np.exp(x)
    for kernel in (engine_module._exp_scalar, engine_module._exp_vector):
        if kernel is None:  # no libmvec here
            continue
        y = x.copy()
        kernel(y)
        np.testing.assert_array_equal(np.isinf(y), np.isinf(reference))
        finite = np.isfinite(reference)
        np.testing.assert_allclose(y[finite], reference[finite], rtol=1e-15, atol=0)


def test_noise_free_general_sigmoids_match_tvb(conn76):
    """With a_1 J != 4 a_3 J the two sigmoids of y0 take one exponential each, as TVB does."""
    params = JansenRitParams(a_3=0.3)
    engine = FastJansenRit(conn76, 1.0, params=params)
    history = random_initial_history(engine.n_history, conn76.n_nodes, np.random.default_rng(8))
    reference = _tvb(conn76, 5, 0.087, 1.0, 500.0, params=params, initial_history=history, noise=False)
    fast = np.concatenate(
        list(
            engine.simulate(
                [5], [0.087], [1.0], 500.0, initial_history=history[..., None], noise=False, dtype=np.float64
            )
        )
    )[..., 0]
    relative = np.abs(fast - reference).max() / np.abs(reference).max()
    print(f"a_3 = 0.3: max relative difference to TVB over 500 ms: {relative:.1e}")
    assert relative <= 1e-9
