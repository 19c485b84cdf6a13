"""The CUDA-graph solve path's buffer plumbing, run eagerly on CPU (its CPU-testable twin)."""

from __future__ import annotations

import torch

import optnet
from optnet._backends import batched
from optnet._backends.graphed import CapturedSolve
from optnet._problem import Problem
from tests.support import random_qp


def test_static_buffer_solve_matches_eager_solve_and_is_reusable():
    options = optnet.SolverOptions()
    results = []
    captured = None
    for seed in (1, 2, 1):
        Q, p, G, h, A, b = random_qp(4, 8, 10, 2, seed=seed)
        problem = Problem.from_inputs(Q, p, G, h, A, b, None, None, 4)
        if captured is None:
            captured = CapturedSolve(problem, options, chunk=3, capture=False, compiled=False)
        replayed = captured.run(problem)
        eager = batched.solve(problem, options)
        assert torch.equal(replayed.status, eager.status)
        assert torch.allclose(replayed.z, eager.z, atol=1e-12)
        results.append(replayed.z)
    # The same data gives the same answer after the buffers held another problem.
    assert torch.equal(results[0], results[2]) and not torch.allclose(results[0], results[1])


def test_replay_with_other_infinite_rows_matches_eager_solve():
    # The number of finite rows enters every iteration (mu); it must come from the buffers'
    # current mask, not from the problem the graphs were captured with.
    options = optnet.SolverOptions()
    Q, p, G, h, A, b = random_qp(3, 6, 8, 1, seed=3)
    captured = CapturedSolve(
        Problem.from_inputs(Q, p, G, h, A, b, None, None, 3),
        options,
        chunk=3,
        capture=False,
        compiled=False,
    )
    h = h.clone()
    h[:, :3] = float("inf")
    problem = Problem.from_inputs(Q, p, G, h, A, b, None, None, 3)
    replayed, eager = captured.run(problem), batched.solve(problem, options)
    assert torch.equal(replayed.iterations, eager.iterations)
    assert float((replayed.z - eager.z).abs().max()) < 1e-12
