"""The batched backend: the iteration's tensor operations over the whole batch, run eagerly.

Problems that converge (or are proven infeasible) freeze while the others keep iterating.
Convergence is decided on the device; the host reads the flags after every iteration (or every
``check_every``): a sync, cheap next to an eagerly launched iteration. Reading every iteration,
the running problems are compacted into smaller batches as others stop.
"""

from __future__ import annotations

from .._ipm import IPMResult, IPMState, Iteration, finish, initial_state
from .._ipm.state import RUNNING, scatter_tree
from .._options import SolverOptions
from .._problem import Problem
from .._scaling import equilibrate


def solve(problem: Problem, options: SolverOptions) -> IPMResult:
    check_period = options.host_check_period(problem.p.device)
    if options.equilibrate:
        scaled, scaling = equilibrate(problem, options.ruiz_iters)
        iteration = Iteration(scaled, options, problem, scaling)
        state = _run(iteration, initial_state(scaled, options), check_period)
    else:
        iteration = Iteration(problem, options)
        state = initial_state(problem, options, iteration.buffers)
        state = _run(iteration, state, check_period)
    return finish(iteration, state)


def resume(problem: Problem, options: SolverOptions, result: IPMResult) -> IPMResult:
    """Finish the problems any backend handed to the polish early and the polish could not
    solve (status RUNNING): their interior point continues to the full tolerance.
    """
    waiting = result.status == RUNNING
    if not bool(waiting.any()):
        return result
    rows = waiting.nonzero().squeeze(-1)
    iteration = Iteration(problem.select(rows), options, handoff=False)
    state = _run(iteration, result.resume_state(rows), options.host_check_period(rows.device))
    return scatter_tree(result, rows, finish(iteration, state), problem.batch)


def _run(iteration: Iteration, state: IPMState, check_period: int) -> IPMState:
    if check_period == 1 and iteration.scaling is None and iteration.problem.batch > 1:
        return _run_compacting(iteration, state)
    for k in range(iteration.options.max_iter):
        state = iteration(state, check_certificates=k % check_period == 0)
        if (k + 1) % check_period == 0 and not bool(iteration.running(state).any()):
            break
    return state


# Gather the running problems into a smaller batch once this share of the batch has stopped.
_COMPACT_WHEN_STOPPED = 0.25


def _run_compacting(iteration: Iteration, state: IPMState) -> IPMState:
    """``_run`` that iterates only the problems still running (host checks every step).

    Problems stop at different iterations, while an iteration costs in proportion to its batch.
    Once a quarter of the current batch has stopped, the running problems' data and states are
    gathered into a smaller batch; their states are scattered back at the end.
    """
    full_problem, options = iteration.problem, iteration.options
    full_state, rows = state, None  # rows: the full batch's indices that ``state`` holds
    for _ in range(options.max_iter):
        state = iteration(state, check_certificates=True)
        running = iteration.running(state)
        stopped = int((~running).sum())
        if stopped == running.numel():
            break
        if stopped >= _COMPACT_WHEN_STOPPED * running.numel():
            full_state = state if rows is None else full_state.scatter(state, rows)
            keep = running.nonzero().squeeze(-1)
            rows = keep if rows is None else rows[keep]
            state = state.map(lambda x, keep=keep: x[keep])
            buffers = iteration.buffers
            iteration = Iteration(full_problem.select(rows), options, handoff=iteration.handoff)
            iteration.buffers = buffers  # the smaller batch reuses the memory
    return state if rows is None else full_state.scatter(state, rows)
