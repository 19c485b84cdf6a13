"""Replay chunks of interior-point iterations as CUDA graphs.

A small problem's iteration is a few hundred tiny kernels, and launching them from Python costs
far more than running them. Capturing ``check_every`` iterations once per problem shape and
replaying the graph removes that cost; the host still reads the convergence flags only between
chunks. Graphs are cached by shape, dtype, device and options; each call copies its data into
the cached static buffers, so callers never see memory shared between calls.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

import torch

from ._options import SolverOptions
from ._pdipm import IPMState, Iteration
from ._problem import Problem

_CACHE_SIZE = 16


@dataclasses.dataclass
class _CapturedLoop:
    problem: Problem  # static input buffers
    state: IPMState  # static state, advanced in place by each replay
    graph: torch.cuda.CUDAGraph
    iteration: Iteration


_cache: OrderedDict[tuple, _CapturedLoop] = OrderedDict()


def _tensor_fields(problem: Problem) -> dict[str, torch.Tensor | None]:
    return {
        f.name: getattr(problem, f.name)
        for f in dataclasses.fields(problem)
        if f.name != "batch"
    }


def _key(problem: Problem, options: SolverOptions, state: IPMState, chunk: int) -> tuple:
    shapes = tuple(
        None if t is None else tuple(t.shape) for t in _tensor_fields(problem).values()
    )
    device = problem.p.device
    return (shapes, problem.batch, state.nu is None, problem.p.dtype, device, options, chunk)


def _capture(problem: Problem, options: SolverOptions, state: IPMState, chunk: int):
    static_problem = Problem(
        **{k: None if t is None else t.clone() for k, t in _tensor_fields(problem).items()},
        batch=problem.batch,
    )
    static_state = state.replace_tensors([t.clone() for t in state.tensors()])
    iteration = Iteration(static_problem, options)
    # Warm up on a side stream so that library handles and workspaces exist before capture.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        iteration(static_state, check_certificates=True)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        current = static_state
        for k in range(chunk):
            current = iteration(current, check_certificates=k == 0)
        for dst, src in zip(static_state.tensors(), current.tensors()):
            dst.copy_(src)
    return _CapturedLoop(static_problem, static_state, graph, iteration)


def run_captured(
    problem: Problem, options: SolverOptions, state: IPMState, chunk: int
) -> IPMState:
    """Iterate from ``state`` to convergence (or max_iter) by replaying a captured chunk."""
    key = _key(problem, options, state, chunk)
    loop = _cache.pop(key, None)
    if loop is None:
        loop = _capture(problem, options, state, chunk)
    _cache[key] = loop
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)

    for name, src in _tensor_fields(problem).items():
        if src is not None:
            getattr(loop.problem, name).copy_(src)
    for dst, src in zip(loop.state.tensors(), state.tensors()):
        dst.copy_(src)
    for _ in range(math.ceil(options.max_iter / chunk)):
        loop.graph.replay()
        if not bool(loop.iteration.running(loop.state).any()):
            break
    return loop.state.replace_tensors([t.clone() for t in loop.state.tensors()])
