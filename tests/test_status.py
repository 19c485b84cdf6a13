"""Every status is reachable on every backend, carries a message, and raise_for_status names
the failures; the infeasibility certificates prove what they claim (tests.support.certificates)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import optnet
from optnet import QPSolveError, QPStatus
from tests.support import assert_farkas, assert_unbounded_ray, infeasible_qp, random_qp

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


def test_solved_and_raise_for_status_passes(backend_options):
    sol = optnet.solve_qp(torch.eye(2, dtype=d), torch.ones(2, dtype=d), options=backend_options)
    assert int(sol.status) == QPStatus.SOLVED
    assert sol.raise_for_status() is sol
    assert torch.allclose(sol.z, -torch.ones(2, dtype=d))


def test_max_iter(backend_options):
    G = torch.randn(30, 10, dtype=d)
    sol = optnet.solve_qp(
        torch.eye(10, dtype=d), torch.randn(10, dtype=d), G, torch.ones(30, dtype=d),
        options=dataclasses.replace(backend_options, max_iter=1),
    )  # fmt: skip
    assert int(sol.status) == QPStatus.MAX_ITER
    assert int(sol.iterations) == 1


def _tensors(**data):
    return {name: torch.tensor(x, dtype=d) for name, x in data.items()}


# Problems whose constraints are inconsistent, each with its own kind of Farkas certificate.
INFEASIBLE = {
    "inequalities": lambda: _tensors(  # z1 <= -1 and z1 >= 1
        Q=[[1.0, 0.0], [0.0, 1.0]], p=[0.0, 0.0], G=[[1.0, 0.0], [-1.0, 0.0]], h=[-1.0, -1.0]
    ),
    "equalities": lambda: _tensors(  # z1 + z2 = 1 and z1 + z2 = 2
        Q=[[1.0, 0.0], [0.0, 1.0]], p=[0.0, 0.0], A=[[1.0, 1.0], [1.0, 1.0]], b=[1.0, 2.0]
    ),
    "crossed-bounds": lambda: _tensors(  # 2 <= z2 <= 1
        Q=[[1.0, 0.0], [0.0, 1.0]], p=[0.0, 0.0], lb=[0.0, 2.0], ub=[1.0, 1.0]
    ),
    "every-block": lambda: dict(
        zip("Q p G h A b lb ub".split(), infeasible_qp(3, 5, 10, 1, bounds=True, seed=1))
    ),
}


@pytest.mark.parametrize("case", list(INFEASIBLE))
def test_primal_infeasible_with_a_farkas_certificate(backend_options, case):
    data = INFEASIBLE[case]()
    sol = optnet.solve_qp(**data, options=backend_options)
    assert bool((sol.status == QPStatus.PRIMAL_INFEASIBLE).all()), sol.status
    assert_farkas(sol.certificate, **data)
    assert torch.isfinite(sol.z).all()


def test_crossed_bounds_certificate_is_the_crossed_coordinate(backend_options):
    sol = optnet.solve_qp(**INFEASIBLE["crossed-bounds"](), options=backend_options)
    assert sol.certificate.lam_lb.tolist() == [0.0, 1.0]
    assert sol.certificate.lam_ub.tolist() == [0.0, 1.0]


# Problems whose objective is unbounded below on a nonempty feasible set.
UNBOUNDED = {
    "inequalities": lambda: _tensors(  # min -z1 s.t. z >= 0
        Q=[[0.0, 0.0], [0.0, 0.0]], p=[-1.0, 0.0], G=[[-1.0, 0.0], [0.0, -1.0]], h=[0.0, 0.0]
    ),
    "bounds": lambda: _tensors(  # z1 in [-1, 1] and z2 >= 0 (no upper bound): min z1^2/2 - z2
        Q=[[1.0, 0.0], [0.0, 0.0]], p=[0.0, -1.0], lb=[-1.0, 0.0], ub=[1.0, float("inf")]
    ),
    "equalities": lambda: _tensors(  # z1 = z2, min z3^2/2 - z1 - z2
        Q=[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
        p=[-1.0, -1.0, 0.0],
        A=[[1.0, -1.0, 0.0]],
        b=[0.0],
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(UNBOUNDED))
def test_dual_infeasible_with_a_ray_certificate(backend_options, case):
    data = UNBOUNDED[case]()
    sol = optnet.solve_qp(**data, options=backend_options)
    assert int(sol.status) == QPStatus.DUAL_INFEASIBLE
    assert_unbounded_ray(sol.certificate, **data)


def test_mixed_batch_statuses_and_error_message(backend_options):
    G = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]], dtype=d).expand(3, 2, 2)
    h = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [2.0, 2.0]], dtype=d)
    sol = optnet.solve_qp(torch.eye(2, dtype=d), torch.zeros(2, dtype=d), G, h,
                          options=backend_options)  # fmt: skip
    assert sol.status.tolist() == [QPStatus.SOLVED, QPStatus.PRIMAL_INFEASIBLE, QPStatus.SOLVED]
    assert sol.solved.tolist() == [True, False, True]
    with pytest.raises(QPSolveError, match=r"1 of 3 problem\(s\) at batch index \[1\]: PRIMAL_INF"):
        sol.raise_for_status()
    assert all(torch.isfinite(x).all() for x in (sol.z, sol.lam, sol.s))


def test_unreachable_tolerance_returns_the_best_iterate(backend_options, monkeypatch):
    from optnet._ipm import residuals

    Q, p, G, h, A, b = random_qp(4, 15, 20, 3, seed=1)
    reachable = optnet.solve_qp(
        Q, p, G, h, A, b, options=dataclasses.replace(backend_options, eps_abs=1e-11)
    )
    # 1e-18 is below float64 round-off: without the rounding floors of the stopping rule (here
    # zero) every problem runs to max_iter (or, on equilibrated data, may fail to factor the
    # Newton matrix first), and late iterations may drift; what comes back is each problem's
    # best point, not its last one (docs/solver.md, "Best iterate").
    floors = residuals.rounding_floors
    monkeypatch.setattr(residuals, "rounding_floors", lambda *args: [0 * x for x in floors(*args)])
    options = dataclasses.replace(backend_options, eps_abs=1e-18, eps_rel=0.0, max_iter=60)
    sol = optnet.solve_qp(Q, p, G, h, A, b, options=options)
    assert all(s in (QPStatus.MAX_ITER, QPStatus.NUMERICAL_ERROR) for s in sol.status.tolist())
    assert float((sol.z - reachable.z).abs().max()) < 1e-7
    assert float(sol.dual_residual.max()) < 1e-9


@pytest.mark.parametrize(
    "eigenvalues",
    [[1.0, -1.0, 1.0], [0.0, -1.0, 0.0], [-1.0, -2.0, -3.0]],
    ids=["indefinite", "concave", "negative-definite"],
)
def test_nonconvex_Q_is_never_solved_and_never_nan(backend_options, eigenvalues):
    g = torch.Generator().manual_seed(0)
    V = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=d))[0]
    Q = V @ torch.diag(torch.tensor(eigenvalues, dtype=d)) @ V.T
    Q = (Q + Q.T) / 2
    convex = torch.eye(3, dtype=d)
    p = torch.ones(2, 3, dtype=d, requires_grad=True)
    box = {"lb": -torch.ones(3, dtype=d), "ub": torch.ones(3, dtype=d)}
    sol = optnet.solve_qp(torch.stack([Q, convex]), p, **box, options=backend_options)
    assert sol.status.tolist() == [QPStatus.NONCONVEX, QPStatus.SOLVED]
    assert "not positive semidefinite" in QPStatus.NONCONVEX.message
    for x in (sol.z, sol.lam_lb, sol.lam_ub):
        assert torch.isfinite(x).all() and not bool(x[0].any())
    for x in (sol.primal_residual, sol.dual_residual, sol.duality_gap, sol.certificate.z):
        assert torch.isfinite(x).all()
    sol.z.sum().backward()
    assert not bool(p.grad[0].any()) and bool(p.grad[1].any())  # zero gradient when unsolved


def test_round_off_indefinite_psd_Q_is_convex(backend_options):
    M = torch.randn(6, 2, dtype=d)
    Q = M @ M.T  # rank 2: eigenvalues of -1e-16 size from round-off
    sol = optnet.solve_qp(
        Q, torch.randn(6, dtype=d), lb=-torch.ones(6, dtype=d), ub=torch.ones(6, dtype=d),
        options=backend_options,
    )  # fmt: skip
    assert int(sol.status) == QPStatus.SOLVED


def test_empty_batch_gives_an_empty_solution(backend_options):
    Q = torch.eye(3, dtype=d).expand(0, 3, 3).clone().requires_grad_()
    p = torch.zeros(0, 3, dtype=d, requires_grad=True)
    G, h = torch.zeros(0, 2, 3, dtype=d), torch.zeros(0, 2, dtype=d)
    sol = optnet.solve_qp(Q, p, G, h, options=backend_options)
    assert sol.z.shape == (0, 3) and sol.lam.shape == (0, 2) and sol.status.shape == (0,)
    sol.z.sum().backward()
    assert p.grad is None or p.grad.shape == (0, 3)
