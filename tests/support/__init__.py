"""Shared by the tests: problem generators, the tolerance table, the backends' configurations
of the conformance suite and the conditions a certificate must meet. The reference solver
(Clarabel), the known-solution problems and their exact derivative are the library's
``optnet.testing``, which the benchmarks use too."""

from optnet.testing import (
    active_set_gradients,
    closest_feasible_reference,
    known_solution_problem,
    reference_solve,
)

from .backends import CONFIGS
from .certificates import assert_farkas, assert_unbounded_ray
from .problems import infeasible_qp, random_qp
from .tolerances import GRADCHECK, TIGHT, TOLERANCES, assert_close_to, relative_error

__all__ = [
    "CONFIGS",
    "GRADCHECK",
    "TIGHT",
    "TOLERANCES",
    "active_set_gradients",
    "assert_close_to",
    "assert_farkas",
    "assert_unbounded_ray",
    "closest_feasible_reference",
    "infeasible_qp",
    "known_solution_problem",
    "random_qp",
    "reference_solve",
    "relative_error",
]
