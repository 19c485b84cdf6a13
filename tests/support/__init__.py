"""Shared by the tests: problem generators, the reference solver (the one Clarabel wrapper,
``optnet_benchmarks.reference.clarabel_solve``, and the closest feasible problem built on it),
the exact derivative at a known solution (``optnet_benchmarks.known_solution``), and the
tolerance table."""

from optnet_benchmarks.known_solution import active_set_gradients, known_solution_problem
from optnet_benchmarks.reference import clarabel_solve as reference_solve
from optnet_benchmarks.reference import closest_feasible_reference

from .problems import infeasible_qp, random_qp
from .tolerances import TOLERANCES, assert_close_to, relative_error

__all__ = [
    "TOLERANCES",
    "active_set_gradients",
    "assert_close_to",
    "closest_feasible_reference",
    "infeasible_qp",
    "known_solution_problem",
    "random_qp",
    "reference_solve",
    "relative_error",
]
