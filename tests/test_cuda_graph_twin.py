"""The CUDA-graph solve path's buffer plumbing, run eagerly on CPU (its CPU-testable twin)."""

from __future__ import annotations

import dataclasses

import torch

import optnet
from optnet._backends import batched, graphed
from optnet._backends.graphed import CapturedSolve
from optnet._problem import Problem
from tests.support import random_qp


def _twin_policy(chunk: int):
    """The graphed backend's policy (no host reads, inverse factors) with chunks of ``chunk``."""
    policy = graphed.policy(torch.device("cpu"), optnet.SolverOptions())
    return dataclasses.replace(policy, check_period=chunk)


def test_static_buffer_solve_matches_eager_solve_and_is_reusable():
    options = optnet.SolverOptions()
    results = []
    captured = None
    for seed in (1, 2, 1):
        Q, p, G, h, A, b = random_qp(4, 8, 10, 2, seed=seed)
        problem = Problem.from_inputs(Q, p, G, h, A, b, None, None, 4)
        if captured is None:
            captured = CapturedSolve(problem, options, _twin_policy(3), capture=False, tail=True)
        replayed = captured.run(problem)
        eager = batched.solve(problem, options, _twin_policy(3))
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
        _twin_policy(3),
        capture=False,
        tail=False,
    )
    h = h.clone()
    h[:, :3] = float("inf")
    problem = Problem.from_inputs(Q, p, G, h, A, b, None, None, 3)
    replayed, eager = captured.run(problem), batched.solve(problem, options, _twin_policy(3))
    assert torch.equal(replayed.iterations, eager.iterations)
    assert float((replayed.z - eager.z).abs().max()) < 1e-12


def test_single_iteration_tail_stops_without_wasted_iterations():
    # Chunks of 4 until SINGLE_ITERATIONS_FROM, then single iterations: the same answer as
    # chunks throughout, and the replays end right after the call that finds the last problem
    # converged (its iteration count + 1 calls).
    options = optnet.SolverOptions()
    problem = Problem.from_inputs(*random_qp(4, 8, 10, 2, seed=9), None, None, 4)
    results, executed = {}, {}
    for tail in (False, True):
        captured = CapturedSolve(problem, options, _twin_policy(4), capture=False, tail=tail)
        calls = []
        advance = captured._advance
        captured._advance = lambda k, advance=advance: calls.append(k) or advance(k)
        results[tail] = captured.run(problem)
        executed[tail] = sum(calls)
    needed = int(results[True].iterations.max()) + 1
    assert needed > graphed.SINGLE_ITERATIONS_FROM  # the tail is reached
    assert executed[True] == needed and executed[False] == -(-needed // 4) * 4
    assert torch.equal(results[True].z, results[False].z)
    assert torch.equal(results[True].iterations, results[False].iterations)


def test_replayed_derivative_solve_gives_the_eager_gradients():
    # backend="graphed" on CPU runs the derivatives' solve through the replay plumbing (static
    # buffers, copies in and out) without capturing: the gradients must be the eager ones, also
    # on a second call whose data differ, and for a double backward (a second solve with K).
    # (The forward solves differ in their policies, so to round-off, relative to |grad| ~ 1e4.)
    graphed._functions.clear()
    grads = {}
    for backend in ("batched", "graphed"):
        options = optnet.SolverOptions(backend=backend)
        for seed in (4, 5):
            inputs = [x.requires_grad_() for x in random_qp(3, 6, 8, 2, seed=seed)]
            sol = optnet.solve_qp(*inputs, options=options)
            (g_Q,) = torch.autograd.grad((sol.z * sol.z).sum(), inputs[0], create_graph=True)
            (gg_p,) = torch.autograd.grad(g_Q.square().sum(), inputs[1])
            grads[backend, seed] = (g_Q.detach(), gg_p)
    assert len(graphed._functions) == 1  # one shape: one captured function, reused
    for seed in (4, 5):
        for eager, replayed in zip(grads["batched", seed], grads["graphed", seed]):
            assert torch.allclose(eager, replayed, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(grads["graphed", 4][0], grads["graphed", 5][0])


def test_a_declined_capture_runs_batched_and_the_backward_follows_it(monkeypatch):
    # graphed declines (as when a shape cannot be captured): the batched backend solves, the op
    # records it, and the backward's solve runs the batched way, not the graphed one.
    monkeypatch.setattr(graphed, "solve", lambda problem, options, policy: None)
    derivatives = []
    for module in (batched, graphed):
        run = module.derivative
        monkeypatch.setattr(
            module,
            "derivative",
            lambda kernel, tensors, problem, run=run, name=module.__name__: (
                derivatives.append(name.rsplit(".", 1)[-1]) or run(kernel, tensors, problem)
            ),
        )
    inputs = [x.requires_grad_() for x in random_qp(3, 6, 8, 2, seed=4)]
    sol = optnet.solve_qp(*inputs, options=optnet.SolverOptions(backend="graphed"))
    sol.z.sum().backward()
    assert bool(sol.solved.all()) and derivatives == ["batched"]
