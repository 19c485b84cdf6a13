"""The interior-point algorithm, written once; every backend in ``optnet._backends`` runs it.

One concept per module:

- ``state``: the iterate and bookkeeping one iteration reads and writes; the solver's result.
- ``residuals``: KKT residuals and the scales the tolerances are relative to.
- ``start``: the starting point.
- ``step``: the Newton direction (predictor-corrector, refinement) and the step rule.
- ``stopping``: the convergence test, the merit of an iterate, when a problem stops.
- ``certificates``: infeasibility tests and the rays returned as certificates.
- ``iteration``: one iteration (assess, then step) and the final assessment.
"""

from .iteration import Iteration, finish
from .start import initial_state
from .state import IPMResult, IPMState

__all__ = ["IPMResult", "IPMState", "Iteration", "finish", "initial_state"]
