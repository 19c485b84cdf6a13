"""Solutions against an independent solver (clarabel) and against known solutions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import optnet
from tests.support import assert_close_to, known_solution_problem, random_qp, reference_solve

pytest.importorskip("clarabel")

CASES = [(0, 0), (12, 0), (0, 3), (12, 3), (30, 6)]  # (m, neq) for n = 10


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch", [None, 1, 5])
@pytest.mark.parametrize("m,neq", CASES)
def test_matches_reference_solver(m, neq, batch, dtype):
    Q, p, G, h, A, b = random_qp(batch, 10, m, neq, dtype=dtype, seed=m + neq)
    sol = optnet.solve_qp(Q, p, G, h, A, b)
    assert bool(sol.solved.all()), sol.status
    lead = 1 if batch is None else batch
    for i in range(lead):
        pick = (lambda x: x) if batch is None else (lambda x: x[i])
        args = [None if x is None else pick(x).double().numpy() for x in (Q, p, G, h, A, b)]
        z, lam, nu = reference_solve(*args)
        assert_close_to(pick(sol.z), z, "z", dtype)
        if m:
            assert_close_to(pick(sol.lam), lam, "dual", dtype)
            assert_close_to(pick(sol.s), args[3] - args[2] @ z, "z", dtype)
        if neq:
            assert_close_to(pick(sol.nu), nu, "dual", dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_known_solutions(dtype):
    (Q, p, G, h, A, b), (z, lam, nu, s) = known_solution_problem(16, 12, 20, 4, seed=3)
    sol = optnet.solve_qp(*(x.to(dtype) for x in (Q, p, G, h, A, b)))
    assert bool(sol.solved.all())
    assert_close_to(sol.z, z, "z", dtype)
    assert_close_to(sol.lam, lam, "dual", dtype)
    assert_close_to(sol.nu, nu, "dual", dtype)
    assert_close_to(sol.s, s, "z", dtype)


def test_residuals_reported_on_original_data():
    Q, p, G, h, A, b = random_qp(4, 8, 10, 2, seed=5)
    sol = optnet.solve_qp(Q, p, G, h, A, b)
    r_dual = Q @ sol.z[..., None] + p[..., None] + G.mT @ sol.lam[..., None]
    r_dual = (r_dual + A.mT @ sol.nu[..., None]).squeeze(-1)
    assert torch.allclose(sol.dual_residual, r_dual.abs().amax(-1), atol=1e-12)
    primal = torch.maximum(
        (G @ sol.z[..., None]).squeeze(-1).sub(h).clamp_min(0).amax(-1),
        (A @ sol.z[..., None]).squeeze(-1).sub(b).abs().amax(-1),
    )
    assert torch.allclose(sol.primal_residual, primal, atol=1e-12)
    assert np.all(sol.iterations.numpy() > 0)


def test_compute_dtype_float64_gives_float64_accuracy_for_float32_inputs():
    (Q, p, G, h, A, b), (z, _, _, _) = known_solution_problem(4, 10, 15, 3, seed=8)
    options = optnet.SolverOptions(compute_dtype=torch.float64, eps_abs=1e-9, eps_rel=1e-9)
    sol = optnet.solve_qp(*(x.float() for x in (Q, p, G, h, A, b)), options=options)
    assert sol.z.dtype == torch.float32
    assert float((sol.z.double() - z).abs().max()) < 1e-5  # float32 rounding of the data
