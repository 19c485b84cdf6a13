"""Random QP generators for the tests."""

from __future__ import annotations

import torch


def _samplers(batch: int | None, seed: int):
    """Seeded float64 ``randn(*shape)`` and ``rand(*shape)`` with the batch dimension in front."""
    g = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)

    def randn(*shape):
        return torch.randn(*lead, *shape, generator=g, dtype=torch.float64)

    def rand(*shape):
        return torch.rand(*lead, *shape, generator=g, dtype=torch.float64)

    return randn, rand


def _strongly_convex(randn, n: int) -> torch.Tensor:
    M = randn(n, n)
    return M @ M.mT / n + 0.1 * torch.eye(n, dtype=torch.float64)


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
    randn, rand = _samplers(batch, seed)
    Q = _strongly_convex(randn, n)
    z0 = randn(n)
    p = randn(n)
    G = h = A = b = None
    if m:
        G = randn(m, n)
        # Slack 0 for the constraints we want active at a nearby point, positive for the rest.
        s0 = rand(m)
        s0 = torch.where(s0 < active_fraction, torch.zeros_like(s0), s0)
        h = (G @ z0.unsqueeze(-1)).squeeze(-1) + s0 + 1e-2
        p = 3 * p
    if neq:
        A = randn(neq, n)
        b = (A @ z0.unsqueeze(-1)).squeeze(-1)
    return tuple(None if x is None else x.to(dtype) for x in (Q, p, G, h, A, b))


def infeasible_qp(
    batch: int | None, n: int, m: int, neq: int, *, bounds: bool = False, seed: int = 0
):
    """A strongly convex QP whose constraints are (mostly) inconsistent: (Q, p, G, h, A, b,
    lb, ub) in float64, with ``h`` shifted down so that the rows of G contradict each other;
    bounds ``[-U(0, 1), U(0, 1)]`` when ``bounds``. A/b are None when neq is 0."""
    randn, rand = _samplers(batch, seed)
    Q = _strongly_convex(randn, n)
    p, G, h = randn(n), randn(m, n), randn(m) - 1.0
    A = randn(neq, n) if neq else None
    b = randn(neq) if neq else None
    lb = ub = None
    if bounds:
        lb, ub = -rand(n), rand(n)
    return Q, p, G, h, A, b, lb, ub
