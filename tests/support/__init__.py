"""Shared by the tests: problem generators and the tolerance table. The reference solver
(Clarabel), the known-solution problems and their exact derivative are the library's
``optnet.testing``, which the benchmarks use too."""

from optnet.testing import (
    active_set_gradients,
    closest_feasible_reference,
    known_solution_problem,
    reference_solve,
)

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
