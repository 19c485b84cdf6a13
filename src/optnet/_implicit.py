"""Implicit differentiation of the KKT conditions at the solution (Amos & Kolter 2017, eq. 7-8).

With F(z, lam, nu; theta) = [Qz + p + C'lam + A'nu;  diag(lam)(Cz - h);  Az - b] = 0 at the
solution, a loss with cotangents g = (g_z, g_lam, g_nu) has gradient -d' dF/dtheta, where
d solves the transposed KKT system J' d = g. Eliminating d_lam with the slacks s = h - Cz gives
the same reduced matrix ``H = Q + C' diag(lam/s) C`` as the forward Newton steps. The forward
pass factors it once at the solution (only when a gradient will be needed) and the backward
pass reuses that factor: it factors nothing.

At the solution the weight lam/s of an active constraint is ~1/tolerance, which would make H
so ill-conditioned that a float64 solve keeps only ~4 digits. The weights are capped at
``max(1, |Q|) / sqrt(eps)``: the capped system is a penalty approximation of "active rows hold
with equality" whose error (~sqrt(eps) relative) stays below the solve's round-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _kkt
from ._problem import Problem


@dataclass(frozen=True)
class Adjoint:
    d_z: torch.Tensor  # (B, n)
    y: torch.Tensor  # diag(lam) d_lam, (B, m_all): the adjoint of the constraint rows
    d_nu: torch.Tensor | None  # (B, neq)


def adjoint_weights(problem: Problem, s: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """lam / s on existing rows, capped (see the module docstring)."""
    eps = torch.finfo(s.dtype).eps
    return torch.minimum(lam / s, problem.q_scale().unsqueeze(-1) / eps**0.5) * problem.mask


def factor_at_solution(problem: Problem, s, lam, reg, refine_steps: int) -> _kkt.KKTFactor:
    """The factorization the backward pass will reuse; computed once, in the forward pass."""
    return _kkt.factor(problem, adjoint_weights(problem, s, lam), reg, refine_steps)


def adjoint(problem: Problem, factor: _kkt.KKTFactor, s, lam, g_z, g_lam, g_nu) -> Adjoint:
    """Solve J' d = (g_z, g_lam, g_nu) with the saved factor."""
    w = adjoint_weights(problem, s, lam)
    r1 = g_z + problem.ineq_t(w * g_lam)
    d_z, d_nu = _kkt.solve(factor, r1, g_nu)
    y = w * (problem.ineq(d_z) - g_lam)
    return Adjoint(d_z, y, d_nu)


def parameter_gradients(problem: Problem, adj: Adjoint, z, lam, nu, needed: dict[str, bool]):
    """Batched gradients dQ, dp, dG, dh, dA, db, dlb, dub (None where not needed or absent)."""
    out = dict.fromkeys(needed)
    d_z = adj.d_z
    y_g, y_lb, y_ub = problem.split_rows(adj.y)
    lam_g = problem.split_rows(lam)[0]
    # Each sum of two outer products is one batched (k x 2) @ (2 x n) product: a single
    # matrix-sized result instead of four matrix-sized temporaries.
    if needed["Q"]:
        out["Q"] = _outer2(d_z, z, z, d_z, -0.5)  # -(d_z z' + z d_z') / 2
    if needed["p"]:
        out["p"] = -d_z
    if needed["G"] and y_g is not None:
        out["G"] = _outer2(lam_g, d_z, y_g, z, -1.0)  # -(lam d_z' + y z')
    if needed["h"] and y_g is not None:
        out["h"] = y_g
    if needed["A"] and adj.d_nu is not None:
        out["A"] = _outer2(adj.d_nu, z, nu, d_z, -1.0)  # -(d_nu z' + nu d_z')
    if needed["b"] and adj.d_nu is not None:
        out["b"] = adj.d_nu
    if needed["lb"] and y_lb is not None:
        out["lb"] = -y_lb  # the row is -z <= -lb
    if needed["ub"] and y_ub is not None:
        out["ub"] = y_ub
    return out


def _outer2(a, b, c, d, scale: float) -> torch.Tensor:
    """scale * (a b' + c d') for batched vectors: (B, k), (B, n) -> (B, k, n)."""
    left = torch.stack((a, c), -1)  # (B, k, 2)
    right = torch.stack((b, d), -2)  # (B, 2, n)
    return torch.bmm(left, right).mul_(scale)
