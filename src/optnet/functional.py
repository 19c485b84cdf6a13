"""solve_qp: the functional entry point."""

from __future__ import annotations

import dataclasses

import torch

from . import _autograd
from ._closest import closest_feasible
from ._custom_op import solution_fields, unpack_outputs
from ._options import SolverOptions
from ._problem import row_blocks, split_blocks
from ._solution import ActiveSet, QPSolution
from ._validate import validate_inputs, validate_warm_start


def solve_qp(
    Q: torch.Tensor,
    p: torch.Tensor,
    G: torch.Tensor | None = None,
    h: torch.Tensor | None = None,
    A: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    lb: torch.Tensor | None = None,
    ub: torch.Tensor | None = None,
    options: SolverOptions | None = None,
    warm_start: QPSolution | ActiveSet | None = None,
) -> QPSolution:
    """Solve a batch of convex QPs and make the solution differentiable in every input.

    ``minimize 1/2 z'Qz + p'z  subject to  Gz <= h,  Az = b,  lb <= z <= ub``

    Each input is batched, with a leading dimension B, or unbatched and shared by the whole
    batch; the gradient of a shared input is the sum over the batch. ``None`` means the block
    is absent. Entries of ``h`` and ``ub`` may be ``+inf`` and of ``lb`` ``-inf`` (no constraint).

    Shapes: Q ``(*B, n, n)`` symmetric positive semidefinite, p ``(*B, n)``, G ``(*B, m, n)``,
    h ``(*B, m)``, A ``(*B, neq, n)``, b ``(*B, neq)``, lb/ub ``(*B, n)``.

    Returns a ``QPSolution`` with a per-problem ``status``; this function never raises for a
    problem that fails to solve (call ``sol.raise_for_status()`` for that), only for bad input.

    ``warm_start``: a guess of which constraints are active, the ``QPSolution`` of a previous
    problem of the same shapes (its ``active_set``) or an ``ActiveSet``. Each problem whose
    guess gives a point that meets the stopping rule is solved by one linear system, with 0
    interior-point iterations; the others are solved from scratch, so a wrong guess costs time,
    never accuracy. Solutions and gradients are those of a cold solve.

    Inconsistent constraints give status ``PRIMAL_INFEASIBLE`` with a certificate; with
    ``SolverOptions(infeasible="closest")`` the solution of the closest feasible problem
    instead, differentiable, with status ``CLOSEST_FEASIBLE`` (``optnet._closest``).

    Example:
        >>> Q = torch.eye(2, dtype=torch.float64)
        >>> p = torch.tensor([[1.0, -1.0]], dtype=torch.float64, requires_grad=True)
        >>> G = -torch.eye(2, dtype=torch.float64); h = torch.zeros(2, dtype=torch.float64)
        >>> sol = solve_qp(Q, p, G, h)          # z = max(-p, 0) = [[0, 1]]
        >>> sol.z.sum().backward()
    """
    options = SolverOptions() if options is None else options
    if not isinstance(options, SolverOptions):
        raise TypeError(f"options must be a SolverOptions, got {type(options).__name__}")
    # Shapes and dtypes here; the values (NaN, symmetry) in the op, where the data are read.
    shape = validate_inputs(Q=Q, p=p, G=G, h=h, A=A, b=b, lb=lb, ub=ub, check_values=False)
    warm_active = validate_warm_start(warm_start, shape, G, lb, ub)
    inputs = (Q, p, G, h, A, b, lb, ub)
    fields, _, factor = unpack_outputs(_autograd.solve(inputs, options, warm_active))
    sizes = row_blocks(shape.n, G, lb, ub)
    active = factor.active > 0
    blocks = dict(zip(sizes, split_blocks(active, sizes.values())))
    unbatched = shape.batch is None
    sol = QPSolution.from_outputs(
        solution_fields(fields, G, A, lb, ub), unbatched=unbatched, active_set=ActiveSet(**blocks)
    )
    if options.infeasible == "closest":
        phases = dataclasses.replace(options, infeasible="status")
        sol = closest_feasible(solve_qp, (Q, p, G, h, A, b, lb, ub), sol, phases)
    return sol
