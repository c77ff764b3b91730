"""A fast Jansen-Rit engine: TVB's equations, batched over simulations, compiled with numba.

It integrates exactly what :func:`~brainforge.nmm.tvb_backend.simulate_tvb`
integrates (TVB's ``JansenRit``, ``SigmoidalJansenRit`` coupling and
``HeunStochastic``), for a batch of simulations at once, each with its own
stimulated node, mean input, noise level and seed. What makes it agree with
TVB to round-off with the noise off:

- TVB stores the coupled variables (``y1``, ``y2``) in a float32 history
  and its weights in float32; the coupling sigmoid is evaluated on the
  float32 difference. We store the sigmoid of that same float32 difference.
- Both Heun stages use one coupling value, computed from the history up to
  the previous step.
- The history holds ``max(delay) + 1`` steps, the maximum taken over the
  whole tract-length matrix; the first integrated step is step
  ``n_history`` (TVB's ``horizon``).

What makes it fast:

- The coupling sigmoid depends only on the source node and time, so it is
  computed once per node and step when the state is stored, not once per
  connection.
- Sparse delayed coupling over the non-zero weights, from a ring buffer laid
  out (time, node, simulation) so that the simulations of a block are
  contiguous; each block of simulations runs its own time loop on one thread.
- Noise is drawn in bulk, per simulation from its own seeded generator, so a
  simulation's output does not depend on which batch it ran in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from numba import njit, prange

from .._errors import BrainForgeError
from ..anatomy.connectivity import Connectivity
from .model import JansenRitParams, check_run, integer_delays, random_initial_history


@njit(cache=True, inline="always")
def _sigmoid(v, nu_max, r, v0):
    return 2.0 * nu_max / (1.0 + np.exp(r * (v0 - v)))


@njit(cache=True, inline="always")
def _jansen_rit_dfun(y0, y1, y2, y3, y4, y5, gain, mu, coupling, consts):
    """TVB's JansenRit derivative (same operations, same order), local coupling 0."""
    a, b, B_gain, v0, nu_max, r, J, a_1, a_2, a_3, a_4 = consts[0:11]
    s12 = _sigmoid(y1 - y2, nu_max, r, v0)
    s01 = _sigmoid(a_1 * J * y0, nu_max, r, v0)
    s03 = _sigmoid(a_3 * J * y0, nu_max, r, v0)
    d3 = gain * a * s12 - 2.0 * a * y3 - a**2 * y0
    d4 = gain * a * (mu + a_2 * J * s01 + coupling + 0.0) - 2.0 * a * y4 - a**2 * y1
    d5 = B_gain * b * (a_4 * J * s03) - 2.0 * b * y5 - b**2 * y2
    return y3, y4, y5, d3, d4, d5


@njit(cache=True)
def _coupling_value(y1, y2, cmin, cmax, midpoint, r):
    diff = np.float32(y1) - np.float32(y2)
    return cmin + (cmax - cmin) / (1.0 + np.exp(r * (midpoint - np.float64(diff))))


@njit(cache=True, parallel=True)
def _integrate(
    state,  # (6, N, B) float64, updated in place
    sig_history,  # (H, N, B) float64 ring buffer of the coupling sigmoid
    first_step,
    n_steps,
    dt,
    indptr,
    indices,
    weights,
    delays,
    A,  # (N, B)
    mu,  # (B,)
    noise_gain,  # (B,): sqrt(2 * nsig)
    noise,  # (B, n_steps, N) standard normal, or (B, 0, N) for none
    consts,  # model and coupling constants
    block,
    out,  # (n_steps, N, B)
):
    n_nodes = state.shape[1]
    n_batch = state.shape[2]
    n_history = sig_history.shape[0]
    c_a, c_min, c_max, c_mid, c_r = consts[11:16]
    sqrt_dt = np.sqrt(dt)
    has_noise = noise.shape[1] > 0
    n_blocks = (n_batch + block - 1) // block
    for blk in prange(n_blocks):
        b0 = blk * block
        b1 = min(b0 + block, n_batch)
        width = b1 - b0
        coupling = np.empty((n_nodes, width))
        acc = np.empty(width)
        for k in range(n_steps):
            step = first_step + k
            previous = (step - 1) % n_history
            # Delayed coupling from the history up to step - 1 (both Heun stages use it).
            for i in range(n_nodes):
                for lane in range(width):
                    acc[lane] = 0.0
                for p in range(indptr[i], indptr[i + 1]):
                    t = previous - delays[p]  # delays < n_history: one wrap at most
                    if t < 0:
                        t += n_history
                    w = weights[p]
                    row = sig_history[t, indices[p], b0:b1]
                    for lane in range(width):
                        acc[lane] += w * row[lane]
                for lane in range(width):
                    coupling[i, lane] = acc[lane]
            for i in range(n_nodes):
                for lane in range(width):
                    bb = b0 + lane
                    c = c_a * coupling[i, lane]
                    y0 = state[0, i, bb]
                    y1 = state[1, i, bb]
                    y2 = state[2, i, bb]
                    y3 = state[3, i, bb]
                    y4 = state[4, i, bb]
                    y5 = state[5, i, bb]
                    gain = A[i, bb]
                    m = mu[bb]
                    # Stage 1: derivative at the current state.
                    d0, d1, d2, d3, d4, d5 = _jansen_rit_dfun(y0, y1, y2, y3, y4, y5, gain, m, c, consts)
                    eta = 0.0
                    if has_noise:
                        eta = sqrt_dt * noise[bb, k, i] * noise_gain[bb]
                    # Stage 2: derivative at the predictor, same coupling.
                    e0, e1, e2, e3, e4, e5 = _jansen_rit_dfun(
                        y0 + dt * d0, y1 + dt * d1, y2 + dt * d2, y3 + dt * d3, y4 + dt * d4 + eta, y5 + dt * d5,
                        gain, m, c, consts,
                    )  # fmt: skip
                    half = dt / 2.0
                    y0 = y0 + (d0 + e0) * half
                    y1 = y1 + (d1 + e1) * half
                    y2 = y2 + (d2 + e2) * half
                    y3 = y3 + (d3 + e3) * half
                    y4 = y4 + (d4 + e4) * half + eta
                    y5 = y5 + (d5 + e5) * half
                    state[0, i, bb] = y0
                    state[1, i, bb] = y1
                    state[2, i, bb] = y2
                    state[3, i, bb] = y3
                    state[4, i, bb] = y4
                    state[5, i, bb] = y5
                    out[k, i, bb] = y1 - y2
            # Store this step's coupling sigmoid (after all nodes read step - 1 - delay).
            slot = step % n_history
            for i in range(n_nodes):
                for lane in range(width):
                    bb = b0 + lane
                    sig_history[slot, i, bb] = _coupling_value(
                        state[1, i, bb], state[2, i, bb], c_min, c_max, c_mid, c_r
                    )


class FastJansenRit:
    """Batched Jansen-Rit simulations on one connectome.

    Parameters
    ----------
    conn : Connectivity
        The connectome (weights are used as TVB uses them, in float32).
    dt_ms : float
        Integration step, ms.
    params : JansenRitParams | None
        Model constants (DeepSIF's by default).
    block : int
        Simulations per thread block (8-16 keeps them in cache together).
    """

    def __init__(self, conn: Connectivity, dt_ms: float = 1.0, params: JansenRitParams | None = None, block: int = 8):
        if not dt_ms > 0:
            raise BrainForgeError(f"dt must be > 0 ms, got {dt_ms}.")
        self.conn = conn
        self.dt_ms = float(dt_ms)
        self.params = params or JansenRitParams()
        self.block = int(block)
        delays = integer_delays(conn.tract_lengths, self.params.conduction_speed, self.dt_ms)
        self.n_history = int(delays.max()) + 1
        weights32 = np.asarray(conn.weights, np.float32)
        rows, cols = np.nonzero(weights32)
        self._indptr = np.searchsorted(rows, np.arange(conn.n_nodes + 1)).astype(np.int64)
        self._indices = cols.astype(np.int64)
        self._weights = weights32[rows, cols].astype(np.float64)
        self._delays = delays[rows, cols].astype(np.int64)
        p = self.params
        self._consts = np.array(
            [
                *(p.a, p.b, p.B, p.v0, p.nu_max, p.r, p.J, p.a_1, p.a_2, p.a_3, p.a_4),
                *(p.coupling_a, p.coupling_cmin, p.coupling_cmax, p.coupling_midpoint, p.coupling_r),
            ]
        )

    @property
    def n_connections(self) -> int:
        """Non-zero weights."""
        return len(self._weights)

    def simulate(
        self,
        stimulated: Sequence[int] | np.ndarray,
        mu: Sequence[float] | np.ndarray,
        noise_factor: Sequence[float] | np.ndarray,
        duration_ms: float,
        *,
        seeds: Sequence[int] | np.ndarray | None = None,
        initial_history: np.ndarray | None = None,
        noise: bool = True,
        chunk_steps: int = 1000,
        dtype=np.float32,
    ) -> Iterator[np.ndarray]:
        """Integrate a batch of simulations and yield ``y1 - y2`` chunk by chunk.

        Parameters
        ----------
        stimulated : array of int, shape (n_sims,)
            Node with raised excitability in each simulation (-1 for none).
        mu, noise_factor : arrays, shape (n_sims,)
            Mean input and noise factor of each simulation.
        duration_ms : float
            Simulated time, ms.
        seeds : array of int, shape (n_sims,) | None
            One seed per simulation: it draws that simulation's initial
            history (when ``initial_history`` is None) and its noise.
        initial_history : array, shape (n_history, 6, n_nodes, n_sims) | None
            The state at the ``n_history`` steps before the first integrated one.
        noise : bool
            False switches the noise off.
        chunk_steps : int
            Steps per yielded chunk.
        dtype : numpy dtype
            Of the yielded chunks.

        Yields
        ------
        chunk : array, shape (n_steps_in_chunk, n_nodes, n_sims)
        """
        stimulated = np.atleast_1d(np.asarray(stimulated, np.int64))
        n_sims, n_nodes = len(stimulated), self.conn.n_nodes
        mu = np.broadcast_to(np.asarray(mu, float), (n_sims,)).copy()
        noise_factor = np.broadcast_to(np.asarray(noise_factor, float), (n_sims,)).copy()
        seeds = np.arange(n_sims) if seeds is None else np.asarray(seeds, np.int64)
        if len(seeds) != n_sims:
            raise BrainForgeError(f"Need one seed per simulation ({n_sims}), got {len(seeds)}.")
        if ((stimulated < -1) | (stimulated >= n_nodes)).any():
            raise BrainForgeError(f"stimulated nodes must lie in 0..{n_nodes - 1} (or -1 for none).")
        n_steps = check_run(duration_ms, self.dt_ms)
        generators = [np.random.default_rng(int(s)) for s in seeds]
        if initial_history is None:
            initial_history = np.stack(
                [random_initial_history(self.n_history, n_nodes, g) for g in generators], axis=-1
            )
        history = np.asarray(initial_history, float)
        if history.shape != (self.n_history, 6, n_nodes, n_sims):
            raise BrainForgeError(
                f"initial_history must have shape {(self.n_history, 6, n_nodes, n_sims)}, got {history.shape}."
            )
        p = self.params
        A = np.full((n_nodes, n_sims), p.A)
        has_stim = stimulated >= 0
        A[stimulated[has_stim], np.flatnonzero(has_stim)] = p.A_stimulated
        noise_gain = np.sqrt(2.0 * np.array([p.noise_sigma(f) for f in noise_factor]))
        state = np.ascontiguousarray(history[-1])
        sig_history = np.empty((self.n_history, n_nodes, n_sims))
        for t in range(self.n_history):
            y1 = history[t, 1].astype(np.float32)
            y2 = history[t, 2].astype(np.float32)
            diff = (y1 - y2).astype(np.float64)
            sig_history[t] = p.coupling_cmin + (p.coupling_cmax - p.coupling_cmin) / (
                1.0 + np.exp(p.coupling_r * (p.coupling_midpoint - diff))
            )
        step = self.n_history
        done = 0
        while done < n_steps:
            todo = min(chunk_steps, n_steps - done)
            if noise:
                draws = np.empty((n_sims, todo, n_nodes), np.float32)
                for lane, g in enumerate(generators):
                    g.standard_normal(dtype=np.float32, out=draws[lane])
            else:
                draws = np.zeros((n_sims, 0, n_nodes), np.float32)
            out = np.empty((todo, n_nodes, n_sims), dtype)
            _integrate(
                state, sig_history, step, todo, self.dt_ms, self._indptr, self._indices, self._weights,
                self._delays, A, mu, noise_gain, draws, self._consts, self.block, out,
            )  # fmt: skip
            step += todo
            done += todo
            yield out
