"""Polish: from the interior point's active set to the exact solution.

The interior point stops at a tolerance, with every slack and dual strictly positive. Its
largest of ``lam_i`` and ``s_i`` tells which constraints are active: holding those as
equalities, the solution is that of one linear system (``_kkt.ActiveSetFactor``), solved to the
dtype's accuracy by refinement. The polished point replaces the interior point only if it
satisfies the stopping rule (primal feasible, duals of the right sign, within the
tolerances: signs are clamped, then the residuals judge) or, for an unsolved problem, if its
merit is better. Either way the factor is the backward pass's: the exact derivative of the
solution for that active set.
"""

from __future__ import annotations

import dataclasses

import torch

from .. import _kkt
from .._options import SolverOptions
from .._policy import SYNC, Policy
from .._problem import Problem, inf_norm
from .._status import QPStatus
from .._tree import scatter_tree, where_tree
from .residuals import residuals
from .state import IPMResult
from .stopping import Tolerances, convergence

# Polish rounds: a round whose active set was wrong (a negative dual or a violated inactive row)
# corrects it for the next round. Where the host can stop once every problem is polished, up to
# MAX_POLISH_ROUNDS run: from the interior point's handoff (``stopping.HANDOFF_TOLERANCE``,
# float64) 2 rounds left 14 % of 384 random QPs (n = m = 50) unpolished, 5 none. Inside a CUDA
# graph every round runs and the interior point goes to the full tolerance, where the set is
# right unless a margin is near it (float32: 1e-4; 128 random float32 QPs, n = m = 100: 3
# rounds left 1 unpolished, 5 none); float64 there takes 2 (the Maros-Meszaros scores were the
# same with 1, 2 and 5 rounds).
MAX_POLISH_ROUNDS = 5
CAPTURED_POLISH_ROUNDS = {torch.float64: 2, torch.float32: 5}
# A warm start's guess gets one correction round; a guess still wrong then is solved from
# scratch, and more rounds would only add to the cost of a miss (measured in a Sudoku training
# loop: an all-wrong guess with 5 rounds cost half a cold solve).
WARM_START_ROUNDS = 2
HELD_ROWS_FLOORS = 1


def polish(
    problem: Problem,
    z,
    s,
    lam,
    nu,
    status,
    merit,
    reg,
    tol: Tolerances,
    policy: Policy,
    buffers: _kkt.Buffers | None = None,
):
    """(z, s, lam, nu, status, residuals, factor, polished): the polished iterate where taken.

    ``status`` and ``merit`` are the interior point's; SOLVED, MAX_ITER and NUMERICAL_ERROR
    problems are polished, and an unsolved one whose polished point meets the tolerances (with
    its signs) becomes SOLVED. Where the ``policy`` lets the host read flags, the rounds nobody
    needs are skipped. ``buffers``: the interior point's (``_kkt.Buffers``, its factor no
    longer needed), which the first round's factor then owns.
    """
    # A numerical error near the end (factorizations failing at a tight tolerance) leaves a
    # good best iterate, and the active-set system is much better conditioned: polish it too.
    unsolved = (status == QPStatus.MAX_ITER) | (status == QPStatus.NUMERICAL_ERROR)
    eligible = (status == QPStatus.SOLVED) | unsolved
    active = (lam > s) & (problem.mask > 0)
    point, factor, taken = active_set_rounds(problem, active, eligible, reg, tol, policy, buffers)
    z_p, s_p, lam_p, nu_p, merit_p, ok = point
    # Not converged: an unsolved problem still takes the polished point if it is better.
    use = taken | (eligible & unsolved & ok & (merit_p < merit))
    status = torch.where(taken, int(QPStatus.SOLVED), status)
    pick = use.unsqueeze(-1)
    z, s, lam = (torch.where(pick, new, old) for new, old in ((z_p, z), (s_p, s), (lam_p, lam)))
    if nu is not None:
        nu = torch.where(pick, nu_p, nu)
    return z, s, lam, nu, status, residuals(problem, z, s, lam, nu), factor, use


def active_set_rounds(
    problem: Problem,
    active,
    eligible,
    reg,
    tol: Tolerances,
    policy: Policy,
    buffers: _kkt.Buffers | None = None,
    max_rounds: int = MAX_POLISH_ROUNDS,
):
    """Solve with ``active`` (B, m_all) held as equalities, correcting the set between rounds.

    Returns ``(point, factor, taken)``: point = (z, s, lam, nu, merit, factor ok) of the round
    each problem converged in (the last round's where none did), the matching factor, and
    ``taken``, the eligible problems whose point converged with its signs right.

    Where the ``policy`` lets the host read flags, later rounds solve only the problems still
    pending and stop when none is, after ``max_rounds`` at most; otherwise every round runs on
    the whole batch. ``buffers`` hold the first round's factor (see ``polish``).
    """
    # Made once for all rounds.
    exact, penalty = _kkt.residual_problem(problem), _kkt.active_set_penalty(problem)
    args = (reg, tol, policy.factor_form)
    point, factor, taken, active = _round(
        problem, exact, penalty, active, eligible, *args, buffers=buffers
    )
    if not policy.may_read:
        for _ in range(CAPTURED_POLISH_ROUNDS[problem.p.dtype] - 1):
            new_point, f, converged, corrected = _round(
                problem, exact, penalty, active, eligible, *args
            )
            # Problems already taken keep the point and factor of their round.
            factor, point = where_tree(taken, factor, f), where_tree(taken, point, new_point)
            active = torch.where(taken.unsqueeze(-1), active, corrected)
            taken = taken | converged
        return point, factor, taken
    for _ in range(max_rounds - 1):
        pending = eligible & ~taken
        if not bool(pending.any()):
            break
        rows = pending.nonzero().squeeze(-1)
        shared = penalty.shape[0] == 1  # as the problem's shared data are
        sub = problem.select(rows)
        sub_exact = sub if exact is problem else exact.select(rows)
        part = (sub, sub_exact, penalty if shared else penalty[rows])
        new_point, f, converged, corrected = _round(
            *part, active[rows], eligible[rows], reg[rows], *args[1:]
        )
        point = scatter_tree(point, rows, new_point, problem.batch)
        factor = scatter_tree(factor, rows, f, problem.batch)
        taken, active = taken.index_copy(0, rows, converged), active.index_copy(0, rows, corrected)
    return point, factor, taken


def _round(
    problem: Problem,
    exact: Problem,
    penalty,
    active,
    eligible,
    reg,
    tol: Tolerances,
    form: str,
    buffers=None,
):
    """One polish round: (point, factor, converged, the corrected active set)."""
    batch = active.shape[0]
    mask = problem.mask > 0
    h_all = problem.h_all.expand(batch, -1)
    r2 = problem.b.expand(batch, -1) if problem.has_eq else None
    active = active & mask
    f = _kkt.factor_active(problem, active, reg, exact, penalty, form, buffers)
    z_p, lam_raw, nu_p = _kkt.solve_active(f, -problem.p.expand(batch, -1), h_all, r2)
    s_raw = (h_all - problem.ineq(z_p)) * ~active
    lam_p = lam_raw.clamp_min(0) * active
    s_p = torch.where(mask, s_raw.clamp_min(0), torch.ones_like(s_raw))  # absent rows: 1
    res = residuals(problem, z_p, s_p, lam_p, nu_p)
    converged, merit_p, _ = convergence(res, tol)
    # The right active set gives signs right to round-off; a wrong one is off by its margin,
    # which may be inside the tolerances (float32): demand the signs too.
    converged &= _signs_hold(lam_raw, s_raw, active, mask, res) & eligible & f.ok
    # A right set's rows hold to rounding; a wrong one (more held rows than the point can meet)
    # leaves a residual of its margin's size, which may be inside float32's tolerance.
    converged &= res.primal <= HELD_ROWS_FLOORS * res.primal_floor
    # The next round's active set: drop rows with negative duals, add violated rows.
    corrected = (active & (lam_raw >= 0)) | (mask & ~active & (s_raw < 0))
    return (z_p, s_p, lam_p, nu_p, merit_p, f.ok), f, converged, corrected


def solve_from_active_set(
    problem: Problem, options: SolverOptions, policy: Policy, active: torch.Tensor
):
    """A warm start: the solution from a guessed active set, with no interior-point iteration.

    The rounds read flags on the host (whatever the ``policy``: they run eagerly, outside any
    graph); the factor is made in the policy's form, as the backend's own solves are.

    Returns ``(result, taken)``; ``taken`` marks the problems whose active-set point met the
    stopping rule with its signs (SOLVED, 0 iterations); the others are not solved and must be
    solved from scratch (their status here is MAX_ITER).
    """
    batch = problem.batch
    tol = Tolerances.of(options, problem.p.dtype)
    reg = torch.full(
        (batch,), options.regularization, dtype=problem.p.dtype, device=problem.p.device
    )
    eligible = torch.ones(batch, dtype=torch.bool, device=problem.p.device)
    if not policy.may_read:  # these rounds run eagerly, never inside a graph
        policy = dataclasses.replace(policy, host_reads=SYNC)
    point, factor, taken = active_set_rounds(
        problem, active, eligible, reg, tol, policy, max_rounds=WARM_START_ROUNDS
    )
    z, s, lam, nu, _, _ = point
    status = torch.where(taken, int(QPStatus.SOLVED), int(QPStatus.MAX_ITER))
    zero_rays = torch.zeros_like(torch.cat([lam] + ([nu] if nu is not None else []), -1))
    result = IPMResult(
        z, s, lam, nu, status, torch.zeros_like(status), residuals(problem, z, s, lam, nu),
        zero_rays, torch.zeros_like(z), factor, taken,
    )  # fmt: skip
    return result, taken


def _signs_hold(lam, s, active, mask, res) -> torch.Tensor:
    """Duals of active rows and slacks of inactive rows >= 0, up to eps^(3/4) of their scale."""
    if lam.shape[-1] == 0:
        return torch.ones_like(res.primal, dtype=torch.bool)
    eps = torch.finfo(lam.dtype).eps ** 0.75
    dual_ok = torch.where(active, lam, 0).amin(-1) >= -eps * inf_norm(lam).clamp_min(1)
    slack_ok = torch.where(mask & ~active, s, 0).amin(-1) >= -eps * res.primal_scale.clamp_min(1)
    return dual_ok & slack_ok
