"""Solve statuses, the message attached to each, and the exception raised on request."""

from __future__ import annotations

from enum import IntEnum

import torch


class QPStatus(IntEnum):
    """Outcome of one problem of a batch; ``QPSolution.status`` holds these as integers."""

    SOLVED = 0
    MAX_ITER = 1
    PRIMAL_INFEASIBLE = 2
    DUAL_INFEASIBLE = 3
    NUMERICAL_ERROR = 4
    NONCONVEX = 5
    CLOSEST_FEASIBLE = 6

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    QPStatus.SOLVED: (
        "solved to the requested tolerances, or to the dtype's accuracy where that is looser "
        "(docs/solver.md, 'Stopping rule')"
    ),
    QPStatus.MAX_ITER: (
        "the iteration limit was reached before the tolerances were met; increase "
        "SolverOptions.max_iter, loosen eps_abs/eps_rel, or solve in float64"
    ),
    QPStatus.PRIMAL_INFEASIBLE: (
        "the constraints are inconsistent (no z satisfies Gz <= h, Az = b and the bounds); "
        "QPSolution.certificate holds (lam, nu) with G'lam + A'nu ~ 0 and h'lam + b'nu < 0"
    ),
    QPStatus.DUAL_INFEASIBLE: (
        "the objective is unbounded below on the feasible set (Q is singular along a feasible "
        "direction with p'd < 0); QPSolution.certificate holds that direction d"
    ),
    QPStatus.NUMERICAL_ERROR: (
        "the Newton system could not be factored reliably; check that Q is positive "
        "semidefinite, rescale the data, or solve in float64"
    ),
    QPStatus.NONCONVEX: (
        "Q is not positive semidefinite, so the QP is not convex and was not solved; check Q "
        "(a learned Q is PSD by construction as L L' + eps I, see optnet.nn.OptNetLayer)"
    ),
    QPStatus.CLOSEST_FEASIBLE: (
        "the constraints are inconsistent, so the closest feasible problem was solved, as "
        "SolverOptions(infeasible='closest') asks: h, b, lb, ub shifted by the smallest change "
        "that makes them consistent; primal_residual is the original constraints' violation "
        "and certificate proves their inconsistency"
    ),
}
# Statuses whose z is a solution (QPSolution.solved; raise_for_status passes them).
SOLVED_STATUSES = (QPStatus.SOLVED, QPStatus.CLOSEST_FEASIBLE)


class QPSolveError(RuntimeError):
    """Raised by ``QPSolution.raise_for_status`` when some problems of a batch were not solved."""

    def __init__(self, status: torch.Tensor):
        flat = status.reshape(-1).cpu()
        failures = {}
        for index, code in enumerate(flat.tolist()):
            if code not in SOLVED_STATUSES:
                failures.setdefault(QPStatus(code), []).append(index)
        self.failures = failures
        lines = [
            f"{len(idx)} of {flat.numel()} problem(s) {_format_indices(idx)}: {code.name}: "
            f"{code.message}"
            for code, idx in failures.items()
        ]
        super().__init__("; ".join(lines))


def _format_indices(indices: list[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, indices[:limit]))
    more = f", ... ({len(indices) - limit} more)" if len(indices) > limit else ""
    return f"at batch index [{shown}{more}]"
