"""Gradients: finite-difference checks (gradcheck) of z and the duals on every backend,
degenerate problems, no refactorization, and only the requested gradients computed."""

from __future__ import annotations

import dataclasses
from unittest import mock

import pytest
import torch

import optnet
from tests.support import GRADCHECK, TIGHT, known_solution_problem

DEFAULT_TIGHT = optnet.SolverOptions(**TIGHT)


def _problem(batch=2, n=5, m=6, neq=1, seed=0):
    (Q, p, G, h, A, b), _ = known_solution_problem(batch, n, m, neq, seed)
    M = torch.linalg.cholesky(Q)  # Q = M M' exactly, so Q(M) passes through the test point
    return M, p, G, h, A, b


def _box(batch=2, n=5):
    """(M, p, lb, ub) of a problem with strictly active lower and upper bounds."""
    g = torch.Generator().manual_seed(1)
    M = torch.eye(n, dtype=torch.float64) + 0.1 * torch.randn(
        batch, n, n, generator=g, dtype=torch.float64
    )
    # Targets far outside the box on some coordinates make those bounds strictly active.
    p = torch.tensor([[3.0, -3.0, 0.2, -0.1, 0.0], [-3.0, 0.1, 3.0, 0.0, 0.3]], dtype=torch.float64)
    lb = -torch.ones(batch, n, dtype=torch.float64)
    ub = torch.ones(batch, n, dtype=torch.float64)
    return M, p, lb, ub


def _solve(M, p, G, h, A, b, options=DEFAULT_TIGHT, **bounds):
    # Build Q inside the checked function so that perturbations keep it symmetric.
    Q = M @ M.mT + 1e-12 * torch.eye(M.shape[-1], dtype=M.dtype)
    return optnet.solve_qp(Q, p, G, h, A, b, options=options, **bounds)


@pytest.mark.parametrize("output", ["z", "lam", "nu"])
def test_gradcheck_all_inputs(tight_options, output):
    inputs = [x.clone().requires_grad_() for x in _problem()]

    def f(*args):
        return getattr(_solve(*args, options=tight_options), output)

    assert torch.autograd.gradcheck(f, inputs, **GRADCHECK)


@pytest.mark.parametrize("output", ["z", "lam_lb", "lam_ub"])
def test_gradcheck_bounds(tight_options, output):
    inputs = [x.clone().requires_grad_() for x in _box()]

    def f(M, p, lb, ub):
        return getattr(_solve(M, p, None, None, None, None, tight_options, lb=lb, ub=ub), output)

    assert torch.autograd.gradcheck(f, inputs, **GRADCHECK)


def test_weakly_active_constraint_gives_a_one_sided_derivative(backend_options):
    # min 1/2 z^2 s.t. z >= 0: at p = 0 the constraint is active with a zero dual.
    Q = torch.eye(1, dtype=torch.float64)
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    G = (-torch.eye(1, dtype=torch.float64)).requires_grad_()
    h = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    sol = optnet.solve_qp(Q, p, G, h, options=backend_options)
    (sol.z.sum() + sol.lam.sum()).backward()
    for x in (p, G, h):
        assert torch.isfinite(x.grad).all()
    # z = max(-p, 0) and lam = max(p, 0): the gradient of z + lam is the one-sided derivative
    # of the piece the polish picked, +1 (constraint active: z = 0, lam = p) or -1 (inactive:
    # z = -p, lam = 0), never a blend of the two.
    assert abs(abs(float(p.grad)) - 1.0) < 1e-9, float(p.grad)


def test_gradients_of_singular_qp_are_finite(backend_options):
    # A linear program with a unique solution: Q = 0.
    Q = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    p = torch.tensor([-1.0, -2.0], dtype=torch.float64, requires_grad=True)
    G = torch.tensor([[1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    h = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    sol = optnet.solve_qp(Q, p, G, h, lb=torch.zeros(2, dtype=torch.float64),
                          options=backend_options)  # fmt: skip
    assert torch.allclose(sol.z, torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-7)
    sol.z.sum().backward()
    for x in (Q, p, G, h):
        assert torch.isfinite(x.grad).all()
    # z2 = h at this vertex, so dz/dh = [0, 1].
    assert torch.allclose(h.grad, torch.ones(1, dtype=torch.float64), atol=1e-5)


def test_backward_performs_no_factorization(tight_options):
    inputs = [x.clone().requires_grad_() for x in _problem(batch=4, n=6, m=8, neq=2)]
    sol = _solve(*inputs, options=tight_options)
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


INPUT_NAMES = ("Q", "p", "G", "h", "A", "b", "lb", "ub")


@pytest.mark.parametrize("requested", INPUT_NAMES)
def test_the_backward_computes_only_the_requested_gradients(requested):
    # Autograd drops a gradient returned for an input that does not require one, so `.grad`
    # cannot tell whether it was computed; the backward node's hook sees what it returned.
    M, p, G, h, A, b = _problem()
    lb, ub = torch.full_like(p, -100.0), torch.full_like(p, 100.0)
    data = dict(zip(INPUT_NAMES, (M @ M.mT, p, G, h, A, b, lb, ub)))
    data[requested] = data[requested].clone().requires_grad_()
    sol = optnet.solve_qp(**data)
    returned = []
    sol.z.grad_fn.register_hook(lambda grad_inputs, _: returned.append(grad_inputs))
    outputs = (sol.z, sol.lam, sol.nu, sol.lam_lb, sol.lam_ub)
    sum(x.square().sum() for x in outputs).backward()
    (grads,) = returned
    assert len(grads) == len(INPUT_NAMES)  # one per tensor input of the node
    computed = [g for g in grads if g is not None]
    assert len(computed) == 1 and computed[0].shape == data[requested].shape


def test_unsolved_problems_get_zero_gradients(backend_options):
    inputs = [x.clone().requires_grad_() for x in _problem(batch=3)]
    # The middle problem is nonconvex (never iterated); one iteration leaves the others unsolved
    # or solved. (A tolerance below round-off no longer keeps them unsolved: the rounding floor
    # stands for it, docs/solver.md, "Stopping rule".)
    options = dataclasses.replace(backend_options, max_iter=1)
    M, p, G, h, A, b = inputs
    Q = (M @ M.mT) * torch.tensor([1.0, -1.0, 1.0], dtype=M.dtype).view(3, 1, 1)
    sol = optnet.solve_qp(Q, p, G, h, A, b, options=options)
    unsolved = sol.status != optnet.QPStatus.SOLVED
    assert bool(unsolved[1])
    (sol.z.sum() + sol.lam.sum()).backward()
    for x in (p, h, b):
        assert not bool(x.grad[unsolved].any())
