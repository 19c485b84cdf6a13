"""KKT residuals of an iterate, and the scales the tolerances are relative to."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._problem import Problem, dot, inf_norm, matvec


@dataclass(frozen=True)
class Residuals:
    r_dual: torch.Tensor  # Qz + p + C'lam + A'nu           (B, n)
    r_eq: torch.Tensor | None  # Az - b                     (B, neq)
    r_ineq: torch.Tensor  # Cz + s - h_all (masked)         (B, m_all)
    mu: torch.Tensor  # mean complementarity s'lam / m      (B,)
    primal: torch.Tensor  # max violation of Az = b, Cz <= h (B,)
    dual: torch.Tensor  # ||r_dual||_inf                     (B,)
    gap: torch.Tensor  # |z'Qz + p'z + h'lam + b'nu|        (B,)
    complementarity: torch.Tensor  # s'lam                  (B,)
    primal_scale: torch.Tensor
    dual_scale: torch.Tensor
    gap_scale: torch.Tensor
    # The smallest residuals the dtype can show at this iterate (``rounding_floors``).
    primal_floor: torch.Tensor
    dual_floor: torch.Tensor
    gap_floor: torch.Tensor
    # The products the residuals are made of, reused by the infeasibility certificates.
    Qz: torch.Tensor | None = None  # (B, n)
    Cz: torch.Tensor | None = None  # (B, m_all)
    Ct_lam: torch.Tensor | None = None  # (B, n)
    Az: torch.Tensor | None = None  # (B, neq)
    At_nu: torch.Tensor | None = None  # (B, n)


# A dual rounding floor above this share of the dual residual's scale is not accepted in place
# of the tolerance: the dtype then cannot tell a solution from a point running off along a
# direction that is singular only to rounding (an unbounded problem, whose regularized Newton
# solution would otherwise pass, the floor growing with the point). Measured in float32
# (2026-12-02): solved OptNetLayer problems at cond(Q) ~ 2.6e6 have dual floors of at most
# 0.034 of the scale; the first iterates of unbounded problems with a rank-deficient Q,
# 0.25-1.5. (The dual side only: the primal scale max(|Az|, |b|) is itself tiny when b = 0.)
MAX_FLOOR_SHARE = 0.1


def residuals(problem: Problem, z, s, lam, nu) -> Residuals:
    mask = problem.mask
    Qz = matvec(problem.Q, z)
    Ct_lam = problem.ineq_t(lam)
    r_dual = Qz + problem.p + Ct_lam
    h_all = problem.h_all
    Cz = problem.ineq(z)
    r_ineq = (Cz + s - h_all) * mask
    violation = inf_norm(((Cz - h_all) * mask).clamp_min(0))
    primal_scale = torch.maximum(inf_norm(Cz * mask), inf_norm(h_all * mask).expand_as(violation))
    zQz, pz, hlam = dot(z, Qz), dot(problem.p, z), dot(h_all, lam)
    gap = zQz + pz + hlam
    gap_scale = torch.maximum(torch.maximum(zQz.abs(), pz.abs()), hlam.abs())
    dual_scale = torch.maximum(inf_norm(Qz), inf_norm(problem.p).expand_as(violation))
    dual_scale = torch.maximum(dual_scale, inf_norm(Ct_lam))
    r_eq = Az = At_nu = None
    if problem.has_eq:
        At_nu = problem.eq_t(nu)
        r_dual = r_dual + At_nu
        Az = problem.eq(z)
        r_eq = Az - problem.b
        violation = torch.maximum(violation, inf_norm(r_eq))
        primal_scale = torch.maximum(primal_scale, torch.maximum(inf_norm(Az), inf_norm(problem.b)))
        bnu = dot(problem.b, nu)
        gap = gap + bnu
        gap_scale = torch.maximum(gap_scale, bnu.abs())
        dual_scale = torch.maximum(dual_scale, inf_norm(At_nu))
    count = mask.sum(-1).clamp_min(1)
    complementarity = dot(s * mask, lam)
    primal_floor, dual_floor, gap_floor = rounding_floors(problem, z, lam, nu)
    # A dual floor above MAX_FLOOR_SHARE of its scale does not stand for the tolerance.
    dual_floor = torch.where(dual_floor <= MAX_FLOOR_SHARE * dual_scale, dual_floor, 0)
    return Residuals(
        r_dual, r_eq, r_ineq, complementarity / count, violation, inf_norm(r_dual), gap.abs(),
        complementarity,
        primal_scale, dual_scale, gap_scale, primal_floor, dual_floor, gap_floor,
        Qz, Cz, Ct_lam, Az, At_nu,
    )  # fmt: skip


def rounding_floors(problem: Problem, z, lam, nu):
    """(primal, dual, gap) floors: the rounding error of computing the residuals at an iterate.

    Each entry of ``Qz`` carries a rounding error of about ``eps * (|Q| |z|)_i``, and ``z'Qz``
    one of ``eps * |z|'|Q||z|`` (the gap adds ``eps (|p|'|z| + |h|'|lam| + |b|'|nu|)``):
    residuals below these cannot be computed, let alone reached, whatever the algorithm. With
    an ill-conditioned Q the solution is large and these floors exceed ``eps_rel`` times the
    residuals' scales (float32: the paper's OptNetLayer at its initialization, cond(Q) ~ 1e6).
    The products with G and A enter through their absolute row and column sums times the
    largest entry of the vector (``Problem.absolute``: cheap, up to n times the floor).
    """
    eps = torch.finfo(z.dtype).eps
    absolute, z_abs = problem.absolute, z.abs()
    Q_z = matvec(absolute.Q, z_abs)
    duals = lam if nu is None else torch.cat([lam, nu], -1)
    dual = Q_z + absolute.dual + absolute.dual_per_dual * inf_norm(duals).unsqueeze(-1)
    primal = absolute.primal + absolute.primal_per_z * z_abs.amax(-1, keepdim=True)
    # The gap z'Qz + p'z + h'lam + b'nu: each product's own rounding (large duals of dependent
    # rows, which are not unique, make h'lam + b'nu a difference of large terms).
    gap = dot(z_abs, Q_z) + dot(absolute.dual, z_abs) + dot(absolute.primal, duals.abs())
    return eps * _amax(primal), eps * dual.amax(-1), eps * gap


def _amax(x: torch.Tensor) -> torch.Tensor:
    """Largest entry of the last dimension of a nonnegative tensor (0 when it is empty)."""
    return x.amax(-1) if x.shape[-1] else x.new_zeros(x.shape[:-1])
