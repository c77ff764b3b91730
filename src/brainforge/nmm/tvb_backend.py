"""The reference engine: The Virtual Brain's own Jansen-Rit simulator."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..anatomy.connectivity import Connectivity
from .model import JansenRitParams, check_run, integer_delays, random_initial_history


def _tvb_connectivity(conn: Connectivity, speed: float):
    from tvb.datatypes.connectivity import Connectivity as TVBConnectivity

    tvb_conn = TVBConnectivity(
        weights=np.asarray(conn.weights, float),
        tract_lengths=np.asarray(conn.tract_lengths, float),
        centres=np.asarray(conn.centres, float),
        region_labels=np.array(conn.labels),
        speed=np.array([speed]),
    )
    tvb_conn.configure()
    return tvb_conn


def history_length(conn: Connectivity, params: JansenRitParams, dt_ms: float) -> int:
    """Return the steps of history TVB keeps: the largest delay over all tract lengths, plus one."""
    return int(integer_delays(conn.tract_lengths, params.conduction_speed, dt_ms).max()) + 1


def simulate_tvb(
    conn: Connectivity,
    stimulated: int,
    mu: float,
    noise_factor: float,
    duration_ms: float,
    *,
    dt_ms: float = 1.0,
    params: JansenRitParams | None = None,
    seed: int = 0,
    initial_history: np.ndarray | None = None,
    noise: bool = True,
    chunk_ms: float = 10_000.0,
) -> Iterator[np.ndarray]:
    """Run TVB's JansenRit with DeepSIF's settings and yield ``y1 - y2`` chunk by chunk.

    Parameters
    ----------
    conn : Connectivity
        The connectome.
    stimulated : int
        Node whose excitability ``A`` is raised to ``params.A_stimulated``.
    mu : float
        Mean input.
    noise_factor : float
        Scales the additive noise on ``y4`` (see :meth:`JansenRitParams.noise_sigma`).
    duration_ms : float
        Simulated time, ms.
    dt_ms : float
        Integration step, ms.
    params : JansenRitParams | None
        Model constants (DeepSIF's by default).
    seed : int
        Seeds TVB's noise stream and, when ``initial_history`` is None, the
        random initial history.
    initial_history : array, shape (n_history, 6, n_nodes) | None
        The state of every node at the ``n_history`` steps before the first
        integrated one (see :func:`history_length`).
    noise : bool
        False switches the noise off (deterministic Heun).
    chunk_ms : float
        Length of each yielded chunk (bounds TVB's memory).

    Yields
    ------
    chunk : array, shape (n_steps, n_nodes)
        ``y1 - y2`` at every integration step, float64.
    """
    from tvb.simulator import coupling, integrators, models, monitors, simulator
    from tvb.simulator import noise as tvb_noise

    params = params or JansenRitParams()
    n_steps = check_run(duration_ms, dt_ms)
    tvb_conn = _tvb_connectivity(conn, params.conduction_speed)
    n_nodes = conn.n_nodes
    if initial_history is None:
        initial_history = random_initial_history(
            history_length(conn, params, dt_ms), n_nodes, np.random.default_rng(seed)
        )
    A = np.full(n_nodes, params.A)
    A[stimulated] = params.A_stimulated
    model = models.JansenRit(
        A=A, B=np.array([params.B]), a=np.array([params.a]), b=np.array([params.b]), v0=np.array([params.v0]),
        nu_max=np.array([params.nu_max]), r=np.array([params.r]), J=np.array([params.J]),
        a_1=np.array([params.a_1]), a_2=np.array([params.a_2]), a_3=np.array([params.a_3]),
        a_4=np.array([params.a_4]), p_max=np.array([params.p_max]), p_min=np.array([params.p_min]),
        mu=np.array([mu]),
    )  # fmt: skip
    sigma = np.zeros(6)
    sigma[4] = params.noise_sigma(noise_factor) if noise else 0.0
    sim = simulator.Simulator(
        model=model,
        connectivity=tvb_conn,
        coupling=coupling.SigmoidalJansenRit(
            a=np.array([params.coupling_a]),
            cmin=np.array([params.coupling_cmin]),
            cmax=np.array([params.coupling_cmax]),
            midpoint=np.array([params.coupling_midpoint]),
            r=np.array([params.coupling_r]),
        ),
        integrator=integrators.HeunStochastic(dt=dt_ms, noise=tvb_noise.Additive(nsig=sigma, noise_seed=seed)),
        monitors=(monitors.Raw(),),
        initial_conditions=np.asarray(initial_history, float)[..., None],
    ).configure()
    steps_per_chunk = max(1, round(chunk_ms / dt_ms))
    done = 0
    while done < n_steps:
        todo = min(steps_per_chunk, n_steps - done)
        ((_, data),) = sim.run(n_steps=todo)
        done += todo
        yield data[:, 1, :, 0] - data[:, 2, :, 0]
