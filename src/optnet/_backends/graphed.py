"""The graphed backend: the interior-point solve replayed as CUDA graphs.

A small problem's iteration is a few hundred tiny kernels, and launching them from Python costs
far more than running them. For each problem shape (and dtype, device, options) the solve is
captured once as three graphs sharing static buffers: the starting point, a chunk of
``check_every`` iterations that advances the state in place, and the final assessment. A call
copies its data into the static buffers, replays the graphs (the host reads the convergence
flags only between chunks) and returns copies of the results, so callers never share memory.

The ``compiled`` variant also fuses the iteration's elementwise work with ``torch.compile``.
On CPU nothing is captured: the same buffer plumbing runs eagerly (the CPU-testable twin).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import OrderedDict
from contextlib import nullcontext
from typing import Any

import torch

from .._ipm import IPMResult, IPMState, Iteration, finish, initial_state
from .._ipm.state import map_tensors
from .._options import SolverOptions
from .._problem import Problem

logger = logging.getLogger("optnet")
_CACHE_SIZE = 4
# Graphs pay off while launches dominate; past this many matrix entries per solve the kernels
# themselves dominate and a captured solve would only pin memory (static buffers, graph pools).
MAX_GRAPHED_ENTRIES = 2**25


def worth_capturing(problem: Problem) -> bool:
    """Whether the solve is small enough to be launch-bound (see MAX_GRAPHED_ENTRIES)."""
    rows = problem.n + problem.m_all + (0 if problem.A is None else problem.A.shape[-2])
    return problem.batch * problem.n * rows <= MAX_GRAPHED_ENTRIES


def _copy_into(dst: Any, src: Any) -> None:
    for f in dataclasses.fields(dst):
        a, b = getattr(dst, f.name), getattr(src, f.name)
        if isinstance(a, torch.Tensor):
            a.copy_(b)
        elif dataclasses.is_dataclass(a):
            _copy_into(a, b)


class _Replayable:
    """``body()`` recorded once as a CUDA graph and replayed; with ``capture=False`` the eager
    twin simply calls ``body()``, which lets the CPU tests exercise the same buffer plumbing."""

    def __init__(self, body, capture: bool):
        self.body, self.graph = body, None
        if capture:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                body()

    def replay(self) -> None:
        if self.graph is None:
            self.body()
        else:
            self.graph.replay()


class CapturedSolve:
    """Static buffers for one problem shape and the three replayable parts of a solve."""

    def __init__(
        self, problem: Problem, options: SolverOptions, chunk: int, capture: bool, compiled: bool
    ):
        self.options, self.chunk = options, chunk
        self.problem = map_tensors(problem, torch.clone)
        self.iteration = Iteration(self.problem, options)
        self.iteration.captured = capture
        self._advance = self._advance_chunk
        if compiled:
            self._advance = torch.compile(self._advance_chunk, dynamic=False)
        # One eager pass allocates the static state and result, and (on a side stream, as
        # capture requires) creates library handles and workspaces.
        side = torch.cuda.Stream() if capture else None
        if side is not None:
            side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side) if side is not None else nullcontext():
            self.state = initial_state(self.problem, options)
            self.result = finish(self.iteration, self._advance())
        if side is not None:
            torch.cuda.current_stream().wait_stream(side)
        self.start = _Replayable(
            lambda: _copy_into(self.state, initial_state(self.problem, options)), capture
        )
        self.step = _Replayable(lambda: _copy_into(self.state, self._advance()), capture)
        self.end = _Replayable(
            lambda: _copy_into(self.result, finish(self.iteration, self.state)), capture
        )

    def _advance_chunk(self) -> IPMState:
        current = self.state
        for k in range(self.chunk):
            current = self.iteration(current, check_certificates=k == 0)
        return current

    def run(self, problem: Problem) -> IPMResult:
        _copy_into(self.problem, problem)
        self.start.replay()
        for _ in range(math.ceil(self.options.max_iter / self.chunk)):
            self.step.replay()
            if not bool(self.iteration.running(self.state).any()):
                break
        self.end.replay()
        return map_tensors(self.result, torch.clone)


_cache: OrderedDict[tuple, CapturedSolve] = OrderedDict()


def _key(problem: Problem, options: SolverOptions, chunk: int, compiled: bool) -> tuple:
    shapes = []
    map_tensors(problem, lambda t: shapes.append(tuple(t.shape)))
    absent = tuple(getattr(problem, f.name) is None for f in dataclasses.fields(problem))
    device = problem.p.device
    return (tuple(shapes), absent, problem.batch, problem.p.dtype, device, options, chunk, compiled)


_uncapturable: set[tuple] = set()


def solve(problem: Problem, options: SolverOptions, compiled: bool = False) -> IPMResult | None:
    """The whole interior-point solve through cached CUDA graphs (eagerly on CPU).

    Returns None when this shape cannot be captured (a library routine refused stream
    capture); the caller then solves with another backend. The refusal is remembered per shape.
    """
    chunk = options.host_check_period(problem.p.device)
    capture = problem.p.device.type == "cuda"
    key = _key(problem, options, chunk, compiled)
    if key in _uncapturable:
        return None
    captured = _cache.pop(key, None)
    if captured is None:
        try:
            captured = CapturedSolve(problem, options, chunk, capture, compiled)
        except RuntimeError as err:  # stream capture invalidated by a non-capturable kernel
            if not capture:
                raise
            logger.warning("optnet: CUDA graph capture failed (%s); solving eagerly", err)
            _uncapturable.add(key)
            torch.cuda.synchronize()
            return None
    _cache[key] = captured
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return captured.run(problem)


def solve_compiled(problem: Problem, options: SolverOptions) -> IPMResult | None:
    return solve(problem, options, compiled=True)
