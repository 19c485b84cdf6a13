"""Polish: from the interior point's active set to the exact solution.

The interior point stops at a tolerance, with every slack and dual strictly positive. Its
largest of ``lam_i`` and ``s_i`` tells which constraints are active: holding those as
equalities, the solution is that of one linear system (``_kkt.ActiveSetFactor``), solved to the
dtype's accuracy by refinement. The polished point replaces the interior point only if it
satisfies the stopping rule (primal feasible, duals of the right sign, within the
tolerances: signs are clamped, then the residuals judge) or, for an unsolved problem, if its
merit is better. Either way the factor is the backward pass's: the exact derivative of the
solution for that active set.
"""

from __future__ import annotations

import torch

from .. import _kkt
from .._problem import Problem
from .._status import QPStatus
from .residuals import residuals
from .stopping import convergence


def polish(problem: Problem, z, s, lam, nu, status, merit, reg, eps_abs: float, eps_rel: float):
    """(z, s, lam, nu, status, residuals, factor, polished): the polished iterate where taken.

    ``status`` and ``merit`` are the interior point's; only SOLVED and MAX_ITER problems are
    polished, and a polished MAX_ITER problem that meets the tolerances becomes SOLVED.
    """
    batch = z.shape[0]
    mask = problem.mask
    active = (lam > s) & (mask > 0)
    factor = _kkt.factor_active(problem, active, reg)
    r2 = problem.b.expand(batch, -1) if problem.has_eq else None
    h_all = problem.h_all.expand(batch, -1)
    z_p, lam_p, nu_p = _kkt.solve_active(factor, -problem.p.expand(batch, -1), h_all, r2)
    lam_p = lam_p.clamp_min(0) * factor.active
    s_p = ((h_all - problem.ineq(z_p)) * (1 - factor.active)).clamp_min(0)
    s_p = torch.where(mask > 0, s_p, torch.ones_like(s_p))  # absent rows keep slack 1
    res_p = residuals(problem, z_p, s_p, lam_p, nu_p)
    converged, merit_p, _ = convergence(res_p, eps_abs, eps_rel)
    eligible = (status == QPStatus.SOLVED) | (status == QPStatus.MAX_ITER)
    take = eligible & factor.ok & (converged | (merit_p < merit))
    status = torch.where(take & converged, int(QPStatus.SOLVED), status)
    pick = take.unsqueeze(-1)
    z, s, lam = (torch.where(pick, new, old) for new, old in ((z_p, z), (s_p, s), (lam_p, lam)))
    if nu is not None:
        nu = torch.where(pick, nu_p, nu)
    return z, s, lam, nu, status, residuals(problem, z, s, lam, nu), factor, take
