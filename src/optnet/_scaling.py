"""Ruiz equilibration: rescale variables, rows and cost so the KKT matrix has unit-size columns.

With ``z = D zs``, general rows scaled by ``E_G``/``E_A`` and the cost by ``c``::

    Qs = c D Q D,  ps = c D p,  Gs = E_G G D,  hs = E_G h,  As = E_A A D,  bs = E_A b,
    lbs = lb / D,  ubs = ub / D        (bounds stay diagonal)

and the solution maps back as ``z = D zs``, ``lam = E_G lams / c``, ``nu = E_A nus / c``,
``lam_lb = lams_lb / (c D)``, ``s = sG / E_G`` (bound slacks: ``D sb``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._problem import Problem, concat_rows

_CLAMP = (1e-4, 1e4)


@dataclass(frozen=True)
class Scaling:
    D: torch.Tensor  # (B, n) variable scaling
    E_G: torch.Tensor | None  # (B, m)
    E_A: torch.Tensor | None  # (B, neq)
    c: torch.Tensor  # (B, 1) cost scaling

    def row_scale(self, problem: Problem) -> torch.Tensor:
        """Scaling of each stacked inequality row: E_G for G rows, 1/D for bound rows."""
        parts = [self.E_G]
        if problem.lb is not None:
            parts.append(1 / self.D)
        if problem.ub is not None:
            parts.append(1 / self.D)
        return concat_rows(parts, problem.p)

    def unscale(self, problem: Problem, z, s, lam, nu):
        """Map an iterate of the scaled problem back to the original one."""
        rows = self.row_scale(problem)
        z = self.D * z
        s = s / rows
        lam = lam * rows / self.c
        nu = None if nu is None else nu * self.E_A / self.c
        return z, s, lam, nu


def _col_norms(M: torch.Tensor) -> torch.Tensor:
    return M.abs().amax(-2)


def equilibrate(problem: Problem, iters: int) -> tuple[Problem, Scaling]:
    """Ruiz-scale ``problem`` (returns the scaled problem and the scaling)."""
    B, n = problem.batch, problem.n
    Q, p, G, A = (x if x is None else x.expand(B, *x.shape[1:]) for x in
                  (problem.Q, problem.p, problem.G, problem.A))  # fmt: skip
    D = p.new_ones(B, n)
    E_G = None if G is None else p.new_ones(B, G.shape[-2])
    E_A = None if A is None else p.new_ones(B, A.shape[-2])
    lo, hi = _CLAMP
    for _ in range(iters):
        Qs = D.unsqueeze(-1) * Q * D.unsqueeze(-2)
        col = _col_norms(Qs)
        if G is not None:
            Gs = E_G.unsqueeze(-1) * G * D.unsqueeze(-2)
            col = torch.maximum(col, _col_norms(Gs))
            E_G = E_G / Gs.abs().amax(-1).clamp_min(1e-30).sqrt().clamp(lo, hi)
        if A is not None:
            As = E_A.unsqueeze(-1) * A * D.unsqueeze(-2)
            col = torch.maximum(col, _col_norms(As))
            E_A = E_A / As.abs().amax(-1).clamp_min(1e-30).sqrt().clamp(lo, hi)
        # Columns without any entry (a variable held only by its bounds) keep their scale.
        col = torch.where(col > 0, col, torch.ones_like(col))
        D = (D / col.sqrt().clamp(lo, hi)).clamp(lo, hi)
    Qs = D.unsqueeze(-1) * Q * D.unsqueeze(-2)
    cost = torch.maximum(_col_norms(Qs).mean(-1), (D * p).abs().amax(-1))
    c = (1 / cost.clamp_min(1e-30)).clamp(lo, hi).unsqueeze(-1)

    def rows(E, M):
        return None if M is None else E.unsqueeze(-1) * M * D.unsqueeze(-2)

    h = None if problem.h is None else E_G * problem.h
    b = None if problem.b is None else E_A * problem.b
    lb = None if problem.lb is None else problem.lb / D
    ub = None if problem.ub is None else problem.ub / D
    scaled = Problem(
        Q=c.unsqueeze(-1) * Qs, p=c * D * p, G=rows(E_G, G), h=h, A=rows(E_A, A), b=b,
        lb=lb, ub=ub, mask=problem.mask,
        h_all=concat_rows([h, None if lb is None else -lb, ub], p) * problem.mask, batch=B,
    )  # fmt: skip
    return scaled, Scaling(D, E_G, E_A, c)
