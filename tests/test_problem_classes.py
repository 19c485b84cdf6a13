"""Every convex QP a user can pose: LPs, singular Q, redundant rows, infinities, bounds."""

from __future__ import annotations

import pytest
import torch

import optnet
from tests.support import assert_close_to, reference_solve

d = torch.float64
N = 8


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


def check_against_reference(Q, p, G=None, h=None, A=None, b=None, lb=None, ub=None):
    sol = optnet.solve_qp(Q, p, G, h, A, b, lb=lb, ub=ub)
    assert int(sol.status) == optnet.QPStatus.SOLVED, sol.status
    arrays = [None if x is None else x.numpy() for x in (Q, p, G, h, A, b, lb, ub)]
    z, _, _ = reference_solve(*arrays)
    objective = lambda x: 0.5 * x @ Q.numpy() @ x + p.numpy() @ x  # noqa: E731
    assert abs(objective(sol.z.numpy()) - objective(z)) <= 1e-7 * max(1, abs(objective(z)))
    return sol, z


def test_linear_program_with_bounds(rng):
    G, h = torch.randn(12, N, generator=rng, dtype=d), torch.rand(12, generator=rng, dtype=d) + 0.5
    p = torch.randn(N, generator=rng, dtype=d)
    sol, z = check_against_reference(
        torch.zeros(N, N, dtype=d), p, G, h, lb=-torch.ones(N, dtype=d), ub=torch.ones(N, dtype=d)
    )
    assert_close_to(sol.z, z, "z", d)  # this LP has a unique vertex solution


def test_singular_Q(rng):
    M = torch.randn(N, 2, generator=rng, dtype=d)
    G, h = torch.randn(12, N, generator=rng, dtype=d), torch.rand(12, generator=rng, dtype=d) + 0.5
    check_against_reference(
        M @ M.T, torch.randn(N, generator=rng, dtype=d), G, h,
        lb=-2 * torch.ones(N, dtype=d), ub=2 * torch.ones(N, dtype=d),
    )  # fmt: skip


def test_redundant_and_dependent_equalities(rng):
    A = torch.randn(2, N, generator=rng, dtype=d)
    A = torch.cat([A, A, A[:1] + A[1:]])  # rank 2, five rows
    z0 = 0.1 * torch.randn(N, generator=rng, dtype=d)
    sol, z = check_against_reference(
        torch.eye(N, dtype=d), torch.randn(N, generator=rng, dtype=d), A=A, b=A @ z0
    )
    assert_close_to(sol.z, z, "z", d)


def test_duplicated_inequality_rows(rng):
    G, h = torch.randn(12, N, generator=rng, dtype=d), torch.rand(12, generator=rng, dtype=d) + 0.5
    p = 3 * torch.randn(N, generator=rng, dtype=d)
    sol, z = check_against_reference(torch.eye(N, dtype=d), p, torch.cat([G, G]), torch.cat([h, h]))
    assert_close_to(sol.z, z, "z", d)


def test_infinite_h_means_no_constraint(rng):
    G, h = torch.randn(12, N, generator=rng, dtype=d), torch.rand(12, generator=rng, dtype=d) + 0.5
    h_inf = h.clone()
    h_inf[::2] = float("inf")
    p = 3 * torch.randn(N, generator=rng, dtype=d)
    sol, _ = check_against_reference(torch.eye(N, dtype=d), p, G, h_inf)
    dropped = optnet.solve_qp(torch.eye(N, dtype=d), p, G[1::2], h[1::2])
    assert torch.allclose(sol.z, dropped.z, atol=1e-7)
    assert torch.all(sol.lam[::2] == 0) and torch.isfinite(sol.s).all()


def test_bounds_with_infinities(rng):
    lb = -torch.ones(N, dtype=d)
    lb[::2] = -float("inf")
    ub = torch.full((N,), float("inf"), dtype=d)
    ub[1] = 0.0
    p = 3 * torch.randn(N, generator=rng, dtype=d)
    sol, z = check_against_reference(torch.eye(N, dtype=d), p, lb=lb, ub=ub)
    assert_close_to(sol.z, torch.clamp(-p, min=lb, max=ub), "z", d)  # the closed form
    assert sol.lam_lb.shape == (N,) and torch.all(sol.lam_lb[::2] == 0)


def test_fixed_variables(rng):
    lb, ub = -torch.ones(N, dtype=d), torch.ones(N, dtype=d)
    lb[:3] = ub[:3] = 0.3
    G, h = torch.randn(12, N, generator=rng, dtype=d), torch.rand(12, generator=rng, dtype=d) + 1.5
    sol, _ = check_against_reference(
        torch.eye(N, dtype=d), 3 * torch.randn(N, generator=rng, dtype=d), G, h, lb=lb, ub=ub
    )
    assert torch.allclose(sol.z[:3], torch.full((3,), 0.3, dtype=d), atol=1e-8)


def test_equality_only_and_unconstrained():
    Q = torch.diag(torch.arange(1.0, 4.0, dtype=d))
    p = torch.ones(3, dtype=d)
    assert torch.allclose(optnet.solve_qp(Q, p).z, -p / Q.diagonal())
    A, b = torch.ones(1, 3, dtype=d), torch.ones(1, dtype=d)
    sol = optnet.solve_qp(Q, p, A=A, b=b)
    assert torch.allclose(A @ sol.z, b) and float(sol.dual_residual) < 1e-10
