"""Float64 reference solutions: optnet at a tight tolerance, checked against Clarabel."""

from __future__ import annotations

import numpy as np
import torch

from .problems import QPBatch


def optnet_reference(qp: QPBatch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, dloss/dp) of every problem, by optnet in float64 at eps_abs 1e-11, on ``device``.

    The loss is ``sum(z * qp.loss_weights)``; results are returned on the CPU.
    """
    from optnet import SolverOptions, solve_qp

    data = qp.to(torch.float64, device).leaves(requires_grad=False)
    p = data.p.requires_grad_(True)
    options = SolverOptions(eps_abs=1e-11, eps_rel=1e-13, max_iter=200)
    sol = solve_qp(data.Q, p, data.G, data.h, data.A, data.b, options=options)
    (sol.z * data.loss_weights).sum().backward()
    return sol.z.detach().cpu(), p.grad.cpu()


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
        def pick(x):
            return None if x is None else x[i].numpy()

        out.append(clarabel_solve(*(pick(x) for x in data.inputs())))
    return torch.from_numpy(np.stack(out))


def relative_error(x: torch.Tensor, reference: torch.Tensor) -> float:
    """max over the batch of ``||x - ref||_inf / (1 + ||ref||_inf)`` (x cast to float64)."""
    x = x.detach().to("cpu", torch.float64)
    err = (x - reference).abs().amax(-1) / (1.0 + reference.abs().amax(-1))
    return float(err.max())
