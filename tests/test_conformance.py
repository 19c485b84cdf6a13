"""Conformance: every backend against an independent solver (Clarabel) and known solutions.

The conformance suite is every test that takes the ``backend_options`` fixture: it runs once per
configuration of ``tests/support/backends.py`` (each backend of ``optnet._backends.BACKENDS``,
and the batched one on equilibrated data) and is marked ``conformance`` (``pytest -m
conformance``; ``-k graphed`` for one backend). Here: solutions and duals against the reference
and known solutions, exact gradients. Elsewhere, next to the tests of the same feature on one
backend: statuses and certificates (test_status.py), gradcheck of z and the duals
(test_gradients.py), vmap, jacfwd, double backward and torch.compile (test_composability.py),
warm start (test_warm_start.py), the closest feasible problem (test_closest_feasible.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import optnet
from optnet._backends import BACKENDS
from tests.support import (
    active_set_gradients,
    assert_close_to,
    known_solution_problem,
    random_qp,
    reference_solve,
)

pytest.importorskip("clarabel")

CASES = [(0, 0), (12, 0), (0, 3), (12, 3), (30, 6)]  # (m, neq) for n = 10


def test_each_configuration_runs_the_backend_it_names(backend_options, monkeypatch):
    # The suite tests a backend only if its configuration really runs it: no other backend
    # chosen instead, and no decline (graphed returns None when it cannot capture a shape).
    ran = []
    for name, backend in BACKENDS.items():

        def record(problem, options, policy, name=name, solve=backend.solve):
            result = solve(problem, options, policy)
            ran.append((name, result is not None))
            return result

        monkeypatch.setattr(backend, "solve", record)
    sol = optnet.solve_qp(*random_qp(3, 5, 6, 1, seed=1), options=backend_options)
    assert bool(sol.solved.all())
    assert ran == [(backend_options.backend, True)]


def _check_against_reference(sol, inputs, dtype, batch):
    """Compare each problem of ``sol`` with Clarabel on the same data."""
    Q, p, G, h, A, b, lb, ub = inputs
    assert bool(sol.solved.all()), sol.status
    for i in range(1 if batch is None else batch):
        pick = (lambda x: x) if batch is None else (lambda x: x[i])  # noqa: E731
        # Problem i's data: batched inputs have one more dimension than one problem's.
        args = [
            None if x is None else (pick(x) if x.dim() > dims else x).double().numpy()
            for x, dims in zip(inputs, (2, 1, 2, 1, 2, 1, 1, 1))
        ]
        z, lam, nu = reference_solve(*args)
        assert_close_to(pick(sol.z), z, "z", dtype)
        m = 0 if G is None else args[2].shape[0]
        if m:
            finite = np.isfinite(args[3])
            assert_close_to(pick(sol.lam)[finite], lam[finite], "dual", dtype)
            assert_close_to(pick(sol.s)[finite], (args[3] - args[2] @ z)[finite], "z", dtype)
        if A is not None:
            assert_close_to(pick(sol.nu), nu, "dual", dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch", [None, 1, 5])
@pytest.mark.parametrize("m,neq", CASES)
def test_matches_reference_solver(backend_options, m, neq, batch, dtype):
    Q, p, G, h, A, b = random_qp(batch, 10, m, neq, dtype=dtype, seed=m + neq)
    sol = optnet.solve_qp(Q, p, G, h, A, b, options=backend_options)
    _check_against_reference(sol, (Q, p, G, h, A, b, None, None), dtype, batch)


def _mixed_problem(dtype):
    """Shared Q, batched rest, an infinite row of h, equalities and both bounds."""
    Q, p, G, h, A, b = random_qp(4, 8, 10, 2, dtype=dtype, seed=11)
    h = h.clone()
    h[:, 0] = float("inf")
    p = p.clone()
    p[:, 0] -= 100.0  # pushes z_0 onto its upper bound
    lb = torch.full((8,), -2.0, dtype=dtype)
    ub = torch.full((4, 8), 2.0, dtype=dtype)
    return Q[0], p, G, h, A, b, lb, ub


def test_mixed_batching_infinite_rows_and_bounds(backend_options):
    dtype = torch.float64
    inputs = _mixed_problem(dtype)
    Q, p, G, h, A, b, lb, ub = inputs
    sol = optnet.solve_qp(Q, p, G, h, A, b, lb=lb, ub=ub, options=backend_options)
    _check_against_reference(sol, inputs, dtype, 4)
    # The bound duals close the stationarity condition with the general duals.
    r = Q @ sol.z[..., None] + p[..., None] + G.mT @ sol.lam[..., None] + A.mT @ sol.nu[..., None]
    r = r.squeeze(-1) - sol.lam_lb + sol.lam_ub
    assert float(r.abs().max()) < 1e-6
    assert int((sol.lam_ub[:, 0] > 1).sum()) >= 3  # the bound is active (in 3 of the 4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_exact_gradients_at_known_solution(backend_options, dtype):
    (Q, p, G, h, A, b), (z, lam, nu, s) = known_solution_problem(6, 10, 14, 3, seed=5)
    w = torch.randn(6, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = active_set_gradients(Q, G, A, z, lam, nu, lam > 0, w)
    inputs = [x.to(dtype).requires_grad_() for x in (Q, p, G, h, A, b)]
    sol = optnet.solve_qp(*inputs, options=backend_options)
    assert bool(sol.solved.all())
    (sol.z * w.to(dtype)).sum().backward()
    for name, x in zip(("Q", "p", "G", "h", "A", "b"), inputs):
        assert_close_to(x.grad, expected[name], "grad", dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_known_solutions(backend_options, dtype):
    (Q, p, G, h, A, b), (z, lam, nu, s) = known_solution_problem(16, 12, 20, 4, seed=3)
    sol = optnet.solve_qp(*(x.to(dtype) for x in (Q, p, G, h, A, b)), options=backend_options)
    assert bool(sol.solved.all())
    assert_close_to(sol.z, z, "z", dtype)
    assert_close_to(sol.lam, lam, "dual", dtype)
    assert_close_to(sol.nu, nu, "dual", dtype)
    assert_close_to(sol.s, s, "z", dtype)


def test_residuals_reported_on_original_data(backend_options):
    Q, p, G, h, A, b = random_qp(4, 8, 10, 2, seed=5)
    sol = optnet.solve_qp(Q, p, G, h, A, b, options=backend_options)
    r_dual = Q @ sol.z[..., None] + p[..., None] + G.mT @ sol.lam[..., None]
    r_dual = (r_dual + A.mT @ sol.nu[..., None]).squeeze(-1)
    assert torch.allclose(sol.dual_residual, r_dual.abs().amax(-1), atol=1e-12)
    primal = torch.maximum(
        (G @ sol.z[..., None]).squeeze(-1).sub(h).clamp_min(0).amax(-1),
        (A @ sol.z[..., None]).squeeze(-1).sub(b).abs().amax(-1),
    )
    assert torch.allclose(sol.primal_residual, primal, atol=1e-12)
    assert np.all(sol.iterations.numpy() > 0)


def test_compute_dtype_float64_gives_float64_accuracy_for_float32_inputs(backend_options):
    (Q, p, G, h, A, b), (z, _, _, _) = known_solution_problem(4, 10, 15, 3, seed=8)
    options = dataclasses.replace(
        backend_options, compute_dtype=torch.float64, eps_abs=1e-9, eps_rel=1e-9
    )
    sol = optnet.solve_qp(*(x.float() for x in (Q, p, G, h, A, b)), options=options)
    assert sol.z.dtype == torch.float32
    assert float((sol.z.double() - z).abs().max()) < 1e-5  # float32 rounding of the data
