"""QPs with a chosen solution, and the exact derivative of their solution.

Accuracy needs a reference that no solver produced: pick z*, lam*, nu*, s* with strict
complementarity and derive h, b, p from the KKT conditions; the derivative of z* then follows
from the KKT system of the active set. The tests and the accuracy benchmark both use these.
"""

from __future__ import annotations

import torch


def known_solution_problem(batch: int, n: int, m: int, neq: int, seed: int):
    """((Q, p, G, h, A, b), (z, lam, nu, s)) in float64, all batched.

    At most (n - neq) / 2 constraints are active, so that the active rows are linearly
    independent and the duals are unique; active duals and inactive slacks lie in [0.5, 1.5].
    """
    g = torch.Generator().manual_seed(seed)
    d = torch.float64
    M = torch.randn(batch, n, n, generator=g, dtype=d)
    Q = M @ M.mT / n + 0.5 * torch.eye(n, dtype=d)
    G = torch.randn(batch, m, n, generator=g, dtype=d)
    A = torch.randn(batch, neq, n, generator=g, dtype=d)
    z = torch.randn(batch, n, generator=g, dtype=d)
    n_active = (n - neq) // 2
    active = torch.rand(batch, m, generator=g).argsort(-1).argsort(-1) < n_active
    lam = torch.where(active, 0.5 + torch.rand(batch, m, generator=g, dtype=d), 0)
    s = torch.where(active, 0, 0.5 + torch.rand(batch, m, generator=g, dtype=d))
    nu = torch.randn(batch, neq, generator=g, dtype=d)
    h = (G @ z.unsqueeze(-1)).squeeze(-1) + s
    b = (A @ z.unsqueeze(-1)).squeeze(-1)
    p = -(Q @ z.unsqueeze(-1) + G.mT @ lam.unsqueeze(-1) + A.mT @ nu.unsqueeze(-1)).squeeze(-1)
    return (Q, p, G, h, A, b), (z, lam, nu, s)


def active_set_gradients(Q, G, A, z, lam, nu, active, w) -> dict[str, torch.Tensor]:
    """Gradients of ``sum(w * z*)`` w.r.t. Q, p, G, h, A, b at a solution (float64, batched).

    With the active rows known and strictly complementary, z* solves the equality-constrained
    QP ``[Q G_a' A'; G_a 0 0; A 0 0] [z; lam_a; nu] = [-p; h_a; b]``, so its derivative is
    that of a linear system: with ``d = K^-T [w; 0; 0]``, ``dp = -d_z``, ``dh_a = d_lam``,
    ``db = d_nu``, ``dQ = -sym(d_z z')``, ``dG = -(lam d_z' + d_lam z')``,
    ``dA = -(nu d_z' + d_nu z')``. Inactive rows are identity rows ``lam_i = 0`` of K, so one
    dense batched solve covers problems with different active sets.
    """
    batch, n = z.shape
    m, neq = G.shape[-2], A.shape[-2]
    a = active.to(z.dtype)
    K = z.new_zeros(batch, n + m + neq, n + m + neq)
    K[:, :n, :n] = Q
    K[:, :n, n : n + m] = G.mT
    K[:, n : n + m, :n] = a.unsqueeze(-1) * G
    K[:, n : n + m, n : n + m] = torch.diag_embed(1.0 - a)
    K[:, :n, n + m :] = A.mT
    K[:, n + m :, :n] = A
    rhs = torch.cat([w, z.new_zeros(batch, m + neq)], -1)
    d = torch.linalg.solve(K.mT, rhs)
    d_z, d_lam, d_nu = d[:, :n], a * d[:, n : n + m], d[:, n + m :]

    def outer(x, y):
        return x.unsqueeze(-1) * y.unsqueeze(-2)

    return {
        "Q": -0.5 * (outer(d_z, z) + outer(z, d_z)),
        "p": -d_z,
        "G": -(outer(lam, d_z) + outer(d_lam, z)),
        "h": d_lam,
        "A": -(outer(nu, d_z) + outer(d_nu, z)),
        "b": d_nu,
    }
