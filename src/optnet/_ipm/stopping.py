"""The stopping rule: when an iterate is converged, how good it is, when a problem stops."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .._options import SolverOptions
from .residuals import Residuals
from .state import RUNNING

# A problem whose Newton matrix fails to factor more often than this (each failure raises the
# regularization 100x) is a numerical error.
MAX_REG_BUMPS = 6
# ... and the factorization's relative round-off shift (``_kkt.factor_spd``) grows this much:
# on infeasible problems, where lam/s spans many orders near the certificate, float32 and
# float64 factorizations failed and 34 / 14 of 768 ended NUMERICAL_ERROR with reg alone
# (tests/support/classes.infeasible_inequalities; 5 / 0 with this, 8 / 0 with 100).
SHIFT_GROWTH_PER_FAILURE = 10.0

# The interior point hands its iterate to the active-set polish (``polish.py``) once every
# residual is within this tolerance (or the user's, if that is looser). From there the polish
# finds the exact solution; where it cannot, the interior point resumes (``batched.resume``).
# Measured (CPU, 1 thread, float64, 3 x 128 random QPs, n = m = 50, neq = 10): iterations
# 9.4 -> 7.3 with the same z bitwise; handing over at 1e-3 (5.9 iterations) was no faster, the
# polish then needing more rounds, and float32 (tolerance 1e-4) was 15 % slower handing over at
# 1e-3 than not at all. Not used inside CUDA graphs, where every polish round runs.
HANDOFF_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Tolerances:
    """The stopping rule's tolerances in a dtype (``SolverOptions``' with defaults filled in)."""

    eps_abs: float
    eps_rel: float
    eps_infeasible: tuple[float, float]  # of the (primal, dual) certificates

    @classmethod
    def of(cls, options: SolverOptions, dtype: torch.dtype) -> Tolerances:
        return cls(*options.tolerances(dtype), options.infeasibility_tolerances(dtype))

    @property
    def shortest_ray(self) -> float:
        """No certificate holds for a point shorter than this (the loosest tolerance's)."""
        return 1 / max(self.eps_infeasible)

    def handoff(self) -> Tolerances:
        """The tolerances at which the interior point stops and hands over to the polish."""
        eps_abs, eps_rel = (
            max(self.eps_abs, HANDOFF_TOLERANCE),
            max(self.eps_rel, HANDOFF_TOLERANCE),
        )
        return replace(self, eps_abs=eps_abs, eps_rel=eps_rel)


def convergence(res: Residuals, tol: Tolerances):
    """(converged, merit, gap tolerance) per problem.

    Converged: primal residual, dual residual and duality gap each ``<= eps_abs + eps_rel *
    scale`` with their own scale (``Residuals``); the primal and dual residuals may instead be
    below the rounding floor of their computation, and where the floor hides the objective
    gap the complementarity s'lam stands for it (``residuals.rounding_floors``). ``merit`` is
    the largest ratio of a residual to its tolerance (<= 1 means converged; +inf when not
    finite).
    """
    eps_abs, eps_rel = tol.eps_abs, tol.eps_rel
    # The tolerances, or the dtype's rounding floor at this iterate where that is larger.
    primal_tolerance = torch.maximum(eps_abs + eps_rel * res.primal_scale, res.primal_floor)
    dual_tolerance = torch.maximum(eps_abs + eps_rel * res.dual_scale, res.dual_floor)
    gap_tolerance = eps_abs + eps_rel * res.gap_scale
    # The objective gap z'Qz + p'z + h'lam + b'nu is a difference of large terms when z is
    # large; where its rounding floor hides it, the complementarity s'lam (a sum of products
    # of nonnegative numbers, accurate) measures the gap instead.
    gap = torch.where(res.gap <= res.gap_floor, res.complementarity, res.gap)
    converged = (
        (res.primal <= primal_tolerance) & (res.dual <= dual_tolerance) & (gap <= gap_tolerance)
    )
    merit = torch.maximum(res.primal / primal_tolerance, res.dual / dual_tolerance)
    merit = torch.maximum(merit, gap / gap_tolerance)
    merit = torch.where(torch.isfinite(merit), merit, torch.full_like(merit, float("inf")))
    return converged, merit, gap_tolerance


def still_running(status: torch.Tensor, iterations: torch.Tensor, max_iter: int) -> torch.Tensor:
    """Problems that take another iteration."""
    return (status == RUNNING) & (iterations < max_iter)
