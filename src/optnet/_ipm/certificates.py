"""Infeasibility: the tests for certificates, and the rays returned as certificates."""

from __future__ import annotations

import torch

from .._problem import Problem, dot, inf_norm
from .._status import QPStatus
from .residuals import Residuals, residuals


def infeasibility_flags(
    problem: Problem, z, lam, nu, eps: tuple[float, float], res: Residuals | None = None
):
    """Per-problem flags for rays proving primal or dual infeasibility.

    Primal: y = (lam, nu) / ||(lam, nu)||_inf with ||C'lam + A'nu|| <= eps and h'lam + b'nu < -eps
    (scaled by the data). Dual: d = z / ||z||_inf with Qd ~ 0, Ad ~ 0, Cd <= ~0 and p'd < -eps.
    ``eps``: the tolerances of the (primal, dual) tests. ``res``, the residuals at
    (z, lam, nu), saves recomputing the products with the data.
    """
    eps, eps_dual = eps
    if res is None or res.Qz is None:
        res = residuals(problem, z, torch.ones_like(lam), lam, nu)
    mask = problem.mask
    h_all = problem.h_all * mask
    t = inf_norm(lam)
    Aty = res.Ct_lam
    hy = dot(h_all, lam)
    if nu is not None:
        t = torch.maximum(t, inf_norm(nu))
        Aty = Aty + res.At_nu
        hy = hy + dot(problem.b, nu)
    t = t.clamp_min(torch.finfo(z.dtype).tiny)
    data_scale = torch.maximum(inf_norm(h_all), inf_norm(problem.p)).clamp_min(1.0)
    primal_infeasible = (inf_norm(Aty) <= eps * t) & (hy < -eps * t * data_scale) & (t > 1 / eps)

    # d = z / ||z||: the products with d are those with z, scaled.
    z_norm = inf_norm(z)
    inv_norm = 1 / z_norm.clamp_min(torch.finfo(z.dtype).tiny)
    eps = eps_dual
    ok = (inf_norm(res.Qz) * inv_norm <= eps * problem.q_scale()) & (
        dot(problem.p, z) * inv_norm < -eps * data_scale
    )
    if problem.m_all:
        ok = ok & ((res.Cz * mask).amax(-1) * inv_norm <= eps * data_scale)
    if problem.has_eq:
        ok = ok & (inf_norm(res.Az) * inv_norm <= eps * data_scale)
    dual_infeasible = ok & (z_norm > 1 / eps)
    return primal_infeasible, dual_infeasible


def crossed_bounds(problem: Problem) -> torch.Tensor | None:
    """(B, n) bool: coordinates with lb > ub (both finite), or None without both bounds."""
    if problem.lb is None or problem.ub is None:
        return None
    lb_mask, ub_mask = problem.split_rows(problem.mask)[1:]
    return (problem.lb > problem.ub) & (lb_mask > 0) & (ub_mask > 0)


def crossed_bounds_status(problem: Problem, status: torch.Tensor) -> torch.Tensor:
    """lb > ub is infeasible before any iteration."""
    crossed = crossed_bounds(problem)
    if crossed is None:
        return status
    return torch.where(crossed.any(-1), int(QPStatus.PRIMAL_INFEASIBLE), status)


def rays(problem: Problem, z, lam, nu, status: torch.Tensor):
    """The certificates of a finished solve: (dual ray (lam, nu), primal ray z), normalized.

    Zero for problems without the matching infeasibility status.
    """
    tiny = torch.finfo(z.dtype).tiny
    cert_dual = torch.cat([lam] + ([nu] if nu is not None else []), -1)
    cert_dual = cert_dual / inf_norm(cert_dual).clamp_min(tiny).unsqueeze(-1)
    cert_dual = cert_dual * (status == QPStatus.PRIMAL_INFEASIBLE).unsqueeze(-1)
    crossed = crossed_bounds(problem)
    if crossed is not None:
        # lam_lb = lam_ub = 1 on a crossed coordinate: -lb + ub < 0 with a zero combination.
        ray = crossed.to(z.dtype).expand(z.shape[0], -1)
        m_g = 0 if problem.G is None else problem.G.shape[-2]
        n = problem.n
        unit = torch.cat([torch.zeros_like(cert_dual[:, :m_g]), ray, ray], -1)
        unit = torch.cat([unit, torch.zeros_like(cert_dual[:, m_g + 2 * n :])], -1)
        cert_dual = torch.where(crossed.any(-1, keepdim=True), unit, cert_dual)
    cert_primal = z / inf_norm(z).clamp_min(tiny).unsqueeze(-1)
    cert_primal = cert_primal * (status == QPStatus.DUAL_INFEASIBLE).unsqueeze(-1)
    return cert_dual, cert_primal
