"""Float64 reference solutions: optnet at a tight tolerance, checked against Clarabel."""

from __future__ import annotations

import numpy as np
import torch

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
    """d(sum(z * w))/dp at a solution, from the active-set KKT matrix ``(B, n+m+neq)^2``.

    Inactive rows of G are replaced by identity rows (their dual stays 0), so one dense,
    batched, nonsymmetric solve covers every problem of the batch.
    """
    batch, n, m, neq = qp.sizes
    slack = qp.h - (qp.G @ z.unsqueeze(-1)).squeeze(-1)
    active = (lam > slack).to(z.dtype)
    size = n + m + neq
    K = z.new_zeros(batch, size, size)
    K[:, :n, :n] = qp.Q
    K[:, :n, n : n + m] = qp.G.mT
    K[:, n : n + m, :n] = active.unsqueeze(-1) * qp.G
    K[:, n : n + m, n : n + m] = torch.diag_embed(1.0 - active)
    if neq:
        K[:, :n, n + m :] = qp.A.mT
        K[:, n + m :, :n] = qp.A
    rhs = z.new_zeros(batch, size)
    rhs[:, :n] = qp.loss_weights
    # K [dz; dlam; dnu] = [-dp; 0; 0], so dloss/dp = -(K^-T [w; 0; 0])_z
    return -torch.linalg.solve(K.mT, rhs)[:, :n]


def clarabel_solve(
    Q: np.ndarray,
    p: np.ndarray,
    G: np.ndarray | None = None,
    h: np.ndarray | None = None,
    A: np.ndarray | None = None,
    b: np.ndarray | None = None,
) -> np.ndarray:
    """z of one QP ``min 1/2 z'Qz + p'z  s.t.  Gz <= h, Az = b`` by Clarabel at 1e-12.

    Rows of G with an infinite h are dropped. Raises RuntimeError unless Clarabel solves it.
    """
    import clarabel
    from scipy import sparse

    n = p.shape[0]
    rows, rhs, cones = [], [], []
    if A is not None and A.shape[0]:
        rows.append(A)
        rhs.append(b)
        cones.append(clarabel.ZeroConeT(A.shape[0]))
    if G is not None:
        finite = np.isfinite(h)
        if finite.any():
            rows.append(G[finite])
            rhs.append(h[finite])
            cones.append(clarabel.NonnegativeConeT(int(finite.sum())))
    stacked = np.vstack(rows) if rows else np.zeros((0, n))
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
    if str(solution.status) not in ("Solved", "AlmostSolved"):
        raise RuntimeError(f"Clarabel did not solve the reference problem: {solution.status}")
    return np.asarray(solution.x)


def clarabel_reference(qp: QPBatch, count: int) -> torch.Tensor:
    """z of the first ``count`` problems of the batch by Clarabel, ``(count, n)`` float64."""
    data = qp.to(torch.float64, "cpu")
    out = []
    for i in range(min(count, data.sizes[0])):
        one = [None if x is None else x[i].numpy() for x in data.inputs()]
        out.append(clarabel_solve(*one))
    return torch.from_numpy(np.stack(out))


def relative_errors(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per problem ``||x - ref||_inf / (1 + ||ref||_inf)``, shape ``(B,)`` (x cast to float64)."""
    x = x.detach().to("cpu", torch.float64)
    return (x - reference).abs().amax(-1) / (1.0 + reference.abs().amax(-1))


def relative_error(x: torch.Tensor, reference: torch.Tensor) -> float:
    """The worst ``relative_errors`` over the batch."""
    return float(relative_errors(x, reference).max())
