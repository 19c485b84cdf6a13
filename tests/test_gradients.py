"""Gradients: finite-difference checks (gradcheck), degenerate problems, no refactorization."""

from __future__ import annotations

from unittest import mock

import pytest
import torch

import optnet
from tests.support import known_solution_problem

TIGHT = optnet.SolverOptions(eps_abs=1e-12, eps_rel=1e-12, refine_steps=3, max_iter=100)


def _problem(batch=2, n=5, m=6, neq=1, seed=0):
    (Q, p, G, h, A, b), _ = known_solution_problem(batch, n, m, neq, seed)
    M = torch.linalg.cholesky(Q)  # Q = M M' exactly, so Q(M) passes through the test point
    return M, p, G, h, A, b


def _solve(M, p, G, h, A, b, **bounds):
    # Build Q inside the checked function so that perturbations keep it symmetric.
    Q = M @ M.mT + 1e-12 * torch.eye(M.shape[-1], dtype=M.dtype)
    return optnet.solve_qp(Q, p, G, h, A, b, options=TIGHT, **bounds)


@pytest.mark.parametrize("output", ["z", "lam", "nu"])
def test_gradcheck_all_inputs(output):
    inputs = [x.clone().requires_grad_() for x in _problem()]

    def f(*args):
        return getattr(_solve(*args), output)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize("output", ["z", "lam_lb", "lam_ub"])
def test_gradcheck_bounds(output):
    g = torch.Generator().manual_seed(1)
    n = 5
    M = torch.eye(n, dtype=torch.float64) + 0.1 * torch.randn(
        2, n, n, generator=g, dtype=torch.float64
    )
    # Targets far outside the box on some coordinates make those bounds strictly active.
    p = torch.tensor([[3.0, -3.0, 0.2, -0.1, 0.0], [-3.0, 0.1, 3.0, 0.0, 0.3]], dtype=torch.float64)
    lb = -torch.ones(2, n, dtype=torch.float64)
    ub = torch.ones(2, n, dtype=torch.float64)
    inputs = [x.clone().requires_grad_() for x in (M, p, lb, ub)]

    def f(M, p, lb, ub):
        return getattr(_solve(M, p, None, None, None, None, lb=lb, ub=ub), output)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_weakly_active_constraint_gives_a_one_sided_derivative():
    # min 1/2 z^2 s.t. z >= 0: at p = 0 the constraint is active with a zero dual.
    Q = torch.eye(1, dtype=torch.float64)
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    G = (-torch.eye(1, dtype=torch.float64)).requires_grad_()
    h = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    sol = optnet.solve_qp(Q, p, G, h)
    (sol.z.sum() + sol.lam.sum()).backward()
    for x in (p, G, h):
        assert torch.isfinite(x.grad).all()
    # z = max(-p, 0) and lam = max(p, 0): the gradient of z + lam is the one-sided derivative
    # of the piece the polish picked, +1 (constraint active: z = 0, lam = p) or -1 (inactive:
    # z = -p, lam = 0), never a blend of the two.
    assert abs(abs(float(p.grad)) - 1.0) < 1e-9, float(p.grad)


def test_gradients_of_singular_qp_are_finite():
    # A linear program with a unique solution: Q = 0.
    Q = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    p = torch.tensor([-1.0, -2.0], dtype=torch.float64, requires_grad=True)
    G = torch.tensor([[1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    h = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    sol = optnet.solve_qp(Q, p, G, h, lb=torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(sol.z, torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-7)
    sol.z.sum().backward()
    for x in (Q, p, G, h):
        assert torch.isfinite(x.grad).all()
    # z2 = h at this vertex, so dz/dh = [0, 1].
    assert torch.allclose(h.grad, torch.ones(1, dtype=torch.float64), atol=1e-5)


def test_backward_performs_no_factorization():
    inputs = [x.clone().requires_grad_() for x in _problem(batch=4, n=6, m=8, neq=2)]
    sol = _solve(*inputs)
    loss = sol.z.square().sum() + sol.lam.sum() + sol.nu.sum()
    with mock.patch("torch.linalg.cholesky_ex", side_effect=AssertionError("refactored")) as chol:
        loss.backward()
    assert chol.call_count == 0
    assert all(x.grad is not None for x in inputs)


def test_gradients_cost_no_factorization_beyond_the_forward():
    with mock.patch("optnet._kkt.factor", wraps=optnet._kkt.factor) as factor:
        sol = _solve(*_problem())
        calls_no_grad = factor.call_count
    inputs = [x.clone().requires_grad_() for x in _problem()]
    with mock.patch("optnet._kkt.factor", wraps=optnet._kkt.factor) as factor:
        _solve(*inputs)
        calls_grad = factor.call_count
    # The polish's active-set factor is the backward pass's: no extra factorization.
    assert calls_grad == calls_no_grad
    assert bool(sol.solved.all())


def test_only_needed_gradients_are_computed():
    M, p, G, h, A, b = _problem()
    p = p.clone().requires_grad_()
    sol = _solve(M, p, G, h, A, b)
    sol.z.sum().backward()
    assert p.grad is not None and G.grad is None and M.grad is None


def test_unsolved_problems_get_zero_gradients():
    inputs = [x.clone().requires_grad_() for x in _problem(batch=3)]
    # Too few iterations, and a tolerance below round-off that the polish cannot meet either.
    options = optnet.SolverOptions(eps_abs=1e-18, eps_rel=0.0, max_iter=1)
    M, p, G, h, A, b = inputs
    Q = M @ M.mT
    sol = optnet.solve_qp(Q, p, G, h, A, b, options=options)
    unsolved = sol.status != optnet.QPStatus.SOLVED
    assert bool(unsolved.any())
    (sol.z.sum() + sol.lam.sum()).backward()
    for x in (p, h, b):
        assert not bool(x.grad[unsolved].any())
