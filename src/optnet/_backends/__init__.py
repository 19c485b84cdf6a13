"""The backends that run the interior-point algorithm, and the ONE function that picks one.

Every backend runs the same algorithm (``optnet._ipm``) and returns an ``IPMResult``; they
differ only in how the iterations are launched. ``BACKENDS`` maps ``SolverOptions.backend``
names to implementations; ``select`` is the only place that decides which one runs.
"""

from __future__ import annotations

import logging

import torch

from .._ipm import IPMResult
from .._ipm.polish import solve_from_active_set
from .._ipm.state import scatter_tree, where_tree
from .._options import SolverOptions
from .._problem import Problem
from .._status import QPStatus
from . import batched, graphed

logger = logging.getLogger("optnet")

# name -> solve(problem, options) -> IPMResult, or None when that backend declines at run time
BACKENDS = {
    "batched": batched.solve,
    "graphed": graphed.solve,
}


def select(problem: Problem, options: SolverOptions) -> str:
    """The backend that solves ``problem`` under ``options`` (raises for impossible requests)."""
    name = options.backend
    if name not in ("auto", *BACKENDS):  # SolverOptions validates this; kept for direct callers
        raise ValueError(f"unknown backend {name!r}; known: auto, {', '.join(BACKENDS)}")
    if options.equilibrate:
        if name not in ("auto", "batched"):
            raise ValueError(
                f"SolverOptions(equilibrate=True) runs on the 'batched' backend only, "
                f"got backend={name!r}"
            )
        return "batched"
    if name != "auto":
        return name
    if problem.p.device.type == "cuda" and graphed.worth_capturing(problem):
        return "graphed"
    return "batched"


def replay_derivative(problem: Problem, backend: str, kernel, tensors) -> tuple:
    """``kernel(*tensors)``, a derivative's solve with the polish's factor for ``problem``.

    Replayed from a CUDA graph where the forward's backend replays its iterations (``backend``
    is the forward's option): launched from Python its refinement is hundreds of tiny kernels.
    ``kernel`` takes ``problem=``, the problem of ``tensors``, to skip rebuilding it.
    """
    if select(problem, SolverOptions(backend=backend)) != "batched":
        out = graphed.replay(kernel, tensors)
        if out is not None:
            return out
    return kernel(*tensors, problem=problem)


def solve(
    problem: Problem, options: SolverOptions, warm_active: torch.Tensor | None = None
) -> IPMResult:
    """Solve a validated, batched problem with the selected backend.

    ``warm_active`` (B, m_all) bool, a guess of the active set (e.g. a previous solution's):
    problems whose active-set solution meets the stopping rule need no interior point; the
    others are solved from scratch by the backend: on the ``batched`` backend only those
    (a sub-batch), on the others the whole batch (their captured graphs are cached per shape,
    and a new sub-batch size would capture new ones).
    """
    if warm_active is None:
        return _solve(problem, options)
    warm, taken = solve_from_active_set(problem, options, warm_active)
    if bool(taken.all()):
        return warm
    if not bool(taken.any()):
        return _solve(problem, options)
    if select(problem, options) != "batched":
        return where_tree(taken, warm, _solve(problem, options))
    rows = (~taken).nonzero().squeeze(-1)
    return scatter_tree(warm, rows, _solve(problem.select(rows), options), problem.batch)


def _solve(problem: Problem, options: SolverOptions) -> IPMResult:
    name = select(problem, options)
    result = BACKENDS[name](problem, options)
    if result is None:  # the graphs could not be captured for this shape
        name, result = "batched", batched.solve(problem, options)
    result = batched.resume(problem, options, result)
    if logger.isEnabledFor(logging.DEBUG):  # a host sync: only when asked for
        counts = {QPStatus(c).name: int(k) for c, k in enumerate(result.status.bincount()) if k}
        logger.debug("%s backend: %d problems, statuses %s", name, problem.batch, counts)
    return result
