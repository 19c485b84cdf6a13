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
    point_norm: torch.Tensor  # max(|z|, |lam|, |nu|)       (B,)
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
    floors = rounding_floors(problem, z, lam, nu)
    point_norm = torch.maximum(inf_norm(z), inf_norm(lam))
    if nu is not None:
        point_norm = torch.maximum(point_norm, inf_norm(nu))
    return Residuals(
        r_dual, r_eq, r_ineq, complementarity / count, violation, inf_norm(r_dual), gap.abs(),
        complementarity, point_norm,
        primal_scale, dual_scale, gap_scale, *floors, Qz, Cz, Ct_lam, Az, At_nu,
    )  # fmt: skip


def rounding_floors(problem: Problem, z, lam, nu):
    """(primal, dual, gap) floors: the rounding error of computing the residuals at an iterate.

    Each entry of ``Qz`` carries a rounding error of about ``eps * (|Q| |z|)_i``, and ``z'Qz``
    one of ``eps * |z|'|Q||z|``: residuals below these cannot be computed, let alone reached,
    whatever the algorithm. With an ill-conditioned Q the solution is large and these floors
    exceed ``eps_rel`` times the residuals' scales (float32: the paper's OptNetLayer at its
    initialization, cond(Q) ~ 1e6). The products with G (and Az) enter through absolute row
    and column sums and the largest entry of the vector (cheap; up to n times the floor).
    """
    eps = torch.finfo(z.dtype).eps
    absolute, z_abs = problem.absolute, z.abs()
    Q_z = matvec(absolute.Q, z_abs)
    lam_max, z_max = inf_norm(lam).unsqueeze(-1), inf_norm(z).unsqueeze(-1)
    dual = Q_z + absolute.C_cols * lam_max + problem.p.abs()
    _, lam_lb, lam_ub = problem.split_rows(lam)
    for bound in (lam_lb, lam_ub):
        if bound is not None:
            dual = dual + bound.abs()
    primal = absolute.C_rows * problem.mask * z_max + problem.h_all.abs()
    primal = inf_norm(primal)
    if absolute.A_rows is not None:
        dual = dual + matvec(absolute.A.mT, nu.abs())
        primal = torch.maximum(primal, inf_norm(absolute.A_rows * z_max + problem.b.abs()))
    return eps * primal, eps * inf_norm(dual), eps * dot(z_abs, Q_z)
