"""The backends that run the interior-point algorithm, and the ONE function that picks one.

Every backend runs the same algorithm (``optnet._ipm``) and differs only in how it is
launched. A backend is one module of this package with three functions (docs/solver.md,
"Backends", is the contract):

- ``policy(device, options) -> Policy``: what the algorithm may do under it (host reads,
  check period, buffer reuse, the factor form), the only place that asks about the device;
- ``solve(problem, options, policy) -> IPMResult | None``: the whole solve (None: it declines
  at run time, and the batched backend runs instead);
- ``derivative(kernel, tensors, problem) -> tuple``: how the backward's solve with the
  forward's factor runs (``kernel(*tensors)``, launched its way).

``BACKENDS`` maps ``SolverOptions.backend`` names to them; ``select`` is the only place that
decides which one runs; ``solve`` returns the name of the one that ran, which the custom op
records and hands to the backward.
"""

from __future__ import annotations

import logging

import torch

from .._ipm import IPMResult
from .._ipm.polish import solve_from_active_set
from .._options import BACKEND_NAMES, SolverOptions
from .._problem import Problem
from .._status import QPStatus
from .._tree import scatter_tree, where_tree
from . import batched, graphed, widen

logger = logging.getLogger("optnet")

BACKENDS = {"batched": batched, "graphed": graphed}
assert tuple(BACKENDS) == BACKEND_NAMES  # the names SolverOptions accepts


def select(problem: Problem, options: SolverOptions) -> str:
    """The backend that solves ``problem`` under ``options`` (raises for impossible requests).

    ``"auto"``: graphed on CUDA while the solve is launch-bound (``graphed.worth_capturing``,
    the measured crossover in docs/solver.md), batched otherwise.
    """
    name = options.backend
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


def factor_form(name: str, device: torch.device) -> str:
    """The form of the factors that backend ``name`` makes on ``device``."""
    return BACKENDS[name].policy(device, SolverOptions()).factor_form


def derivative(name: str, kernel, tensors, problem: Problem) -> tuple:
    """``kernel(*tensors)``, a derivative's solve with the factor made by backend ``name``."""
    return BACKENDS[name].derivative(kernel, tensors, problem)


def solve(
    problem: Problem, options: SolverOptions, warm_active: torch.Tensor | None = None
) -> tuple[IPMResult, str]:
    """Solve a validated, batched problem: (result, the name of the backend that ran).

    ``warm_active`` (B, m_all) bool, a guess of the active set (e.g. a previous solution's):
    problems whose active-set solution meets the stopping rule need no interior point; the
    others are solved from scratch by the backend: on the ``batched`` backend only those
    (a sub-batch), on the others the whole batch (their captured graphs are cached per shape,
    and a new sub-batch size would capture new ones).
    """
    name = select(problem, options)
    if warm_active is None:
        return _solve(problem, options, name)
    policy = BACKENDS[name].policy(problem.p.device, options)
    warm, taken = solve_from_active_set(problem, options, policy, warm_active)
    if bool(taken.all()):
        return warm, name
    if not bool(taken.any()):
        return _solve(problem, options, name)
    if name != "batched":
        cold, ran = _solve(problem, options, name)
        return where_tree(taken, warm, cold), ran
    rows = (~taken).nonzero().squeeze(-1)
    cold, ran = _solve(problem.select(rows), options, name)
    return scatter_tree(warm, rows, cold, problem.batch), ran


def _solve(problem: Problem, options: SolverOptions, name: str) -> tuple[IPMResult, str]:
    device = problem.p.device
    result = BACKENDS[name].solve(problem, options, BACKENDS[name].policy(device, options))
    if result is None:  # declined (the graphs could not be captured for this shape)
        name = "batched"
        result = batched.solve(problem, options, batched.policy(device, options))
    policy = BACKENDS[name].policy(device, options)
    result = widen.finish_in_float64(
        problem, options, policy, result, lambda wide: _solve(wide, options, "batched")[0]
    )
    if logger.isEnabledFor(logging.DEBUG):  # a host sync: only when asked for
        counts = {QPStatus(c).name: int(k) for c, k in enumerate(result.status.bincount()) if k}
        logger.debug("%s backend: %d problems, statuses %s", name, problem.batch, counts)
    return result, name
