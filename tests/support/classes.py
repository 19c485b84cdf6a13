"""Seeded generators of every class of QP a user can pose, for the randomized suite
(``tests/test_random_classes.py``).

Each generator ``gen(batch, n, seed)`` returns a ``ClassBatch``: ``batch`` problems of one shape
as the eight inputs of ``solve_qp`` in float64 (None = block absent), the kind of answer they
have ("solvable", "primal_infeasible" or "dual_infeasible"), what identifies the answer of a
solvable problem ("z" when the minimizer is unique, "objective" when it may not be) and, for the
ill-conditioned class, the condition number of each problem's Q (None elsewhere).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .problems import random_qp

SOLVABLE, PRIMAL_INFEASIBLE, DUAL_INFEASIBLE = "solvable", "primal_infeasible", "dual_infeasible"
F64 = torch.float64


@dataclasses.dataclass
class ClassBatch:
    Q: torch.Tensor
    p: torch.Tensor
    G: torch.Tensor | None
    h: torch.Tensor | None
    A: torch.Tensor | None
    b: torch.Tensor | None
    lb: torch.Tensor | None
    ub: torch.Tensor | None
    kind: str
    compare: str = "z"  # "z" (unique minimizer) or "objective" (z may not be unique)
    cond: torch.Tensor | None = None  # (B,) cond(Q) of the ill-conditioned class
    z_exact: torch.Tensor | None = None  # (B, n) the solution, where built from it

    @property
    def data(self):
        return (self.Q, self.p, self.G, self.h, self.A, self.b, self.lb, self.ub)

    def problem(self, i: int):
        """Problem ``i`` of the batch, unbatched, as the 8 inputs."""
        return tuple(None if x is None else x[i] for x in self.data)


def _gen(seed: int):
    g = torch.Generator().manual_seed(seed)
    return (
        lambda *s: torch.randn(*s, generator=g, dtype=F64),
        lambda *s: torch.rand(*s, generator=g, dtype=F64),
    )


def _mv(M, x):
    return (M @ x.unsqueeze(-1)).squeeze(-1)


def _orthogonal(randn, B, n):
    return torch.linalg.qr(randn(B, n, n))[0]


def _psd(randn, B, n, rank):
    """Q = M M'/n of the given rank (PSD, singular when rank < n)."""
    M = randn(B, n, rank)
    return M @ M.mT / n


def _feasible_ineq(randn, rand, B, n, m, z0):
    """G random, h = G z0 + slack (> 0): z0 strictly feasible."""
    G = randn(B, m, n)
    return G, _mv(G, z0) + rand(B, m) + 0.1


# --- solvable ---------------------------------------------------------------------------------


def strictly_convex(B, n, seed):
    """Strongly convex Q, random inequalities (about half active) and equalities."""
    Q, p, G, h, A, b = random_qp(B, n, 2 * n, max(1, n // 3), seed=seed)
    return ClassBatch(Q, p, G, h, A, b, None, None, SOLVABLE)


def psd_box(B, n, seed):
    """Rank-deficient PSD Q (rank n/2), random p, inequalities and a box: bounded, the
    minimizer may not be unique."""
    randn, rand = _gen(seed)
    Q = _psd(randn, B, n, n // 2)
    z0 = 0.5 * (2 * rand(B, n) - 1)
    G, h = _feasible_ineq(randn, rand, B, n, n // 2, z0)
    lb, ub = -1 - rand(B, n), 1 + rand(B, n)
    return ClassBatch(Q, 5 * randn(B, n), G, h, None, None, lb, ub, SOLVABLE, "objective")


def lp_box(B, n, seed):
    """Q = 0 (an LP), inequalities, an equality and a box: bounded, z may not be unique."""
    randn, rand = _gen(seed)
    Q = torch.zeros(B, n, n, dtype=F64)
    z0 = 0.5 * (2 * rand(B, n) - 1)
    G, h = _feasible_ineq(randn, rand, B, n, n, z0)
    A = randn(B, 1, n)
    b = _mv(A, z0)
    lb, ub = -1 - rand(B, n), 1 + rand(B, n)
    return ClassBatch(Q, randn(B, n), G, h, A, b, lb, ub, SOLVABLE, "objective")


def _from_solution(randn, rand, Q, m, neq, active=0.5):
    """G, h, A, b, p for which z (random) is THE solution of the strictly convex Q: a fraction
    ``active`` of the rows active with lam in [0.5, 1.5], the others with slack in [0.5, 1.5];
    nu random. Returns (p, G, h, A, b, z, lam, nu)."""
    B, n = Q.shape[0], Q.shape[-1]
    z, G, A = randn(B, n), randn(B, m, n), randn(B, neq, n)
    on = rand(B, m) < active
    zero = torch.zeros(B, m, dtype=F64)
    lam = torch.where(on, 0.5 + rand(B, m), zero)
    s = torch.where(on, zero, 0.5 + rand(B, m))
    nu = randn(B, neq)
    p = -_mv(Q, z) - _mv(G.mT, lam) - _mv(A.mT, nu)
    return p, G, _mv(G, z) + s, A, _mv(A, z), z


def _spd(randn, B, n):
    M = randn(B, n, n)
    return M @ M.mT / n + 0.1 * torch.eye(n, dtype=F64)


def duplicated_rows(B, n, seed):
    """Built from its solution z*: every other inequality row duplicated exactly, and the
    first row again times 2 (h likewise): the active rows are linearly dependent, the duals
    not unique, z* unique."""
    randn, rand = _gen(seed)
    Q = _spd(randn, B, n)
    p, G, h, A, b, z = _from_solution(randn, rand, Q, n, max(1, n // 4), active=0.6)
    G = torch.cat([G, G[:, ::2], 2 * G[:, :1]], 1)
    h = torch.cat([h, h[:, ::2], 2 * h[:, :1]], 1)
    return ClassBatch(Q, p, G, h, A, b, None, None, SOLVABLE, z_exact=z)


def weakly_active(B, n, seed):
    """Built from a known solution z*: a third of the rows strictly active (s = 0, lam > 0), a
    third weakly active (s = 0 AND lam = 0: strict complementarity fails), the rest inactive;
    plus equalities and a bound weakly active at z*."""
    randn, rand = _gen(seed)
    Q = _spd(randn, B, n)
    m, neq = n, max(1, n // 4)
    z = randn(B, n)
    G = randn(B, m, n)
    role = torch.arange(m) % 3  # 0 active, 1 weakly active, 2 inactive
    lam = torch.where(role == 0, 0.5 + rand(B, m), torch.zeros(B, m, dtype=F64))
    s = torch.where(role == 2, 0.5 + rand(B, m), torch.zeros(B, m, dtype=F64))
    h = _mv(G, z) + s
    A = randn(B, neq, n)
    b = _mv(A, z)
    nu = randn(B, neq)
    # A weakly active lower bound on z_0 (at z*, zero dual) and an inactive upper bound.
    lb = torch.full((B, n), -math.inf, dtype=F64)
    lb[:, 0] = z[:, 0]
    ub = z + 1 + rand(B, n)
    p = -_mv(Q, z) - _mv(G.mT, lam) - _mv(A.mT, nu)
    return ClassBatch(Q, p, G, h, A, b, lb, ub, SOLVABLE, z_exact=z)


def rank_deficient_A(B, n, seed):
    """Built from its solution z*: A with a duplicated row and a row that is a combination of
    two others (consistent b): A is rank deficient, nu not unique, z* unique."""
    randn, rand = _gen(seed)
    Q = _spd(randn, B, n)
    p, G, h, A, b, z = _from_solution(randn, rand, Q, n, max(2, n // 3))
    A = torch.cat([A, A[:, :1], A[:, :1] - 2 * A[:, 1:2]], 1)
    b = torch.cat([b, b[:, :1], b[:, :1] - 2 * b[:, 1:2]], 1)
    return ClassBatch(Q, p, G, h, A, b, None, None, SOLVABLE, z_exact=z)


def ill_conditioned(B, n, seed):
    """Q = U diag(logspace(0, -k)) U' with cond(Q) = 10^k, k uniform in [6, 8]; built from its
    solution z* with n/2 inequalities (about half active) and an equality."""
    randn, rand = _gen(seed)
    k = 6 + 2 * rand(B)
    t = torch.linspace(0, 1, n, dtype=F64)
    eig = 10.0 ** (-k[:, None] * t)
    U = _orthogonal(randn, B, n)
    Q = U @ torch.diag_embed(eig) @ U.mT
    Q = (Q + Q.mT) / 2
    p, G, h, A, b, z = _from_solution(randn, rand, Q, n // 2, 1)
    return ClassBatch(Q, p, G, h, A, b, None, None, SOLVABLE, cond=10.0**k, z_exact=z)


def _scaled(B, n, seed, factor):
    c = strictly_convex(B, n, seed)
    # A box that holds the feasible point random_qp builds (randn: |z0_i| < 6).
    lb, ub = -6 * torch.ones(B, n, dtype=F64), 6 * torch.ones(B, n, dtype=F64)
    Q, p, G, h, A, b = (x * factor for x in (c.Q, c.p, c.G, c.h, c.A, c.b))
    return ClassBatch(Q, p, G, h, A, b, lb, ub, SOLVABLE)


def tiny_scale(B, n, seed):
    """A strictly convex problem (plus a box) with all of Q, p, G, h, A, b times 1e-4 (the
    minimizer is that of the unscaled problem)."""
    return _scaled(B, n, seed, 1e-4)


def huge_scale(B, n, seed):
    """The same times 1e4."""
    return _scaled(B, n, seed, 1e4)


# --- infeasible / unbounded -------------------------------------------------------------------


def infeasible_inequalities(B, n, seed):
    """G = [G0; -c'G0], h = [h0; -c'h0 - 1] with c >= 0: (c, 1) is a Farkas certificate."""
    randn, rand = _gen(seed)
    Q, p = _psd(randn, B, n, n) + 0.1 * torch.eye(n, dtype=F64), randn(B, n)
    m = n // 2 + 1
    G0, h0 = randn(B, m, n), randn(B, m)
    c = rand(B, m)
    G = torch.cat([G0, -_mv(G0.mT, c).unsqueeze(1)], 1)
    h = torch.cat([h0, (-(c * h0).sum(-1) - 1).unsqueeze(1)], 1)
    return ClassBatch(Q, p, G, h, None, None, None, None, PRIMAL_INFEASIBLE)


def infeasible_equalities(B, n, seed):
    """A row of A repeated with a different b (and feasible inequalities)."""
    randn, rand = _gen(seed)
    Q, p = _psd(randn, B, n, n) + 0.1 * torch.eye(n, dtype=F64), randn(B, n)
    z0 = randn(B, n)
    G, h = _feasible_ineq(randn, rand, B, n, n // 2, z0)
    A0 = randn(B, max(1, n // 4), n)
    b0 = _mv(A0, z0)
    A = torch.cat([A0, A0[:, :1]], 1)
    b = torch.cat([b0, b0[:, :1] + 0.5 + rand(B, 1)], 1)
    return ClassBatch(Q, p, G, h, A, b, None, None, PRIMAL_INFEASIBLE)


def infeasible_crossed_bounds(B, n, seed):
    """lb > ub on one coordinate (by 0.5..1.5), the others a normal box."""
    randn, rand = _gen(seed)
    Q, p = _psd(randn, B, n, n) + 0.1 * torch.eye(n, dtype=F64), randn(B, n)
    lb, ub = -1 - rand(B, n), 1 + rand(B, n)
    i = torch.randint(n, (B,), generator=torch.Generator().manual_seed(seed + 1))
    rows = torch.arange(B)
    lb[rows, i] = ub[rows, i] + 0.5 + rand(B)
    return ClassBatch(Q, p, None, None, None, None, lb, ub, PRIMAL_INFEASIBLE)


def infeasible_bounds_equality(B, n, seed):
    """0 <= z <= u (u in [0.5, 1]) against sum(z) = sum(u) + 0.5..1.5."""
    randn, rand = _gen(seed)
    Q, p = _psd(randn, B, n, n) + 0.1 * torch.eye(n, dtype=F64), randn(B, n)
    lb = torch.zeros(B, n, dtype=F64)
    ub = 0.5 + 0.5 * rand(B, n)
    A = torch.ones(B, 1, n, dtype=F64)
    b = ub.sum(-1, keepdim=True) + 0.5 + rand(B, 1)
    return ClassBatch(Q, p, None, None, A, b, lb, ub, PRIMAL_INFEASIBLE)


def _unbounded(B, n, seed, rank):
    randn, rand = _gen(seed)
    # The ray d = +-e_k: a coordinate direction, so that Qd = 0, Ad = 0 hold exactly in float32
    # too (a rounded random null vector would leave the float32 problem curvature ~1e-7).
    k = torch.randint(n, (B,), generator=torch.Generator().manual_seed(seed + 1))
    sign = torch.where(rand(B) < 0.5, -1.0, 1.0).to(F64)
    d = torch.zeros(B, n, dtype=F64)
    d[torch.arange(B), k] = sign
    keep = (d == 0).to(F64)  # zeroes row/column k
    Q = _psd(randn, B, n, rank) if rank else torch.zeros(B, n, n, dtype=F64)
    Q = Q * keep.unsqueeze(-1) * keep.unsqueeze(-2)
    p = randn(B, n) * keep - d  # p'd = -1
    # Constraints that do not block d: rows with G d <= 0 (orthogonal to d, or against it).
    m = n // 2
    G = randn(B, m, n) * keep.unsqueeze(-2)
    G[:, 0] -= d  # one row with G d = -1 < 0
    h = rand(B, m) + 0.1  # z = 0 strictly feasible
    A = randn(B, 1, n) * keep.unsqueeze(-2)
    b = torch.zeros(B, 1, dtype=F64)
    # Bounds only where they do not block d: lb where d >= 0, ub where d <= 0.
    inf = torch.full((B, n), math.inf, dtype=F64)
    lb = torch.where(d >= 0, -1 - rand(B, n), -inf)
    ub = torch.where(d <= 0, 1 + rand(B, n), inf)
    return ClassBatch(Q, p, G, h, A, b, lb, ub, DUAL_INFEASIBLE)


def unbounded_psd(B, n, seed):
    """Q PSD of rank n/2 with a null vector d = +-e_k, p'd < 0, and inequalities, an equality and
    one-sided bounds that all leave d free: the objective is unbounded below along d."""
    return _unbounded(B, n, seed, n // 2)


def unbounded_lp(B, n, seed):
    """The same with Q = 0 (an unbounded LP)."""
    return _unbounded(B, n, seed, 0)


CLASSES = {
    f.__name__: f
    for f in (
        strictly_convex,
        psd_box,
        lp_box,
        duplicated_rows,
        weakly_active,
        rank_deficient_A,
        ill_conditioned,
        tiny_scale,
        huge_scale,
        infeasible_inequalities,
        infeasible_equalities,
        infeasible_crossed_bounds,
        infeasible_bounds_equality,
        unbounded_psd,
        unbounded_lp,
    )
}
