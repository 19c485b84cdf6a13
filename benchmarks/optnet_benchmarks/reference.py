"""Float64 references of the speed benchmark: optnet at a tight tolerance and its exact
active-set gradient, checked against ``optnet.testing.reference_solve`` (Clarabel)."""

from __future__ import annotations

import numpy as np
import torch

from optnet.testing import active_set_gradients, reference_solve

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

    ``optnet.testing.active_set_gradients`` with the active set read off the solution.
    """
    batch, n, _, _ = qp.sizes
    slack = qp.h - (qp.G @ z.unsqueeze(-1)).squeeze(-1)
    A = qp.A if qp.A is not None else z.new_zeros(batch, 0, n)
    nu = z.new_zeros(batch, A.shape[-2])  # only dp is returned: it does not depend on nu
    grads = active_set_gradients(qp.Q, qp.G, A, z, lam, nu, lam > slack, qp.loss_weights)
    return grads["p"]


def clarabel_reference(qp: QPBatch, count: int) -> torch.Tensor:
    """z of the first ``count`` problems of the batch by Clarabel, ``(count, n)`` float64.

    A check of the optnet reference, not the reference itself: AlmostSolved is accepted.
    """
    data = qp.to(torch.float64, "cpu")
    out = []
    for i in range(min(count, data.sizes[0])):
        one = [None if x is None else x[i].numpy() for x in data.inputs()]
        z, _, _ = reference_solve(*one, accept_almost_solved=True)
        out.append(z)
    return torch.from_numpy(np.stack(out))


def relative_errors(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per problem ``||x - ref||_inf / (1 + ||ref||_inf)``, shape ``(B,)`` (x cast to float64)."""
    x = x.detach().to("cpu", torch.float64)
    return (x - reference).abs().amax(-1) / (1.0 + reference.abs().amax(-1))


def relative_error(x: torch.Tensor, reference: torch.Tensor) -> float:
    """The worst ``relative_errors`` over the batch."""
    return float(relative_errors(x, reference).max())
