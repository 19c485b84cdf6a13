"""Checking a QP layer: problems with a known solution and derivative, and a reference solver.

What optnet's own test suite and benchmarks measure against, public so that users can check
their setups the same way (like ``torch.testing``):

- ``known_solution_problem``: pick z*, lam*, nu*, s* with strict complementarity and derive
  h, b, p from the KKT conditions, so the solution is known without any solver;
- ``active_set_gradients``: the exact derivative of such a solution, from the KKT system of the
  active set (a dense solve, independent of optnet's backward);
- ``reference_solve``: an independent solver (Clarabel, float64 at 1e-12), and
  ``closest_feasible_reference``, the closest feasible problem's solution by two Clarabel solves.
  Clarabel and SciPy are the ``test`` extra: ``pip install 'optnet[test]'``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "active_set_gradients",
    "closest_feasible_reference",
    "known_solution_problem",
    "reference_solve",
]


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


def _float64(x) -> np.ndarray | None:
    return None if x is None else np.asarray(x, dtype=np.float64)


def reference_solve(
    Q,
    p,
    G=None,
    h=None,
    A=None,
    b=None,
    lb=None,
    ub=None,
    *,
    accept_almost_solved: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Solve one QP by Clarabel in float64 at 1e-12: the independent reference.

    ``min 1/2 z'Qz + p'z  s.t.  Gz <= h, Az = b, lb <= z <= ub``, unbatched: Q ``(n, n)``,
    p ``(n,)``, G ``(m, n)``, h ``(m,)``, A ``(neq, n)``, b ``(neq,)``, lb and ub ``(n,)``;
    None drops a block, and infinite entries of h, lb and ub are dropped from the solve.
    Anything ``np.asarray`` takes (numpy arrays, CPU tensors without grad) is accepted.

    Returns numpy float64 arrays ``(z, lam, nu)`` with optnet's sign conventions
    (``Qz + p + G'lam + A'nu + duals of the bounds = 0``, ``lam >= 0``): ``z`` ``(n,)``;
    ``lam`` ``(m,)`` for the rows of G in their original order, 0 for rows with an infinite
    h, None when G is None; ``nu`` ``(neq,)``, None when A is None. The bounds' duals are not
    returned. Raises RuntimeError unless Clarabel reports Solved (or, with
    ``accept_almost_solved``, AlmostSolved).

    Example:
        >>> z, lam, nu = reference_solve(np.eye(2), np.array([1.0, -1.0]),
        ...                             G=np.array([[1.0, 1.0]]), h=np.array([0.5]))
    """
    try:
        import clarabel
        from scipy import sparse
    except ImportError as err:
        raise ImportError(
            "optnet.testing.reference_solve needs Clarabel and SciPy: pip install 'optnet[test]'"
        ) from err

    Q, p, G, h, A, b, lb, ub = (_float64(x) for x in (Q, p, G, h, A, b, lb, ub))
    n = p.shape[0]
    rows, rhs = [], []  # equalities first (the zero cone), then every inequality
    neq = 0
    if A is not None:
        rows.append(A.reshape(-1, n))
        rhs.append(b.reshape(-1))
        neq = rows[0].shape[0]
    finite_h = None
    if G is not None:
        finite_h = np.isfinite(h)
        rows.append(G[finite_h])
        rhs.append(h[finite_h])
    for bound, sign in ((lb, -1.0), (ub, 1.0)):
        if bound is not None:
            finite = np.isfinite(bound)
            rows.append(sign * np.eye(n)[finite])
            rhs.append(sign * bound[finite])
    stacked = np.vstack(rows) if rows else np.zeros((0, n))
    cones = []
    if neq:
        cones.append(clarabel.ZeroConeT(neq))
    if stacked.shape[0] > neq:
        cones.append(clarabel.NonnegativeConeT(stacked.shape[0] - neq))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-12
    solver = clarabel.DefaultSolver(
        sparse.csc_matrix(np.triu(Q)),
        p,
        sparse.csc_matrix(stacked),
        np.concatenate(rhs) if rhs else np.zeros(0),
        cones,
        settings,
    )
    solution = solver.solve()
    accepted = ("Solved", "AlmostSolved") if accept_almost_solved else ("Solved",)
    if str(solution.status) not in accepted:
        raise RuntimeError(f"Clarabel did not solve the reference problem: {solution.status}")
    z = np.asarray(solution.x, dtype=np.float64)
    y = np.asarray(solution.z, dtype=np.float64)
    nu = None if A is None else y[:neq].copy()
    lam = None
    if finite_h is not None:
        lam = np.zeros(finite_h.shape[0])
        lam[finite_h] = y[neq : neq + int(finite_h.sum())]
    return z, lam, nu


def closest_feasible_reference(Q, p, G=None, h=None, A=None, b=None, lb=None, ub=None):
    """z of the closest feasible problem of one QP, by two Clarabel solves (float64).

    The reference of ``SolverOptions(infeasible="closest")``, from its definition: phase 1
    ``min 1/2 ||u||^2 + 1/2 ||v||^2  s.t.  C z - u <= d,  A z - v = b`` with ``C = [G; -I; I]``,
    ``d = [h; -lb; ub]``, then the original objective on ``C z <= d + u``, ``A z = b + v``
    (an inequality system without interior, which Clarabel solves as given). Arguments as
    ``reference_solve``'s. Returns ``(z, u, v)``: the solution and the shifts of the stacked
    rows (the rows of G, then lb's and ub's) and of the equalities.
    """
    Q, p, G, h, A, b, lb, ub = (_float64(x) for x in (Q, p, G, h, A, b, lb, ub))
    n = p.shape[0]
    rows, rhs = [], []
    for block, right in ((G, h), (None if lb is None else -np.eye(n), None if lb is None else -lb),
                         (None if ub is None else np.eye(n), ub)):  # fmt: skip
        if block is not None:
            rows.append(block)
            rhs.append(right)
    C = np.vstack(rows) if rows else np.zeros((0, n))
    d = np.concatenate(rhs) if rhs else np.zeros(0)
    m_all, neq = C.shape[0], 0 if A is None else A.shape[0]
    size = n + m_all + neq
    Q1 = np.zeros((size, size))
    Q1[n:, n:] = np.eye(m_all + neq)
    G1 = np.hstack([C, -np.eye(m_all), np.zeros((m_all, neq))]) if m_all else None
    A1 = None if A is None else np.hstack([A, np.zeros((neq, m_all)), -np.eye(neq)])
    x, _, _ = reference_solve(Q1, np.zeros(size), G1, d if m_all else None, A1, b)
    u, v = x[n : n + m_all], x[n + m_all :]
    m = 0 if G is None else G.shape[0]
    shifted = {"h": None if G is None else h + u[:m]}
    start = m
    if lb is not None:
        shifted["lb"], start = lb - u[start : start + n], start + n
    if ub is not None:
        shifted["ub"] = ub + u[start : start + n]
    z, _, _ = reference_solve(
        Q, p, G, shifted["h"], A, None if A is None else b + v, shifted.get("lb"),
        shifted.get("ub"), accept_almost_solved=True,
    )  # fmt: skip
    return z, u, v
