"""Jansen-Rit parameters as DeepSIF publishes them, shared by every engine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._errors import BrainForgeError

#: DeepSIF's three (mean input ``mu``, noise factor) settings.
PUBLISHED_SETTINGS: tuple[tuple[float, float], ...] = ((0.087, 1.0), (0.080, 1.7), (0.083, 1.5))


@dataclass(frozen=True)
class JansenRitParams:
    """Jansen-Rit model, sigmoidal coupling and delays (TVB names and units: mV, ms).

    The defaults are TVB's ``JansenRit`` with DeepSIF's changes (``v0 = 6``,
    ``p_max = 0.15``, ``p_min = 0.03``), TVB's ``SigmoidalJansenRit``
    coupling with ``a = 1`` and TVB's conduction speed.

    Parameters
    ----------
    A, A_stimulated : float
        Excitatory gain (mV) of ordinary regions and of the stimulated one.
    B, a, b, v0, nu_max, r, J, a_1, a_2, a_3, a_4 : float
        Remaining Jansen-Rit constants (TVB defaults; ``a`` and ``b`` per ms).
    p_max, p_min : float
        Input range; only the noise amplitude uses them.
    coupling_a, coupling_cmin, coupling_cmax, coupling_midpoint, coupling_r : float
        ``SigmoidalJansenRit`` constants.
    conduction_speed : float
        mm/ms; delays are tract length / speed.
    """

    A: float = 3.25
    A_stimulated: float = 3.5
    B: float = 22.0
    a: float = 0.1
    b: float = 0.05
    v0: float = 6.0
    nu_max: float = 0.0025
    r: float = 0.56
    J: float = 135.0
    a_1: float = 1.0
    a_2: float = 0.8
    a_3: float = 0.25
    a_4: float = 0.25
    p_max: float = 0.15
    p_min: float = 0.03
    coupling_a: float = 1.0
    coupling_cmin: float = 0.0
    coupling_cmax: float = 0.005
    coupling_midpoint: float = 6.0
    coupling_r: float = 0.56
    conduction_speed: float = 3.0

    def noise_sigma(self, factor: float) -> float:
        """TVB ``nsig`` of the additive noise on ``y4`` for a noise factor.

        ``nsig = (a * A * (p_max - p_min) * 0.5 * factor) ** 2 / 2`` with the
        ordinary ``A`` (3.25), as in DeepSIF's simulation script.
        """
        return (self.a * self.A * (self.p_max - self.p_min) * 0.5 * factor) ** 2 / 2.0


def integer_delays(tract_lengths: np.ndarray, speed: float, dt_ms: float) -> np.ndarray:
    """Delays in integration steps, as TVB computes them (``rint(length / speed / dt)``)."""
    return np.rint(tract_lengths / speed / dt_ms).astype(np.int32)


def check_run(duration_ms: float, dt_ms: float, transient_ms: float = 0.0) -> int:
    """Validate timing before any work starts; return the number of steps."""
    if not 0 < dt_ms < float("inf"):
        raise BrainForgeError(f"dt must be a finite step > 0 ms, got {dt_ms}.")
    if not 0 < duration_ms < float("inf"):
        raise BrainForgeError(f"duration must be a finite time > 0, got {duration_ms} ms.")
    if duration_ms <= transient_ms:
        raise BrainForgeError(
            f"duration {duration_ms:g} ms is not longer than the {transient_ms:g} ms transient that spike "
            "extraction drops; simulate longer."
        )
    return n_integration_steps(duration_ms, dt_ms)


def n_integration_steps(duration_ms: float, dt_ms: float) -> int:
    """Return the steps of ``dt_ms`` that cover ``duration_ms``: a whole number of steps when it is one.

    A duration that is a whole number of steps up to rounding (16.1 s as
    16100.000000000002 ms) takes that number, not one step more.
    """
    ratio = duration_ms / dt_ms
    nearest = round(ratio)
    return int(nearest) if abs(ratio - nearest) <= 1e-9 * max(nearest, 1) else int(np.ceil(ratio))


def random_initial_history(n_history: int, n_nodes: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random history (TVB's ``JansenRit.state_variable_range``), shape (n_history, 6, n_nodes)."""
    ranges = np.array([[-1.0, 1.0], [-500.0, 500.0], [-50.0, 50.0], [-6.0, 6.0], [-20.0, 20.0], [-500.0, 500.0]])
    return rng.uniform(ranges[:, 0][None, :, None], ranges[:, 1][None, :, None], size=(n_history, 6, n_nodes))
