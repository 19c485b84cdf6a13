"""The graphed backend: the interior-point solve replayed as CUDA graphs.

A small problem's iteration is a few hundred tiny kernels, and launching them from Python costs
far more than running them. For each problem shape (and dtype, device, options) the solve is
captured once as graphs sharing static buffers: the starting point, a chunk of ``check_every``
iterations (and one of a single iteration) that advances the state in place, and the final
assessment. A call copies its data into the static buffers, replays the graphs (the host reads
the convergence flags only between chunks) and returns copies of the results, so callers never
share memory.

On CPU nothing is captured: the same buffer plumbing runs eagerly under the same policy (no
host reads inside a solve, inverse factors, every polish round), the CPU-testable twin.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from typing import Any

import torch

from .._ipm import IPMResult, IPMState, Iteration, finish, initial_state
from .._options import SolverOptions
from .._policy import INVERSE, NEVER, Policy
from .._problem import Problem
from .._tree import map_tensors

logger = logging.getLogger("optnet")
_CACHE_SIZE = 4
# Graphs pay off while launches dominate; past this many matrix entries per solve the kernels
# themselves dominate and a captured solve would only pin memory (static buffers, graph pools).
MAX_GRAPHED_ENTRIES = 2**25


# With the default ``check_every``, the host reads the flags after chunks of this many
# iterations (a read stalls the GPU between graph replays) ...
CHUNK = 4
# ... until this many iterations, then after every one: solves take 8-16 iterations, and the
# iterations of a chunk after the last problem has stopped are wasted GPU time (an iteration
# costs 0.3-2 ms), while a host read between replays costs tens of microseconds.
SINGLE_ITERATIONS_FROM = 8


def policy(device: torch.device, options: SolverOptions) -> Policy:
    """Nothing is read inside a recorded graph; GPUs keep inverse factors. The CPU twin runs
    under the same policy, so that CI exercises what the GPU runs."""
    return Policy(
        host_reads=NEVER,
        check_period=options.check_every or CHUNK,
        reuse_buffers=False,
        factor_form=INVERSE,
    )


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


def _eager_first(body, capture: bool) -> None:
    """Run ``body()`` once eagerly before its capture: on a side stream when capturing, as capture
    requires, so that library handles and workspaces are created outside the graph."""
    if not capture:
        body()
        return
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        body()
    torch.cuda.current_stream().wait_stream(side)


class CapturedSolve:
    """Static buffers for one problem shape and the replayable parts of a solve: the start,
    a chunk of ``chunk`` iterations, a single iteration (``tail``) and the finish."""

    def __init__(
        self, problem: Problem, options: SolverOptions, policy: Policy, capture: bool, tail: bool
    ):
        chunk = policy.check_period
        self.options, self.chunk = options, chunk
        self.problem = map_tensors(problem, torch.clone)
        self.iteration = Iteration(self.problem, options, policy)

        def start():
            return initial_state(self.problem, options, policy)

        # One eager pass allocates the static state and result.
        def first_pass():
            self.state = start()
            self.result = finish(self.iteration, self._advance(chunk))

        _eager_first(first_pass, capture)
        self.start = _Replayable(lambda: _copy_into(self.state, start()), capture)
        self.step = _Replayable(lambda: _copy_into(self.state, self._advance(chunk)), capture)
        self.single = self.step
        if tail and chunk > 1:
            self.single = _Replayable(lambda: _copy_into(self.state, self._advance(1)), capture)
        self.end = _Replayable(
            lambda: _copy_into(self.result, finish(self.iteration, self.state)), capture
        )

    def _advance(self, iterations: int) -> IPMState:
        current = self.state
        for k in range(iterations):
            current = self.iteration(current, check_certificates=k == 0)
        return current

    def run(self, problem: Problem) -> IPMResult:
        _copy_into(self.problem, problem)
        self.start.replay()
        done = 0
        while done < self.options.max_iter:
            if done < SINGLE_ITERATIONS_FROM or self.single is self.step:
                self.step.replay()
                done += self.chunk
            else:
                self.single.replay()
                done += 1
            if not bool(self.iteration.running(self.state).any()):
                break
        self.end.replay()
        return map_tensors(self.result, torch.clone)


class CapturedFunction:
    """``fn`` of a fixed list of tensors (None allowed) recorded once with static input and output
    buffers; ``fn`` returns a tuple of tensors and must not read data on the host."""

    def __init__(self, fn, tensors, capture: bool):
        self.inputs = [None if t is None else t.clone() for t in tensors]

        def first_pass():
            self.outputs = fn(*self.inputs)

        _eager_first(first_pass, capture)

        def body():
            for out, new in zip(self.outputs, fn(*self.inputs)):
                out.copy_(new)

        self.call = _Replayable(body, capture)

    def run(self, tensors) -> tuple:
        for static, t in zip(self.inputs, tensors):
            if static is not None:
                static.copy_(t)
        self.call.replay()
        return tuple(out.clone() for out in self.outputs)


# Captured solves, and captured functions (the derivatives' solves), each at most _CACHE_SIZE.
_solves: OrderedDict[tuple, CapturedSolve] = OrderedDict()
_functions: OrderedDict[tuple, CapturedFunction] = OrderedDict()
_uncapturable: set[tuple] = set()


def _cached(cache: OrderedDict, key: tuple, make, capture: bool):
    """``cache[key]``, made by ``make()`` on first use; None when capture fails (remembered)."""
    if key in _uncapturable:
        return None
    captured = cache.pop(key, None)
    if captured is None:
        try:
            captured = make()
        except RuntimeError as err:  # stream capture invalidated by a non-capturable kernel
            if not capture:
                raise
            logger.warning("optnet: CUDA graph capture failed (%s); running eagerly", err)
            _uncapturable.add(key)
            torch.cuda.synchronize()
            return None
    cache[key] = captured
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return captured


def _key(problem: Problem, options: SolverOptions) -> tuple:
    shapes = []
    map_tensors(problem, lambda t: shapes.append(tuple(t.shape)))
    absent = tuple(getattr(problem, f.name) is None for f in dataclasses.fields(problem))
    device = problem.p.device
    return (tuple(shapes), absent, problem.batch, problem.p.dtype, device, options)


def solve(problem: Problem, options: SolverOptions, policy: Policy) -> IPMResult | None:
    """The whole interior-point solve through cached CUDA graphs (eagerly on CPU).

    Returns None when this shape cannot be captured (a library routine refused stream
    capture); the caller then solves with another backend. The refusal is remembered per shape.
    """
    capture = problem.p.device.type == "cuda"
    key = _key(problem, options)

    def make():
        return CapturedSolve(problem, options, policy, capture, tail=options.check_every is None)

    captured = _cached(_solves, key, make, capture)
    return None if captured is None else captured.run(problem)


def derivative(kernel, tensors, problem: Problem) -> tuple:
    """A derivative's solve with the forward's factor, ``kernel(*tensors)``, replayed from a
    cached CUDA graph: launched from Python its refinement is hundreds of tiny kernels. Eager
    where the capture fails."""
    out = replay(kernel, tensors)
    return kernel(*tensors, problem=problem) if out is None else out


def replay(fn, tensors) -> tuple | None:
    """``fn(*tensors)`` through a cached CUDA graph per ``fn`` and shapes (eagerly on CPU).

    None when the capture fails (the caller runs ``fn`` itself).
    """
    device = next(t.device for t in tensors if t is not None)
    capture = device.type == "cuda"
    key = (fn, device, tuple(None if t is None else (tuple(t.shape), t.dtype) for t in tensors))
    captured = _cached(_functions, key, lambda: CapturedFunction(fn, tensors, capture), capture)
    return None if captured is None else captured.run(tensors)
