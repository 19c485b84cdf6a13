"""Shared by the tests: problem generators, the reference solver (the one Clarabel wrapper,
``optnet_benchmarks.reference.clarabel_solve``), the exact derivative at a known solution
(``optnet_benchmarks.known_solution``), and the tolerance table."""

from optnet_benchmarks.known_solution import active_set_gradients, known_solution_problem
from optnet_benchmarks.reference import clarabel_solve as reference_solve

from .problems import random_qp
from .tolerances import TOLERANCES, assert_close_to, relative_error

__all__ = [
    "TOLERANCES",
    "active_set_gradients",
    "assert_close_to",
    "known_solution_problem",
    "random_qp",
    "reference_solve",
    "relative_error",
]
