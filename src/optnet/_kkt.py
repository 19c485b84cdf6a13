"""The one place that factors the Newton (KKT) system; forward iterations and backward reuse it.

Every Newton system of the interior-point method, and the adjoint system of the backward pass,
reduces by eliminating slacks and inequality duals to::

    [ H   A' ] [x]   [r1]
    [ A   0  ] [y] = [r2],      H = Q + C' diag(w) C

which is solved by block elimination with two batched Cholesky factorizations: of
``H + rho I`` and of the Schur complement ``A (H + rho I)^-1 A' + delta I``. The small static
regularizations ``rho, delta`` keep singular Q (linear programs) and redundant equality rows
factorable; iterative refinement against the unregularized matrix removes their bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._problem import Problem, matvec


@dataclass(frozen=True)
class SPDFactor:
    """Factor of a Jacobi-scaled SPD matrix: M + reg I = D (L L') D, D = diag(d).

    Keeps ``L^-1`` (one triangular solve with k right-hand sides per factorization) so that the
    many solves of an iteration are batched matrix-vector products: batched triangular solves
    with one right-hand side are latency-bound on GPUs and slow on CPUs. The inverse of a
    triangular factor is accurate to about cond(L) * eps, and the refinement of every Newton
    solve corrects what is lost.
    """

    L_inv: torch.Tensor  # (B, k, k) lower triangular
    d: torch.Tensor  # (B, k)
    ok: torch.Tensor  # (B,) bool

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """M^-1 rhs for rhs of shape (B, k) or (B, k, c)."""
        if rhs.dim() == self.d.dim():
            y = matvec(self.L_inv, rhs / self.d)
            return matvec(self.L_inv.mT, y) / self.d
        d = self.d.unsqueeze(-1)
        return self.L_inv.mT @ (self.L_inv @ (rhs / d)) / d


def factor_spd(M: torch.Tensor, reg: torch.Tensor) -> SPDFactor:
    """Factor M + reg I (reg (B,) absolute) after symmetric diagonal scaling.

    Scaling to a unit diagonal first makes the round-off shift relative to each row's own
    size, so a huge weight of one active constraint does not perturb the other directions.
    """
    size = M.shape[-1]
    d = (M.diagonal(dim1=-2, dim2=-1) + reg.unsqueeze(-1)).clamp_min(torch.finfo(M.dtype).tiny)
    d = d.sqrt()
    inv_d = 1 / d
    scaled = M * inv_d.unsqueeze(-1) * inv_d.unsqueeze(-2)  # a fresh tensor: safe to edit
    shift = reg.unsqueeze(-1) * inv_d.square() + size**0.5 * torch.finfo(M.dtype).eps
    scaled.diagonal(dim1=-2, dim2=-1).add_(shift)
    L, info = torch.linalg.cholesky_ex(scaled)
    ok = info == 0
    # A failed factor holds NaN or garbage; substitute identity so nothing non-finite spreads.
    eye = torch.eye(size, dtype=M.dtype, device=M.device)
    L = torch.where(ok[:, None, None], L, eye)
    L_inv = torch.linalg.solve_triangular(L, eye.expand_as(L), upper=False)
    return SPDFactor(L_inv, d, ok)


@dataclass(frozen=True)
class KKTFactor:
    H: torch.Tensor  # (B, n, n) unregularized reduced Hessian, for refinement
    H_factor: SPDFactor  # of H + rho I
    A: torch.Tensor | None  # (B|1, neq, n)
    Hinv_At: torch.Tensor | None  # (B, n, neq) (H + rho I)^-1 A'
    S_factor: SPDFactor | None  # of A (H + rho I)^-1 A' + delta I
    refine_steps: int

    @property
    def ok(self) -> torch.Tensor:
        ok = self.H_factor.ok
        return ok if self.S_factor is None else ok & self.S_factor.ok


def factor(problem: Problem, w: torch.Tensor, reg: torch.Tensor, refine_steps: int) -> KKTFactor:
    """Factor the reduced KKT matrix for inequality weights ``w`` (B, m_all).

    ``reg`` (B,) is the static regularization (rho = delta) per problem.
    """
    H = problem.Q + problem.ineq_gram(w)
    if H.shape[0] != w.shape[0]:
        H = H.expand(w.shape[0], -1, -1)
    H_factor = factor_spd(H, reg)
    if not problem.has_eq:
        return KKTFactor(H, H_factor, None, None, None, refine_steps)
    A = problem.A
    Hinv_At = H_factor.solve(A.mT.expand(H.shape[0], -1, -1))
    S_factor = factor_spd(A @ Hinv_At, reg)
    return KKTFactor(H, H_factor, A, Hinv_At, S_factor, refine_steps)


def solve_regularized(f: KKTFactor, r1: torch.Tensor, r2: torch.Tensor | None):
    x = f.H_factor.solve(r1)
    if f.A is None:
        return x, None
    # (A Hr^-1 A' + delta I) y = A Hr^-1 r1 - r2 ; x = Hr^-1 (r1 - A'y)
    y = f.S_factor.solve(matvec(f.A, x) - r2)
    x = x - matvec(f.Hinv_At, y)
    return x, y


def solve(f: KKTFactor, r1: torch.Tensor, r2: torch.Tensor | None = None):
    """Solve ``[H A'; A 0] [x; y] = [r1; r2]`` with the factor ``f`` (no new factorization).

    Returns ``(x, y)``; ``y`` is None without equality constraints.
    """
    x, y = solve_regularized(f, r1, r2)
    for _ in range(f.refine_steps):
        e1 = r1 - matvec(f.H, x)
        e2 = None
        if f.A is not None:
            e1 = e1 - matvec(f.A.mT, y)
            e2 = r2 - matvec(f.A, x)
        dx, dy = solve_regularized(f, e1, e2)
        x = x + dx
        if y is not None:
            y = y + dy
    return x, y
