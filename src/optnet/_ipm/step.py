"""The Newton direction of an iteration and the step-length rule."""

from __future__ import annotations

import torch

from .. import _kkt
from .._problem import Problem, matvec
from .residuals import Residuals

# Fraction of the way to the boundary of the positive orthant that a step goes.
STEP_FRACTION = 0.995
# Iterations after which the anti-cycling safeguard (see Iteration.__call__) may act: before
# that it mostly rejects good corrector steps and slows convergence (measured).
SAFEGUARD_AFTER = 15


def newton_step(problem: Problem, f: _kkt.KKTFactor, s, lam, w, r_dual, r_eq, r_ineq, r_comp):
    """One reduced solve for the Newton system with right-hand side minus the residuals::

    Q dz + C'dlam + A'dnu = -r_dual,  A dz = -r_eq,  C dz + ds = -r_ineq,
    lam * ds + s * dlam = -r_comp

    ``w = lam / s`` (masked). Returns (dz, ds, dlam, dnu) and C dz.
    """
    mask = problem.mask
    r1 = -r_dual - problem.ineq_t(w * r_ineq - r_comp / s * mask)
    dz, dnu = _kkt.solve_regularized(f, r1, None if r_eq is None else -r_eq)
    C_dz = problem.ineq(dz)
    ds = (-r_ineq - C_dz) * mask
    dlam = (-r_comp - lam * ds) / s * mask
    return (dz, ds, dlam, dnu), C_dz


def direction(problem: Problem, f: _kkt.KKTFactor, res: Residuals, s, lam, w, r_comp, refine: int):
    """Newton direction for the complementarity target ``s * lam -> s * lam - r_comp``.

    ``w = lam / s`` (masked) are the factor's weights. Iterative refinement runs on the full
    (unreduced) system: the reduced right-hand side carries terms of size 1/s that cancel, so
    only the full residual shows the lost accuracy; it also removes the bias of the
    regularization.
    """
    step, C_dz = newton_step(problem, f, s, lam, w, res.r_dual, res.r_eq, res.r_ineq, r_comp)
    for k in range(refine):
        dz, ds, dlam, dnu = step
        e_dual = res.r_dual + matvec(problem.Q, dz) + problem.ineq_t(dlam)
        e_eq = None
        if dnu is not None:
            e_dual = e_dual + problem.eq_t(dnu)
            e_eq = res.r_eq + problem.eq(dz)
        e_ineq = (res.r_ineq + C_dz + ds) * problem.mask
        e_comp = (r_comp + lam * ds + s * dlam) * problem.mask
        fix, C_fix = newton_step(problem, f, s, lam, w, e_dual, e_eq, e_ineq, e_comp)
        step = tuple(None if x is None else x + dx for x, dx in zip(step, fix))
        if k + 1 < refine:
            C_dz = C_dz + C_fix
    return step


def max_step(x: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Largest alpha in [0, 1] with x + alpha dx >= 0 (masked rows have dx = 0: no limit)."""
    if x.shape[-1] == 0:
        return x.new_ones(x.shape[0])
    blocking = dx < 0
    ratio = torch.where(blocking, -x / torch.where(blocking, dx, -1.0), 1.0)
    return ratio.amin(-1).clamp(max=1.0)
