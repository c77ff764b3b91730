"""Inverse solvers behind one interface: classical ones from MNE-Python, and trained networks."""

from .forward import make_forward, make_info
from .solvers import (
    CLASSICAL_SOLVERS,
    ClassicalSolver,
    InverseSolver,
    LearnedSolver,
    SourceActivity,
    make_solver,
    region_mean_matrix,
    source_estimate,
)

__all__ = [
    "CLASSICAL_SOLVERS",
    "ClassicalSolver",
    "InverseSolver",
    "LearnedSolver",
    "SourceActivity",
    "make_forward",
    "make_info",
    "make_solver",
    "region_mean_matrix",
    "source_estimate",
]
