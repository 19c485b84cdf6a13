"""float32 problems the float32 solve could not finish exactly, finished in float64.

In float32 the interior point stops at 1e-4, where the largest of ``lam_i`` and ``s_i`` can
misname rows whose margin is far above float32's resolution (a dual scale of 200 makes an
inactive row with slack 0.085 look active), and ill-conditioned or infeasible problems can end
``MAX_ITER`` / ``NUMERICAL_ERROR`` where float64 reads them right. Those problems (a sub-batch,
usually empty) are solved again in float64; float64's active set is then polished in float32,
which makes the float32 point and the float32 factor the backward reuses; statuses and
certificates of infeasible problems come from float64 (docs/solver.md, "Mixed precision").
"""

from __future__ import annotations

import dataclasses

import torch

from .._ipm import IPMResult
from .._ipm.polish import active_set_rounds
from .._ipm.residuals import residuals
from .._ipm.stopping import Tolerances, convergence
from .._options import SolverOptions
from .._policy import SYNC, Policy
from .._problem import Problem
from .._status import QPStatus
from .._tree import map_tensors, scatter_tree

# float64's active set gets one correction round in float32 (its set is right; the round only
# absorbs float32's rounding of the data).
WIDENED_ROUNDS = 2

_INFEASIBLE = (QPStatus.PRIMAL_INFEASIBLE, QPStatus.DUAL_INFEASIBLE)


def unfinished(result: IPMResult) -> torch.Tensor:
    """Problems without an exact float32 answer: solved but not polished, or not solved."""
    status = result.status
    not_solved = (status == QPStatus.MAX_ITER) | (status == QPStatus.NUMERICAL_ERROR)
    return not_solved | ((status == QPStatus.SOLVED) & ~result.polished)


def finish_in_float64(
    problem: Problem, options: SolverOptions, policy: Policy, result: IPMResult, solve64
) -> IPMResult:
    """``result`` with its ``unfinished`` float32 problems replaced by their float64 finish.

    ``solve64(problem) -> IPMResult`` solves a float64 problem; ``policy`` is the backend's
    (the float32 factor is made in its form). Reads one flag on the host.
    """
    if problem.p.dtype != torch.float32:
        return result
    pending = unfinished(result)
    if not bool(pending.any()):
        return result
    rows = pending.nonzero().squeeze(-1)
    sub = problem.select(rows)
    wide = solve64(sub.to(torch.float64))
    part = _float32_finish(sub, options, policy, wide)
    # A problem keeps its float32 result unless float64 did better: solved it (exactly: its
    # set polished in float32, or its point within float32's stopping rule) or proved it
    # infeasible.
    better = ((part.status == QPStatus.SOLVED) | _is_infeasible(part.status)).nonzero()
    better = better.squeeze(-1)
    part = _select(part, better)
    iterations = result.iterations[rows[better]] + part.iterations
    part = dataclasses.replace(part, iterations=iterations)
    return scatter_tree(result, rows[better], part, problem.batch)


def _float32_finish(problem: Problem, options, policy: Policy, wide: IPMResult) -> IPMResult:
    """float32 results of ``problem`` from its float64 solve ``wide``."""
    tol = Tolerances.of(options, torch.float32)
    solved = (wide.status == QPStatus.SOLVED) & wide.polished
    reg = torch.full((problem.batch,), options.regularization, dtype=torch.float32,
                     device=problem.p.device)  # fmt: skip
    active = wide.factor.active > 0
    if not policy.may_read:  # these rounds run eagerly, never inside a graph
        policy = dataclasses.replace(policy, host_reads=SYNC)
    point, factor, taken = active_set_rounds(
        problem, active, solved, reg, tol, policy, max_rounds=WIDENED_ROUNDS
    )
    z, s, lam, nu = (None if x is None else x.float() for x in (wide.z, wide.s, wide.lam, wide.nu))
    polished = (z, s, lam, nu)
    # Where float32's own polish of that set did not converge (ill-conditioned systems), the
    # float64 point rounded to float32 stands, judged by float32's stopping rule.
    z, s, lam, nu = (
        None if x is None else torch.where(taken.unsqueeze(-1), p, x)
        for x, p in zip(polished, point[:4])
    )
    res = residuals(problem, z, s, lam, nu)
    converged = convergence(res, tol)[0] & solved
    status = torch.where(converged, int(QPStatus.SOLVED), int(QPStatus.MAX_ITER))
    status = torch.where(_is_infeasible(wide.status), wide.status, status)
    return IPMResult(
        z, s, lam, nu, status, wide.iterations, res, wide.certificate_dual.float(),
        wide.certificate_primal.float(), factor, taken | converged,
    )  # fmt: skip


def _is_infeasible(status: torch.Tensor) -> torch.Tensor:
    return (status == _INFEASIBLE[0]) | (status == _INFEASIBLE[1])


def _select(result: IPMResult, rows: torch.Tensor) -> IPMResult:
    """The problems ``rows`` of ``result`` (tensors of another leading size are shared)."""
    batch = result.status.shape[0]
    return map_tensors(result, lambda x: x[rows] if x.dim() and x.shape[0] == batch else x)
