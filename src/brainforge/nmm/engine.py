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
- Sparse delayed coupling scattered from each source: the connections are
  grouped by (source, delay), so one read of a source's delayed value (the
  8 lanes of a block, one cache line) serves every target at that delay
  (16,987 reads instead of 35,730 per step on the 998 connectome), and the
  row of a group 32 groups ahead is prefetched. Each target still adds its
  sources in ascending order. The history is laid out (node, time, lane)
  per block of simulations; each block runs its own time loop on one thread.
- Five exponentials per node and step instead of seven: ``sigm(a_1 J y0)``
  and ``sigm(a_3 J y0)`` share one when ``a_1 J == 4 a_3 J`` (TVB's
  defaults), and all of a node's exponentials (both Heun stages: the
  predictor's ``y0``, ``y1``, ``y2`` need no sigmoid) are taken together
  over the lanes, with glibc's vector ``exp`` (libmvec) where the CPU and
  numba allow it, numba's scalar ``exp`` otherwise.
- Noise is drawn in bulk, per simulation from its own seeded generator, so a
  simulation's output does not depend on which batch it ran in.
"""

from __future__ import annotations

import ctypes.util
import sys
from collections.abc import Iterator, Sequence

import numba
import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._errors import BrainForgeError
from ..anatomy.connectivity import Connectivity
from .model import JansenRitParams, check_run, integer_delays, random_initial_history

#: Simulations of a block are padded to a multiple of this many lanes.
_LANE_PAD = 8


def _libmvec_exp() -> tuple[str, int] | None:
    """Return glibc's vector ``exp`` usable here as (symbol, doubles per call), or None.

    libmvec (glibc >= 2.22) holds SIMD versions of ``exp`` (within 4 ulp;
    elementwise, so a value does not depend on its neighbours): 8 doubles
    with AVX-512, 4 with AVX2. Numba must compile for this very CPU (no
    ``NUMBA_CPU_NAME`` or ``NUMBA_CPU_FEATURES``) so that the vector travels
    in the register where libmvec expects it.
    """
    if not sys.platform.startswith("linux") or numba.config.CPU_NAME or numba.config.CPU_FEATURES:
        return None
    import llvmlite.binding as llvm

    try:
        llvm.load_library_permanently(ctypes.util.find_library("mvec") or "libmvec.so.1")
    except RuntimeError:
        return None
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        return "_ZGVeN8v_exp", 8
    if features.get("avx2"):
        return "_ZGVdN4v_exp", 4
    return None


#: ``(symbol, width)`` of the vector exp in use, or None (numba's scalar exp).
VECTOR_EXP = _libmvec_exp()


def _make_vector_exp(symbol: str, width: int):
    @intrinsic
    def _vexp(typingctx, x, offset):
        """``x[offset:offset + width] = exp(x[offset:offset + width])`` with one libmvec call."""
        from llvmlite import ir

        def codegen(context, builder, signature, args):
            array_type = signature.args[0]
            array = context.make_array(array_type)(context, builder, args[0])
            pointer = cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])
            vector = ir.VectorType(ir.DoubleType(), width)
            vector_pointer = builder.bitcast(pointer, vector.as_pointer())
            function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector]), symbol)
            builder.store(builder.call(function, [builder.load(vector_pointer, align=8)]), vector_pointer, align=8)
            return context.get_dummy_value()

        return types.void(x, offset), codegen

    return _vexp


#: Coupling groups between a prefetch of the history and the use of what it fetched.
_PREFETCH_GROUPS = 32


@intrinsic
def _prefetch(typingctx, x, i, j, k):
    """Hint the CPU to bring ``x[i, j, k]`` into cache (``llvm.prefetch``: read, high locality)."""
    from llvmlite import ir

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, args[1:4])
        byte_pointer, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0"
        )
        builder.call(function, [builder.bitcast(pointer, byte_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(x, i, j, k), codegen


@njit(cache=True)
def _exp_scalar(x):
    """Exponentiate ``x`` in place with numba's scalar exp (the portable fallback)."""
    for j in range(x.size):
        x[j] = np.exp(x[j])


if VECTOR_EXP is not None:
    _vexp = _make_vector_exp(*VECTOR_EXP)
    _VEXP_WIDTH = VECTOR_EXP[1]

    @njit(cache=True)
    def _exp_vector(x):
        """Exponentiate ``x`` (length a multiple of 8) in place with libmvec."""
        for j in range(0, x.size, _VEXP_WIDTH):
            _vexp(x, j)

    _exp_inplace = _exp_vector
else:
    _exp_vector = None
    _exp_inplace = _exp_scalar


@njit(cache=True)
def _integrate(
    state,  # (6, N, B) float64, updated in place
    sig_history,  # (N, H, L) float64 ring buffer of this block's coupling sigmoid, L lanes (8k >= width)
    first_step,
    n_steps,
    dt,
    group_src,  # (G,): the source node of a group (groups ordered by source, then delay)
    group_delay,  # (G,): the delay of a group (one source, one delay)
    group_ptr,  # (G + 1,): targets of group g are group_ptr[g]:group_ptr[g + 1]
    targets,  # (nnz,) target nodes
    target_weights,  # (nnz,) their float32 weights, as float64
    A,  # (N, B)
    mu,  # (B,)
    noise_gain,  # (B,): sqrt(2 * nsig)
    noise,  # (B, n_steps, N) standard normal, or (B, 0, N) for none
    consts,  # model and coupling constants
    b0,
    b1,
    out,  # (n_steps, N, B)
):
    """Integrate simulations ``b0:b1`` (one block, one thread) for ``n_steps`` Heun steps."""
    n_nodes = state.shape[1]
    n_history = sig_history.shape[1]
    v0, r, J, a_1, a_3 = consts[3], consts[5], consts[6], consts[7], consts[9]
    c_a, c_min, c_max, c_mid, c_r = consts[11:16]
    # sigm(a_1 J y0) and sigm(a_3 J y0) from one exponential when a_1 J = 4 a_3 J (TVB's defaults):
    # exp(r (v0 - 4 c y0)) = exp(r v0) q**4 and exp(r (v0 - c y0)) = exp(r v0) q, q = exp(-r c y0).
    # An overflowing q gives inf, and a sigmoid of 0, as the plain formula does.
    a1J, a3J = a_1 * J, a_3 * J
    shared = a1J == 4.0 * a3J
    exp_rv0 = np.exp(r * v0)
    sqrt_dt = np.sqrt(dt)
    half = dt / 2.0
    has_noise = noise.shape[1] > 0
    width = b1 - b0
    lanes = sig_history.shape[2]
    n_groups = group_delay.shape[0]
    coupling = np.empty((n_nodes, lanes))
    # Exponents, then exponentials, per lane: sigm(y1 - y2) of stage 1 and 2, sigm(a_3 J y0) (or q) of
    # stage 1 and 2, sigm(a_1 J y0) of stage 1 and 2 (only when not shared).
    xs = np.zeros(6 * lanes)
    n_exponents = (4 if shared else 6) * lanes
    xc = np.zeros(lanes)  # of the coupling sigmoid
    for k in range(n_steps):
        step = first_step + k
        previous = (step - 1) % n_history
        slot = step % n_history
        # Delayed coupling from the history up to step - 1 (both Heun stages use it), scattered from
        # each source: one read of a source's delayed value (8 lanes) serves all its targets at that
        # delay, and each target still adds its sources in ascending order.
        coupling[:, :] = 0.0
        for gi in range(n_groups):
            # The history is read in an unpredictable order: ask for a row well ahead of its use.
            ahead = gi + _PREFETCH_GROUPS
            if ahead < n_groups:
                t = previous - group_delay[ahead]
                _prefetch(sig_history, group_src[ahead], t + n_history if t < 0 else t, 0)
            j = group_src[gi]
            t = previous - group_delay[gi]  # delays < n_history: one wrap at most
            if t < 0:
                t += n_history
            for g in range(0, lanes, _LANE_PAD):
                r0, r1, r2, r3 = (
                    sig_history[j, t, g],
                    sig_history[j, t, g + 1],
                    sig_history[j, t, g + 2],
                    sig_history[j, t, g + 3],
                )
                r4, r5, r6, r7 = (
                    sig_history[j, t, g + 4],
                    sig_history[j, t, g + 5],
                    sig_history[j, t, g + 6],
                    sig_history[j, t, g + 7],
                )
                for q in range(group_ptr[gi], group_ptr[gi + 1]):
                    i = targets[q]
                    w = target_weights[q]
                    coupling[i, g] += w * r0
                    coupling[i, g + 1] += w * r1
                    coupling[i, g + 2] += w * r2
                    coupling[i, g + 3] += w * r3
                    coupling[i, g + 4] += w * r4
                    coupling[i, g + 5] += w * r5
                    coupling[i, g + 6] += w * r6
                    coupling[i, g + 7] += w * r7
        # Every read of the history is done: this step's coupling sigmoid can go into slot.
        for i in range(n_nodes):
            # The exponents of both Heun stages first: the predictor's y0, y1, y2 need no sigmoid
            # (their derivatives are y3, y4, y5), so all exponentials of a node come in one call.
            for lane in range(width):
                bb = b0 + lane
                y0, y1, y2 = state[0, i, bb], state[1, i, bb], state[2, i, bb]
                y3, y4, y5 = state[3, i, bb], state[4, i, bb], state[5, i, bb]
                _exponents(xs, lane, lanes, y0, y1, y2, shared, v0, r, a1J, a3J)
                _exponents(xs, lane + lanes, lanes, y0 + dt * y3, y1 + dt * y4, y2 + dt * y5, shared, v0, r, a1J, a3J)
            _exp_inplace(xs[:n_exponents])
            for lane in range(width):
                bb = b0 + lane
                y0, y1, y2 = state[0, i, bb], state[1, i, bb], state[2, i, bb]
                y3, y4, y5 = state[3, i, bb], state[4, i, bb], state[5, i, bb]
                gain, m, c = A[i, bb], mu[bb], c_a * coupling[i, lane]
                # Stage 1: derivative at the current state.
                d0, d1, d2, d3, d4, d5 = _derivative(
                    y0, y1, y2, y3, y4, y5, xs[lane], xs[lane + 4 * lanes], xs[lane + 2 * lanes], shared, exp_rv0,
                    gain, m, c, consts,
                )  # fmt: skip
                e = sqrt_dt * noise[bb, k, i] * noise_gain[bb] if has_noise else 0.0
                # Stage 2: derivative at the predictor, same coupling.
                e0, e1, e2, e3, e4, e5 = _derivative(
                    y0 + dt * d0, y1 + dt * d1, y2 + dt * d2, y3 + dt * d3, y4 + dt * d4 + e, y5 + dt * d5,
                    xs[lane + lanes], xs[lane + 5 * lanes], xs[lane + 3 * lanes], shared, exp_rv0, gain, m, c, consts,
                )  # fmt: skip
                y0 = y0 + (d0 + e0) * half
                y1 = y1 + (d1 + e1) * half
                y2 = y2 + (d2 + e2) * half
                y3 = y3 + (d3 + e3) * half
                y4 = y4 + (d4 + e4) * half + e
                y5 = y5 + (d5 + e5) * half
                state[0, i, bb] = y0
                state[1, i, bb] = y1
                state[2, i, bb] = y2
                state[3, i, bb] = y3
                state[4, i, bb] = y4
                state[5, i, bb] = y5
                out[k, i, bb] = y1 - y2
                # TVB's coupling sees the float32 history: sigmoid of the float32 difference.
                xc[lane] = c_r * (c_mid - np.float64(np.float32(y1) - np.float32(y2)))
            _exp_inplace(xc)
            for lane in range(width):
                sig_history[i, slot, lane] = c_min + (c_max - c_min) / (1.0 + xc[lane])


@njit(cache=True, inline="always")
def _exponents(xs, at, lanes, y0, y1, y2, shared, v0, r, a1J, a3J):
    """Store the exponents of the three sigmoids at a state (see ``_integrate`` for ``shared``).

    ``xs[at]`` gets that of ``sigm(y1 - y2)``, ``xs[at + 2 lanes]`` that of
    ``sigm(a_3 J y0)`` (or ``q``'s), ``xs[at + 4 lanes]`` that of ``sigm(a_1 J y0)``
    (when not shared).
    """
    xs[at] = r * (v0 - (y1 - y2))
    if shared:
        xs[at + 2 * lanes] = -(r * (a3J * y0))
    else:
        xs[at + 2 * lanes] = r * (v0 - a3J * y0)
        xs[at + 4 * lanes] = r * (v0 - a1J * y0)


@njit(cache=True, inline="always")
def _derivative(y0, y1, y2, y3, y4, y5, e12, e01, e03, shared, exp_rv0, gain, mu, coupling, consts):
    """TVB's JansenRit derivative (same operations, same order) given the sigmoids' exponentials.

    Local coupling is 0. ``e12``, ``e01``, ``e03`` are ``exp(r (v0 - v))``
    of ``v = y1 - y2``, ``a_1 J y0``, ``a_3 J y0``; when ``shared``,
    ``e03`` is ``q = exp(-r a_3 J y0)`` and both come from it.
    """
    a, b, B_gain, nu_max, J, a_2, a_4 = consts[0], consts[1], consts[2], consts[4], consts[6], consts[8], consts[10]
    if shared:
        q2 = e03 * e03
        e01 = exp_rv0 * (q2 * q2)
        e03 = exp_rv0 * e03
    s12 = 2.0 * nu_max / (1.0 + e12)
    s01 = 2.0 * nu_max / (1.0 + e01)
    s03 = 2.0 * nu_max / (1.0 + e03)
    d3 = gain * a * s12 - 2.0 * a * y3 - a**2 * y0
    d4 = gain * a * (mu + a_2 * J * s01 + coupling + 0.0) - 2.0 * a * y4 - a**2 * y1
    d5 = B_gain * b * (a_4 * J * s03) - 2.0 * b * y5 - b**2 * y2
    return y3, y4, y5, d3, d4, d5


@njit(cache=True, parallel=True)
def _integrate_blocks(
    state, sig_history, first_step, n_steps, dt, group_src, group_delay, group_ptr, targets, target_weights, A, mu,
    noise_gain, noise, consts, block, out,
):  # fmt: skip
    """Integrate every block of ``block`` simulations, blocks in parallel (each its own time loop)."""
    n_batch = state.shape[2]
    for blk in prange(sig_history.shape[0]):
        b0 = blk * block
        _integrate(
            state, sig_history[blk], first_step, n_steps, dt, group_src, group_delay, group_ptr, targets,
            target_weights, A, mu, noise_gain, noise, consts, b0, min(b0 + block, n_batch), out,
        )  # fmt: skip


def _aligned_zeros(shape: tuple[int, ...], alignment: int = 64) -> np.ndarray:
    """Return a float64 array of zeros whose first element lies on an ``alignment``-byte boundary."""
    n = int(np.prod(shape))
    raw = np.zeros(n + alignment // 8)
    offset = (-raw.ctypes.data % alignment) // 8
    return raw[offset : offset + n].reshape(shape)


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
        self._weights = weights32[rows, cols].astype(np.float64)
        # By source, then delay, then target: groups of one source and one delay.
        conn_delays = delays[rows, cols].astype(np.int64)
        order = np.lexsort((rows, conn_delays, cols))
        sources, group_delays = cols[order], conn_delays[order]
        starts = np.flatnonzero(np.r_[True, (sources[1:] != sources[:-1]) | (group_delays[1:] != group_delays[:-1])])
        self._targets = rows[order].astype(np.int64)
        self._target_weights = self._weights[order]
        self._group_ptr = np.r_[starts, len(order)].astype(np.int64)
        self._group_delay = group_delays[starts]
        self._group_src = sources[starts].astype(np.int64)
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
        reuse_output: bool = False,
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
        reuse_output : bool
            Yield the same buffer for every chunk (overwritten by the next
            one): for consumers that use each chunk at once, it saves a
            fresh allocation, and its page faults, per chunk.

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
        # The coupling sigmoid's history, per block of simulations: (block, node, time, lane), the lanes
        # padded to a multiple of 8 (padding lanes hold 0 and are never integrated), rows 64-byte aligned.
        n_blocks = -(-n_sims // self.block)
        lanes = -(-min(self.block, n_sims) // _LANE_PAD) * _LANE_PAD
        sig_history = _aligned_zeros((n_blocks, n_nodes, self.n_history, lanes))
        for t in range(self.n_history):
            y1 = history[t, 1].astype(np.float32)
            y2 = history[t, 2].astype(np.float32)
            diff = (y1 - y2).astype(np.float64)
            sig = p.coupling_cmin + (p.coupling_cmax - p.coupling_cmin) / (
                1.0 + np.exp(p.coupling_r * (p.coupling_midpoint - diff))
            )
            for blk in range(n_blocks):
                b0, b1 = blk * self.block, min((blk + 1) * self.block, n_sims)
                sig_history[blk, :, t, : b1 - b0] = sig[:, b0:b1]
        step = self.n_history
        done = 0
        # One noise buffer for all chunks (fresh arrays of this size cost a page fault per page, each time).
        chunk_steps = max(1, min(int(chunk_steps), n_steps))
        draws_buffer = np.empty(n_sims * chunk_steps * n_nodes if noise else 0, np.float32)
        out_buffer = np.empty(chunk_steps * n_nodes * n_sims, dtype) if reuse_output else None
        while done < n_steps:
            todo = min(chunk_steps, n_steps - done)
            if noise:
                draws = draws_buffer[: n_sims * todo * n_nodes].reshape(n_sims, todo, n_nodes)
                for lane, g in enumerate(generators):
                    g.standard_normal(dtype=np.float32, out=draws[lane])
            else:
                draws = np.zeros((n_sims, 0, n_nodes), np.float32)
            if out_buffer is None:
                out = np.empty((todo, n_nodes, n_sims), dtype)
            else:
                out = out_buffer[: todo * n_nodes * n_sims].reshape(todo, n_nodes, n_sims)
            _integrate_blocks(
                state, sig_history, step, todo, self.dt_ms, self._group_src, self._group_delay, self._group_ptr,
                self._targets, self._target_weights, A, mu, noise_gain, draws, self._consts, self.block, out,
            )  # fmt: skip
            step += todo
            done += todo
            yield out
