"""Problem generators and an independent reference solver (Clarabel) for the tests."""

from __future__ import annotations

import numpy as np
import torch


def random_qp(
    batch: int | None,
    n: int,
    m: int,
    neq: int,
    *,
    dtype=torch.float64,
    seed: int = 0,
    active_fraction: float = 0.5,
):
    """A strictly feasible, strongly convex QP whose solution has some active constraints.

    Returns (Q, p, G, h, A, b) with G/h or A/b None when m or neq is 0.
    """
    g = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)

    def randn(*shape):
        return torch.randn(*lead, *shape, generator=g, dtype=torch.float64)

    M = randn(n, n)
    Q = M @ M.mT / n + 0.1 * torch.eye(n, dtype=torch.float64)
    z0 = randn(n)
    p = randn(n)
    G = h = A = b = None
    if m:
        G = randn(m, n)
        # Slack 0 for the constraints we want active at a nearby point, positive for the rest.
        s0 = torch.rand(*lead, m, generator=g, dtype=torch.float64)
        s0 = torch.where(s0 < active_fraction, torch.zeros_like(s0), s0)
        h = (G @ z0.unsqueeze(-1)).squeeze(-1) + s0 + 1e-2
        p = 3 * p
    if neq:
        A = randn(neq, n)
        b = (A @ z0.unsqueeze(-1)).squeeze(-1)
    return tuple(None if x is None else x.to(dtype) for x in (Q, p, G, h, A, b))


def reference_solve(Q, p, G=None, h=None, A=None, b=None, lb=None, ub=None):
    """Solve one unbatched QP with clarabel in float64; returns (z, lam, nu) as numpy arrays."""
    import clarabel
    from scipy import sparse

    Q, p = (np.asarray(x, dtype=np.float64) for x in (Q, p))
    n = p.shape[0]
    blocks_eq, rhs_eq, blocks_ineq, rhs_ineq = [], [], [], []
    if A is not None:
        blocks_eq.append(np.asarray(A, dtype=np.float64))
        rhs_eq.append(np.asarray(b, dtype=np.float64))
    if G is not None:
        h = np.asarray(h, dtype=np.float64)
        keep = np.isfinite(h)
        blocks_ineq.append(np.asarray(G, dtype=np.float64)[keep])
        rhs_ineq.append(h[keep])
    for bound, sign in ((lb, -1.0), (ub, 1.0)):
        if bound is not None:
            bound = np.asarray(bound, dtype=np.float64)
            keep = np.isfinite(bound)
            blocks_ineq.append(sign * np.eye(n)[keep])
            rhs_ineq.append(sign * bound[keep])
    rows = blocks_eq + blocks_ineq
    A_all = np.vstack(rows) if rows else np.zeros((0, n))
    rhs = np.concatenate(rhs_eq + rhs_ineq) if rows else np.zeros(0)
    neq = sum(x.shape[0] for x in blocks_eq)
    nineq = A_all.shape[0] - neq
    cones = []
    if neq:
        cones.append(clarabel.ZeroConeT(neq))
    if nineq:
        cones.append(clarabel.NonnegativeConeT(nineq))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-12
    solver = clarabel.DefaultSolver(
        sparse.csc_matrix(np.triu(Q)), p, sparse.csc_matrix(A_all), rhs, cones, settings
    )
    sol = solver.solve()
    assert str(sol.status) == "Solved", sol.status
    z = np.array(sol.x)
    y = np.array(sol.z)
    return z, y[neq:], y[:neq]
