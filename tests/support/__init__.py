"""Shared by the tests: problem generators, the reference solver, the tolerance table."""

from .problems import known_solution_problem, random_qp, reference_solve
from .tolerances import TOLERANCES, assert_close_to, relative_error

__all__ = [
    "TOLERANCES",
    "assert_close_to",
    "known_solution_problem",
    "random_qp",
    "reference_solve",
    "relative_error",
]
