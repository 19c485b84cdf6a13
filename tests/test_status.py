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


def test_nonconvex_Q_is_a_numerical_error_not_a_crash():
    sol = optnet.solve_qp(
        -torch.eye(2, dtype=d),
        torch.zeros(2, dtype=d),
        torch.eye(2, dtype=d),
        torch.ones(2, dtype=d),
    )
    assert int(sol.status) == QPStatus.NUMERICAL_ERROR
    assert all(torch.isfinite(x).all() for x in (sol.z, sol.lam, sol.s))


def test_mixed_batch_statuses_and_error_message():
    G = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]], dtype=d).expand(3, 2, 2)
    h = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [2.0, 2.0]], dtype=d)
    sol = optnet.solve_qp(torch.eye(2, dtype=d), torch.zeros(2, dtype=d), G, h)
    assert sol.status.tolist() == [QPStatus.SOLVED, QPStatus.PRIMAL_INFEASIBLE, QPStatus.SOLVED]
    assert sol.solved.tolist() == [True, False, True]
    with pytest.raises(QPSolveError, match=r"1 of 3 problem\(s\) at batch index \[1\]: PRIMAL_INF"):
        sol.raise_for_status()
    assert all(torch.isfinite(x).all() for x in (sol.z, sol.lam, sol.s))


def test_unreachable_tolerance_returns_the_best_iterate():
    from tests.support import random_qp

    Q, p, G, h, A, b = random_qp(4, 15, 20, 3, seed=1)
    reachable = optnet.solve_qp(Q, p, G, h, A, b, options=optnet.SolverOptions(eps_abs=1e-11))
    # 1e-18 is below float64 round-off: every problem runs to max_iter, and late iterations
    # may drift; what comes back is each problem's best point, not its last one.
    options = optnet.SolverOptions(eps_abs=1e-18, eps_rel=0.0, max_iter=60)
    sol = optnet.solve_qp(Q, p, G, h, A, b, options=options)
    assert (sol.status == QPStatus.MAX_ITER).all()
    assert float((sol.z - reachable.z).abs().max()) < 1e-7
    assert float(sol.dual_residual.max()) < 1e-9
