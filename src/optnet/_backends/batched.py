"""The batched backend: the iteration's tensor operations over the whole batch, run eagerly.

Problems that converge (or are proven infeasible) freeze while the others keep iterating.
Convergence is decided on the device; the host reads the flags after every iteration (or every
``check_every``): a sync, cheap next to an eagerly launched iteration. Reading every iteration,
the running problems are compacted into smaller batches as others stop.
"""

from __future__ import annotations

import torch

from .._ipm import IPMResult, IPMState, Iteration, finish, initial_state
from .._ipm.state import RUNNING
from .._options import SolverOptions
from .._policy import CHOLESKY, FREE, INVERSE, SYNC, Policy
from .._problem import Problem
from .._scaling import equilibrate
from .._tree import scatter_tree


def policy(device: torch.device, options: SolverOptions) -> Policy:
    """On a CPU flags are free to read and the factorizations reuse their memory (a fresh
    multi-megabyte tensor costs page faults); GPUs keep inverse factors (``_kkt.SPDFactor``)."""
    cpu = device.type == "cpu"
    return Policy(
        host_reads=FREE if cpu else SYNC,
        check_period=options.check_every or 1,
        reuse_buffers=cpu,
        factor_form=CHOLESKY if cpu else INVERSE,
    )


def solve(problem: Problem, options: SolverOptions, policy: Policy) -> IPMResult:
    if options.equilibrate:
        scaled, scaling = equilibrate(problem, options.ruiz_iters)
        iteration = Iteration(scaled, options, policy, problem, scaling)
        state = _run(iteration, initial_state(scaled, options, policy))
    else:
        iteration = Iteration(problem, options, policy)
        state = _run(iteration, initial_state(problem, options, policy, iteration.buffers))
    return _resume(problem, options, policy, finish(iteration, state))


def derivative(kernel, tensors, problem: Problem) -> tuple:
    """A derivative's solve with the forward's factor, launched eagerly."""
    return kernel(*tensors, problem=problem)


def _resume(problem: Problem, options: SolverOptions, policy: Policy, result: IPMResult):
    """Finish the problems handed to the polish early that the polish could not solve
    (status RUNNING): their interior point continues to the full tolerance.
    """
    waiting = result.status == RUNNING
    if not bool(waiting.any()):
        return result
    rows = waiting.nonzero().squeeze(-1)
    iteration = Iteration(problem.select(rows), options, policy, handoff=False)
    state = _run(iteration, result.resume_state(rows))
    return scatter_tree(result, rows, finish(iteration, state), problem.batch)


def _run(iteration: Iteration, state: IPMState) -> IPMState:
    check_period = iteration.policy.check_period
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
            iteration = Iteration(
                full_problem.select(rows), options, iteration.policy, handoff=iteration.handoff
            )
            iteration.buffers = buffers  # the smaller batch reuses the memory
    return state if rows is None else full_state.scatter(state, rows)
