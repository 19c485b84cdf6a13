"""Warm starts from a guessed active set: the right guess needs no interior point, a wrong one
costs only the wasted polish (the problem is solved from scratch)."""

from __future__ import annotations

import torch

import optnet
from optnet import _backends
from optnet._problem import Problem
from tests.support import known_solution_problem

OPTIONS = optnet.SolverOptions()


def _problem(seed=1, shift=0.0):
    (Q, p, G, h, A, b), _ = known_solution_problem(8, 12, 16, 3, seed=seed)
    p = p + shift * torch.randn(p.shape, generator=torch.Generator().manual_seed(5), dtype=p.dtype)
    return Problem.from_inputs(Q, p, G, h, A, b, None, None, 8)


def test_the_previous_active_set_solves_a_nearby_problem_without_iterations():
    previous = _backends.solve(_problem(), OPTIONS)
    nearby = _problem(shift=1e-3)
    cold = _backends.solve(nearby, OPTIONS)
    warm = _backends.solve(nearby, OPTIONS, warm_active=previous.factor.active > 0)
    assert bool((warm.status == optnet.QPStatus.SOLVED).all())
    assert int(warm.iterations.sum()) == 0 and int(cold.iterations.min()) > 0
    torch.testing.assert_close(warm.z, cold.z, rtol=0, atol=1e-12)
    torch.testing.assert_close(warm.lam, cold.lam, rtol=0, atol=1e-12)


def test_a_wrong_guess_falls_back_to_the_interior_point_per_problem():
    problem = _problem()
    cold = _backends.solve(problem, OPTIONS)
    guess = cold.factor.active > 0
    guess[:3] = ~guess[:3]  # three problems get the complement of their active set
    warm = _backends.solve(problem, OPTIONS, warm_active=guess)
    assert bool((warm.status == optnet.QPStatus.SOLVED).all())
    assert bool((warm.iterations[:3] > 0).all()) and int(warm.iterations[3:].sum()) == 0
    torch.testing.assert_close(warm.z, cold.z, rtol=0, atol=1e-12)
