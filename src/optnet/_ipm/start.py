"""The starting point of the interior-point method."""

from __future__ import annotations

import torch

from .. import _kkt
from .._options import SolverOptions
from .._policy import Policy
from .._problem import Problem, dot
from .._status import QPStatus
from .certificates import crossed_bounds_status
from .state import RUNNING, IPMState


def initial_point(
    problem: Problem,
    reg: torch.Tensor,
    refine_steps: int,
    form: str,
    buffers: _kkt.Buffers | None = None,
):
    """Least-squares start (Mehrotra's heuristic, Nocedal & Wright eq. 16.60).

    Solves ``min 1/2 z'Qz + p'z + 1/2 ||Cz - h||^2  s.t.  Az = b``, then shifts slacks and
    duals into the positive orthant and balances them.
    """
    mask = problem.mask
    batch = problem.batch
    h_all = problem.h_all.expand(batch, -1)
    f = _kkt.factor(problem, mask.expand(batch, -1), reg, refine_steps, form, buffers)
    r2 = None if not problem.has_eq else problem.b.expand(batch, -1)
    z, nu = _kkt.solve(f, -problem.p + problem.ineq_t(h_all * mask), r2)
    if nu is None and problem.has_eq:
        nu = z.new_zeros(batch, problem.A.shape[-2])
    s = (h_all - problem.ineq(z)) * mask
    lam = -s
    big = torch.finfo(z.dtype).max
    if problem.m_all:
        s = s + (-1.5 * torch.where(mask > 0, s, big).amin(-1, keepdim=True)).clamp_min(0)
        lam = lam + (-1.5 * torch.where(mask > 0, lam, big).amin(-1, keepdim=True)).clamp_min(0)
        s, lam = s * mask, lam * mask
        sl = dot(s, lam).unsqueeze(-1)
        s_new = s + 0.5 * sl / lam.sum(-1, keepdim=True).clamp_min(1e-30)
        lam_new = lam + 0.5 * sl / s.sum(-1, keepdim=True).clamp_min(1e-30)
        # Degenerate starts (all slacks or duals zero) fall back to the unit point.
        degenerate = (sl <= 0) | ~torch.isfinite(s_new + lam_new).all(-1, keepdim=True)
        s = torch.where(degenerate, torch.ones_like(s), s_new.clamp_min(1e-8))
        lam = torch.where(degenerate, torch.ones_like(lam), lam_new.clamp_min(1e-8))
    # Masked rows (infinite rhs): slack 1, dual 0, never touched again.
    s = torch.where(mask > 0, s, torch.ones_like(s))
    lam = lam * mask
    return z, s, lam, nu


# Curvature below -NONCONVEX_TOLERANCE * ||Q||_inf makes a problem NONCONVEX. Above it, a
# slightly indefinite Q (rounded data: Maros-Meszaros VALUES has eigenvalues of -1.2e-6 of its
# norm) is solved as given, to a KKT point.
NONCONVEX_TOLERANCE = 1e-5


def nonconvex(problem: Problem) -> torch.Tensor:
    """(B|1,) bool: Q has an eigenvalue below ``-NONCONVEX_TOLERANCE * ||Q||_inf``.

    A Cholesky factorization of ``Q + tau I`` fails exactly when Q has an eigenvalue below
    ``-tau``; ``||Q||_inf`` (the largest absolute row sum) bounds Q's spectral norm.
    """
    Q = problem.Q
    norm = Q.abs().sum(-1).amax(-1)
    # A zero Q (a linear program) is convex: its shift would be a denormal (float32: 1e-43),
    # on which the Cholesky factorization fails for n <= 16, so it is not tested.
    tau = NONCONVEX_TOLERANCE * norm.clamp_min(torch.finfo(Q.dtype).tiny)
    shifted = Q + tau[:, None, None] * torch.eye(Q.shape[-1], dtype=Q.dtype, device=Q.device)
    return (torch.linalg.cholesky_ex(shifted)[1] != 0) & (norm > 0)


def initial_state(
    problem: Problem, options: SolverOptions, policy: Policy, buffers: _kkt.Buffers | None = None
) -> IPMState:
    batch, device = problem.batch, problem.p.device
    reg = torch.full((batch,), options.regularization, dtype=problem.p.dtype, device=device)
    form = policy.factor_form
    z, s, lam, nu = initial_point(problem, reg, options.refine_steps, form, buffers)
    status = torch.full((batch,), RUNNING, dtype=torch.int64, device=device)
    status = crossed_bounds_status(problem, status)
    status = torch.where(nonconvex(problem), int(QPStatus.NONCONVEX), status)
    zeros = torch.zeros(batch, dtype=torch.int64, device=device)
    best = [None if x is None else x.clone() for x in (z, s, lam, nu)]
    no_merit = torch.full((batch,), float("inf"), dtype=z.dtype, device=device)
    return IPMState(z, s, lam, nu, status, zeros, zeros.clone(), *best, no_merit)
