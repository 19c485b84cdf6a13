"""Every status is reachable, carries a message, and raise_for_status names the failures."""

from __future__ import annotations

import pytest
import torch

import optnet
from optnet import QPSolveError, QPStatus

d = torch.float64


# What each failure's message must point the user to.
ACTIONS = {
    QPStatus.MAX_ITER: "max_iter",
    QPStatus.PRIMAL_INFEASIBLE: "certificate",
    QPStatus.DUAL_INFEASIBLE: "certificate",
    QPStatus.NUMERICAL_ERROR: "float64",
}


@pytest.mark.parametrize("status", list(ACTIONS))
def test_each_failure_names_its_remedy_in_the_raised_error(status):
    assert ACTIONS[status] in status.message
    error = QPSolveError(torch.tensor([0, int(status), int(status)]))
    assert error.failures == {status: [1, 2]}
    assert f"2 of 3 problem(s) at batch index [1, 2]: {status.name}: {status.message}" == str(error)


def test_solved_and_raise_for_status_passes():
    sol = optnet.solve_qp(torch.eye(2, dtype=d), torch.ones(2, dtype=d))
    assert int(sol.status) == QPStatus.SOLVED
    assert sol.raise_for_status() is sol
    assert torch.allclose(sol.z, -torch.ones(2, dtype=d))


def test_max_iter():
    G = torch.randn(30, 10, dtype=d)
    sol = optnet.solve_qp(
        torch.eye(10, dtype=d), torch.randn(10, dtype=d), G, torch.ones(30, dtype=d),
        options=optnet.SolverOptions(max_iter=1),
    )  # fmt: skip
    assert int(sol.status) == QPStatus.MAX_ITER
    assert int(sol.iterations) == 1


def test_primal_infeasible_with_certificate():
    # z1 <= -1 and z1 >= 1
    G = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=d)
    h = torch.tensor([-1.0, -1.0], dtype=d)
    sol = optnet.solve_qp(torch.eye(2, dtype=d), torch.zeros(2, dtype=d), G, h)
    assert int(sol.status) == QPStatus.PRIMAL_INFEASIBLE
    lam = sol.certificate.lam
    assert (lam >= 0).all()
    assert float((G.T @ lam).abs().max()) < 1e-6
    assert float(h @ lam) < 0
    assert torch.isfinite(sol.z).all()


def test_inconsistent_equalities_are_primal_infeasible():
    A = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=d)
    b = torch.tensor([1.0, 2.0], dtype=d)
    sol = optnet.solve_qp(torch.eye(2, dtype=d), torch.zeros(2, dtype=d), A=A, b=b)
    assert int(sol.status) == QPStatus.PRIMAL_INFEASIBLE
    nu = sol.certificate.nu
    assert float((A.T @ nu).abs().max()) < 1e-6 and float(b @ nu) < 0


def test_crossed_bounds_are_primal_infeasible():
    sol = optnet.solve_qp(
        torch.eye(2, dtype=d), torch.zeros(2, dtype=d),
        lb=torch.tensor([0.0, 2.0], dtype=d), ub=torch.tensor([1.0, 1.0], dtype=d),
    )  # fmt: skip
    assert int(sol.status) == QPStatus.PRIMAL_INFEASIBLE
    assert sol.certificate.lam_lb.tolist() == [0.0, 1.0]
    assert sol.certificate.lam_ub.tolist() == [0.0, 1.0]


def test_dual_infeasible_with_certificate():
    # min -z1 s.t. z >= 0 : unbounded along z1.
    Q = torch.zeros(2, 2, dtype=d)
    p = torch.tensor([-1.0, 0.0], dtype=d)
    sol = optnet.solve_qp(Q, p, -torch.eye(2, dtype=d), torch.zeros(2, dtype=d))
    assert int(sol.status) == QPStatus.DUAL_INFEASIBLE
    ray = sol.certificate.z
    assert float(p @ ray) < 0 and (ray >= -1e-8).all()


def test_mixed_batch_statuses_and_error_message():
    G = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]], dtype=d).expand(3, 2, 2)
    h = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [2.0, 2.0]], dtype=d)
    sol = optnet.solve_qp(torch.eye(2, dtype=d), torch.zeros(2, dtype=d), G, h)
    assert sol.status.tolist() == [QPStatus.SOLVED, QPStatus.PRIMAL_INFEASIBLE, QPStatus.SOLVED]
    assert sol.solved.tolist() == [True, False, True]
    with pytest.raises(QPSolveError, match=r"1 of 3 problem\(s\) at batch index \[1\]: PRIMAL_INF"):
        sol.raise_for_status()
    assert all(torch.isfinite(x).all() for x in (sol.z, sol.lam, sol.s))


def test_unreachable_tolerance_returns_the_best_iterate(monkeypatch):
    from optnet._ipm import residuals
    from tests.support import random_qp

    Q, p, G, h, A, b = random_qp(4, 15, 20, 3, seed=1)
    reachable = optnet.solve_qp(Q, p, G, h, A, b, options=optnet.SolverOptions(eps_abs=1e-11))
    # 1e-18 is below float64 round-off: without the rounding floors of the stopping rule (here
    # zero) every problem runs to max_iter, and late iterations may drift; what comes back is
    # each problem's best point, not its last one.
    floors = residuals.rounding_floors
    monkeypatch.setattr(
        residuals, "rounding_floors", lambda *args: [0 * x for x in floors(*args)]
    )
    options = optnet.SolverOptions(eps_abs=1e-18, eps_rel=0.0, max_iter=60)
    sol = optnet.solve_qp(Q, p, G, h, A, b, options=options)
    assert (sol.status == QPStatus.MAX_ITER).all()
    assert float((sol.z - reachable.z).abs().max()) < 1e-7
    assert float(sol.dual_residual.max()) < 1e-9


@pytest.mark.parametrize(
    "eigenvalues",
    [[1.0, -1.0, 1.0], [0.0, -1.0, 0.0], [-1.0, -2.0, -3.0]],
    ids=["indefinite", "concave", "negative-definite"],
)
def test_nonconvex_Q_is_never_solved_and_never_nan(eigenvalues):
    g = torch.Generator().manual_seed(0)
    V = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=d))[0]
    Q = V @ torch.diag(torch.tensor(eigenvalues, dtype=d)) @ V.T
    Q = (Q + Q.T) / 2
    convex = torch.eye(3, dtype=d)
    p = torch.ones(2, 3, dtype=d, requires_grad=True)
    box = {"lb": -torch.ones(3, dtype=d), "ub": torch.ones(3, dtype=d)}
    sol = optnet.solve_qp(torch.stack([Q, convex]), p, **box)
    assert sol.status.tolist() == [QPStatus.NONCONVEX, QPStatus.SOLVED]
    assert "not positive semidefinite" in QPStatus.NONCONVEX.message
    for x in (sol.z, sol.lam_lb, sol.lam_ub):
        assert torch.isfinite(x).all() and not bool(x[0].any())
    for x in (sol.primal_residual, sol.dual_residual, sol.duality_gap, sol.certificate.z):
        assert torch.isfinite(x).all()
    sol.z.sum().backward()
    assert not bool(p.grad[0].any()) and bool(p.grad[1].any())  # zero gradient when unsolved


def test_round_off_indefinite_psd_Q_is_convex():
    M = torch.randn(6, 2, dtype=d)
    Q = M @ M.T  # rank 2: eigenvalues of -1e-16 size from round-off
    sol = optnet.solve_qp(
        Q, torch.randn(6, dtype=d), lb=-torch.ones(6, dtype=d), ub=torch.ones(6, dtype=d)
    )
    assert int(sol.status) == QPStatus.SOLVED


def test_empty_batch_gives_an_empty_solution():
    Q = torch.eye(3, dtype=d).expand(0, 3, 3).clone().requires_grad_()
    p = torch.zeros(0, 3, dtype=d, requires_grad=True)
    G, h = torch.zeros(0, 2, 3, dtype=d), torch.zeros(0, 2, dtype=d)
    sol = optnet.solve_qp(Q, p, G, h)
    assert sol.z.shape == (0, 3) and sol.lam.shape == (0, 2) and sol.status.shape == (0,)
    sol.z.sum().backward()
    assert p.grad is None or p.grad.shape == (0, 3)
