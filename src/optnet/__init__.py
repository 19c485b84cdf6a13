"""optnet: differentiable batched quadratic programs as PyTorch layers (OptNet, ICML 2017)."""

from . import nn
from ._options import SolverOptions
from ._solution import ActiveSet, InfeasibilityCertificate, QPSolution
from ._status import QPSolveError, QPStatus
from .functional import solve_qp

__version__ = "0.1.0"

__all__ = [
    "ActiveSet",
    "InfeasibilityCertificate",
    "QPSolution",
    "QPSolveError",
    "QPStatus",
    "SolverOptions",
    "__version__",
    "nn",
    "solve_qp",
]
