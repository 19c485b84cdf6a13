"""Implicit differentiation of the KKT conditions at the solution (Amos & Kolter 2017, eq. 7-8).

At a solution with strict complementarity the active constraints hold with equality and the
inactive ones have zero duals, so near the data (z, lam_a, nu) is the solution of the linear
system ``K [z; lam_a; nu] = [-p; h_a; b]`` with ``K = [Q C_a' A'; C_a 0 0; A 0 0]``. A loss
with cotangents g = (g_z, g_lam, g_nu) then has gradient ``d' (d rhs - dK x)`` where K d = g
(K is symmetric): the exact derivative. Forward mode is the same system: the tangent of the
solution along (dK, d rhs) is ``K^-1 (d rhs - dK x)``. The forward pass's polish factors K
(``_kkt.ActiveSetFactor``) and the backward and jvp reuse that factor: they factor nothing.
The formulas are differentiable tensor operations of their arguments (``_autograd`` makes the
solves with K differentiable too): derivatives of any order follow.

Which element of the generalized derivative at a weakly active constraint (lam_i = s_i = 0):
the polish's active set decides, a row is active when the interior point ended with
lam_i > s_i; the gradient is the one-sided derivative of that piece.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _kkt
from ._problem import Problem, matvec


@dataclass(frozen=True)
class Adjoint:
    d_z: torch.Tensor  # (B, n)
    y: torch.Tensor  # (B, m_all): the adjoint of the constraint rows, 0 on inactive ones
    d_nu: torch.Tensor | None  # (B, neq)


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


def tangent(problem: Problem, factor: _kkt.ActiveSetFactor, z, lam, nu, dQ, dG, dA, r1, r_lam, r2):
    """(dz, dlam, dnu) = K^-1 (dr - dK [z; lam; nu]) with dK from dQ, dG, dA (None: zero).

    The derivative of the solution of ``K [z; lam; nu] = r`` along the data's tangents and the
    right-hand side's ``dr = (r1, r_lam, r2)``. Q enters as its symmetric part, as in
    ``parameter_gradients``' dQ.
    """
    lam_g = problem.split_rows(lam)[0]
    if dQ is not None:
        dQ = _lift(dQ)
        r1 = r1 - matvec((dQ + dQ.mT) / 2, z)
    if dG is not None and lam_g is not None:
        dG = _lift(dG)
        r1 = r1 - matvec(dG.mT, lam_g)
        r_lam = r_lam - problem.stack_rows([matvec(dG, z), None, None], z)
    if dA is not None and nu is not None:
        dA = _lift(dA)
        r1 = r1 - matvec(dA.mT, nu)
        r2 = r2 - matvec(dA, z)
    return _kkt.solve_active(factor, r1, r_lam, r2)


def _lift(M: torch.Tensor) -> torch.Tensor:
    """A matrix tangent as (B|1, r, k)."""
    return M if M.dim() == 3 else M.unsqueeze(0)


def _outer2(a, b, c, d, scale: float) -> torch.Tensor:
    """scale * (a b' + c d') for batched vectors: (B, k), (B, n) -> (B, k, n)."""
    left = torch.stack((a, c), -1)  # (B, k, 2)
    right = torch.stack((b, d), -2)  # (B, 2, n)
    return torch.bmm(left, right).mul_(scale)
