"""Warm starts from a guessed active set: the right guess needs no interior point, a wrong one
costs only the wasted polish (the problem is solved from scratch). The backend, then the public
``solve_qp(..., warm_start=)`` against the known solutions and their exact derivatives, on every
backend (the tests taking ``backend_options``)."""

from __future__ import annotations

import functools
from unittest import mock

import pytest
import torch

import optnet
from optnet import _backends
from optnet._problem import Problem
from tests.support import active_set_gradients, assert_close_to, known_solution_problem

OPTIONS = optnet.SolverOptions()


def _problem(seed=1, shift=0.0):
    (Q, p, G, h, A, b), _ = known_solution_problem(8, 12, 16, 3, seed=seed)
    p = p + shift * torch.randn(p.shape, generator=torch.Generator().manual_seed(5), dtype=p.dtype)
    return Problem.from_inputs(Q, p, G, h, A, b, None, None, 8)


def test_the_previous_active_set_solves_a_nearby_problem_without_iterations():
    previous = _backends.solve(_problem(), OPTIONS)[0]
    nearby = _problem(shift=1e-3)
    cold = _backends.solve(nearby, OPTIONS)[0]
    warm = _backends.solve(nearby, OPTIONS, warm_active=previous.factor.active > 0)[0]
    assert bool((warm.status == optnet.QPStatus.SOLVED).all())
    assert int(warm.iterations.sum()) == 0 and int(cold.iterations.min()) > 0
    torch.testing.assert_close(warm.z, cold.z, rtol=0, atol=1e-12)
    torch.testing.assert_close(warm.lam, cold.lam, rtol=0, atol=1e-12)


def test_a_wrong_guess_falls_back_to_the_interior_point_per_problem():
    problem = _problem()
    cold = _backends.solve(problem, OPTIONS)[0]
    guess = cold.factor.active > 0
    guess[:3] = ~guess[:3]  # three problems get the complement of their active set
    warm = _backends.solve(problem, OPTIONS, warm_active=guess)[0]
    assert bool((warm.status == optnet.QPStatus.SOLVED).all())
    assert bool((warm.iterations[:3] > 0).all()) and int(warm.iterations[3:].sum()) == 0
    torch.testing.assert_close(warm.z, cold.z, rtol=0, atol=1e-12)


# --- the public API: solve_qp(..., warm_start=) ---------------------------------------------


def _known(seed=1):
    """((Q, p, G, h, A, b), (z, lam, nu)) of 8 known-solution problems (margins >= 0.5)."""
    (Q, p, G, h, A, b), (z, lam, nu, _) = known_solution_problem(8, 8, 12, 3, seed=seed)
    return (Q, p, G, h, A, b), (z, lam, nu)


def _solve_and_differentiate(Q, p, G, h, A, b, warm_start, options):
    """The solution and the gradients of sum(w * z) in p and h."""
    p, h = p.clone().requires_grad_(), h.clone().requires_grad_()
    sol = optnet.solve_qp(Q, p, G, h, A, b, warm_start=warm_start, options=options)
    w = torch.randn(p.shape, generator=torch.Generator().manual_seed(2), dtype=p.dtype)
    (sol.z * w).sum().backward()
    return sol, w, p.grad, h.grad


def _assert_exact(sol, w, g_p, g_h, Q, G, A, known):
    z, lam, nu = known
    assert_close_to(sol.z.detach(), z, "z", torch.float64)
    assert_close_to(sol.lam.detach(), lam, "dual", torch.float64)
    expected = active_set_gradients(Q, G, A, z, lam, nu, lam > 0, w)
    assert_close_to(g_p, expected["p"], "grad", torch.float64)
    assert_close_to(g_h, expected["h"], "grad", torch.float64)


def test_solve_qp_warm_started_from_a_nearby_solution_needs_no_iterations(backend_options):
    (Q, p, G, h, A, b), known = _known()
    shift = 1e-3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(5), dtype=p.dtype)
    # e.g. the last training step's
    previous = optnet.solve_qp(Q, p + shift, G, h, A, b, options=backend_options)
    assert int(previous.iterations.min()) > 0
    sol, w, g_p, g_h = _solve_and_differentiate(Q, p, G, h, A, b, previous, backend_options)
    assert bool(sol.solved.all()) and int(sol.iterations.sum()) == 0
    _assert_exact(sol, w, g_p, g_h, Q, G, A, known)
    torch.testing.assert_close(sol.active_set.ineq, known[1] > 0, rtol=0, atol=0)


# Wrong guesses of an active set (each problem's is unique: strictly complementary solutions).
WRONG = {
    "every-row": lambda active: torch.ones_like(active),  # no point satisfies that
    "no-row": torch.zeros_like,  # the unconstrained minimizer violates the active rows
    "complement": torch.logical_not,  # holds the rows that have slack
}


@pytest.mark.parametrize("wrong", list(WRONG))
@pytest.mark.parametrize("how_many", [3, 8], ids=["3-of-8-wrong", "all-wrong"])
def test_a_wrong_warm_start_is_solved_from_scratch_with_exact_gradients(
    backend_options, wrong, how_many
):
    (Q, p, G, h, A, b), known = _known()
    guess = known[1] > 0
    guess[:how_many] = WRONG[wrong](guess[:how_many])
    sol, w, g_p, g_h = _solve_and_differentiate(
        Q, p, G, h, A, b, optnet.ActiveSet(ineq=guess), backend_options
    )
    assert bool(sol.solved.all())
    assert bool((sol.iterations[:how_many] > 0).all())
    assert int(sol.iterations[how_many:].sum()) == 0
    _assert_exact(sol, w, g_p, g_h, Q, G, A, known)


def test_a_warm_started_backward_performs_no_factorization(backend_options):
    (Q, p, G, h, A, b), _ = _known()
    previous = optnet.solve_qp(Q, p, G, h, A, b, options=backend_options)
    p = p.clone().requires_grad_()
    sol = optnet.solve_qp(Q, p, G, h, A, b, warm_start=previous, options=backend_options)
    assert int(sol.iterations.sum()) == 0
    with mock.patch("torch.linalg.cholesky_ex", side_effect=AssertionError("refactored")):
        sol.z.sum().backward()
    assert p.grad is not None


def test_a_cached_bound_set_shared_or_per_problem(backend_options):
    # min 1/2 z'z + p'z  s.t.  z >= 0:  z = max(-p, 0), the bound active where p > 0.
    g = torch.Generator().manual_seed(0)
    d = torch.float64
    p = torch.randn(6, 5, generator=g, dtype=d)
    Q, lb = torch.eye(5, dtype=d), torch.zeros(5, dtype=d)
    solve = functools.partial(optnet.solve_qp, options=backend_options)
    per_problem = solve(Q, p, lb=lb, warm_start=optnet.ActiveSet(lb=p > 0))
    assert int(per_problem.iterations.sum()) == 0
    torch.testing.assert_close(per_problem.z, (-p).clamp_min(0), rtol=0, atol=1e-15)
    same_sign = p.abs() * torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=d)
    shared = solve(Q, same_sign, lb=lb, warm_start=optnet.ActiveSet(lb=same_sign[0] > 0))
    assert int(shared.iterations.sum()) == 0
    torch.testing.assert_close(shared.z, (-same_sign).clamp_min(0), rtol=0, atol=1e-15)


def test_qplayer_passes_the_warm_start():
    (Q, p, G, h, A, b), known = _known()
    layer = optnet.nn.QPLayer()
    sol = layer(Q, p, G, h, A, b, warm_start=optnet.ActiveSet(ineq=known[1] > 0))
    assert int(sol.iterations.sum()) == 0
    assert_close_to(sol.z, known[0], "z", torch.float64)


def test_warm_start_validation_names_the_argument():
    (Q, p, G, h, A, b), _ = _known()
    sol = optnet.solve_qp(Q, p, G, h, A, b)
    lb = torch.zeros(8, dtype=Q.dtype)
    with pytest.raises(ValueError, match=r"warm_start.ineq must have shape \(12,\) or \(B, 12\) "
                                         r"= \(4, 12\), got \(8, 12\)"):  # fmt: skip
        optnet.solve_qp(Q[:4], p[:4], G[:4], h[:4], A[:4], b[:4], warm_start=sol)
    with pytest.raises(ValueError, match=r"warm_start.ineq must have shape \(12,\), got"):
        optnet.solve_qp(Q[0], p[0], G[0], h[0], A[0], b[0], warm_start=sol)
    with pytest.raises(ValueError, match="warm_start.lb is None but the problem has lb"):
        optnet.solve_qp(Q, p, G, h, A, b, lb=lb, warm_start=sol)
    with pytest.raises(ValueError, match="warm_start.ineq was given but the problem has no G"):
        optnet.solve_qp(Q, p, A=A, b=b, warm_start=sol)
    with pytest.raises(TypeError, match="warm_start.ineq must be a bool tensor, got torch.float64"):
        optnet.solve_qp(Q, p, G, h, A, b, warm_start=optnet.ActiveSet(ineq=sol.lam))
    with pytest.raises(TypeError, match="warm_start must be a QPSolution, an ActiveSet or None"):
        optnet.solve_qp(Q, p, G, h, A, b, warm_start=sol.active_set.ineq)
