"""solve_qp: the functional entry point."""

from __future__ import annotations

import torch

from . import _custom_op
from ._autograd import QPFunction
from ._options import SolverOptions
from ._solution import OUTPUT_FIELDS, QPSolution
from ._validate import validate_inputs


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
    args = (Q, p, G, h, A, b, lb, ub, *_custom_op.option_args(options))
    if torch.compiler.is_compiling():
        # Dynamo does not trace an autograd.Function with a jvp: call the op, whose registered
        # autograd is QPFunction's backward (torch.compile supports no forward mode anyway).
        outputs = _custom_op.solve_qp_op(*args)
    else:
        outputs = QPFunction.apply(*args)
    fields = _custom_op.solution_fields(outputs[: len(OUTPUT_FIELDS)], G, A, lb, ub)
    return QPSolution.from_outputs(fields, unbatched=shape.batch is None)
