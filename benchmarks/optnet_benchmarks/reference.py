"""Float64 references: optnet at a tight tolerance, and the one Clarabel wrapper that checks it.

``clarabel_solve`` is the project's independent reference solver (the tests use it too).
"""

from __future__ import annotations

import numpy as np
import torch

from .known_solution import active_set_gradients
from .problems import QPBatch


def optnet_reference(qp: QPBatch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(z, dloss/dp, number of unsolved problems) in float64 on ``device``; tensors on the CPU.

    ``z`` comes from optnet at eps_abs 1e-11. The gradient of ``sum(z * qp.loss_weights)``
    does NOT use optnet's backward pass: it solves the KKT system of the equality-constrained QP
    on the active set (rows with ``lam > slack``), which is exact under strict complementarity.
    """
    from optnet import SolverOptions, solve_qp

    data = qp.to(torch.float64, device)
    options = SolverOptions(eps_abs=1e-11, eps_rel=1e-13, max_iter=200)
    sol = solve_qp(*data.inputs(), options=options)
    grad_p = active_set_gradient(data, sol.z, sol.lam)
    return sol.z.cpu(), grad_p.cpu(), int((~sol.solved).sum())


def active_set_gradient(qp: QPBatch, z: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """d(sum(z * w))/dp at a solution, from the active-set KKT matrix (rows with lam > slack).

    ``known_solution.active_set_gradients`` with the active set read off the solution.
    """
    batch, n, _, _ = qp.sizes
    slack = qp.h - (qp.G @ z.unsqueeze(-1)).squeeze(-1)
    A = qp.A if qp.A is not None else z.new_zeros(batch, 0, n)
    nu = z.new_zeros(batch, A.shape[-2])  # only dp is returned: it does not depend on nu
    grads = active_set_gradients(qp.Q, qp.G, A, z, lam, nu, lam > slack, qp.loss_weights)
    return grads["p"]


def _float64(x) -> np.ndarray | None:
    return None if x is None else np.asarray(x, dtype=np.float64)


def clarabel_solve(
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
        >>> z, lam, nu = clarabel_solve(np.eye(2), np.array([1.0, -1.0]),
        ...                             G=np.array([[1.0, 1.0]]), h=np.array([0.5]))
    """
    import clarabel
    from scipy import sparse

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
    ``clarabel_solve``'s. Returns ``(z, u, v)``: the solution and the shifts of the stacked
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
    x, _, _ = clarabel_solve(Q1, np.zeros(size), G1, d if m_all else None, A1, b)
    u, v = x[n : n + m_all], x[n + m_all :]
    m = 0 if G is None else G.shape[0]
    shifted = {"h": None if G is None else h + u[:m]}
    start = m
    if lb is not None:
        shifted["lb"], start = lb - u[start : start + n], start + n
    if ub is not None:
        shifted["ub"] = ub + u[start : start + n]
    z, _, _ = clarabel_solve(
        Q, p, G, shifted["h"], A, None if A is None else b + v, shifted.get("lb"),
        shifted.get("ub"), accept_almost_solved=True,
    )  # fmt: skip
    return z, u, v


def clarabel_reference(qp: QPBatch, count: int) -> torch.Tensor:
    """z of the first ``count`` problems of the batch by Clarabel, ``(count, n)`` float64.

    A check of the optnet reference, not the reference itself: AlmostSolved is accepted.
    """
    data = qp.to(torch.float64, "cpu")
    out = []
    for i in range(min(count, data.sizes[0])):
        one = [None if x is None else x[i].numpy() for x in data.inputs()]
        z, _, _ = clarabel_solve(*one, accept_almost_solved=True)
        out.append(z)
    return torch.from_numpy(np.stack(out))


def relative_errors(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per problem ``||x - ref||_inf / (1 + ||ref||_inf)``, shape ``(B,)`` (x cast to float64)."""
    x = x.detach().to("cpu", torch.float64)
    return (x - reference).abs().amax(-1) / (1.0 + reference.abs().amax(-1))


def relative_error(x: torch.Tensor, reference: torch.Tensor) -> float:
    """The worst ``relative_errors`` over the batch."""
    return float(relative_errors(x, reference).max())
