"""SolverOptions(infeasible="closest"): inconsistent constraints give the solution of the
closest feasible problem and its derivative, checked against the closed form, against two
Clarabel solves from the definition (optnet.testing.closest_feasible_reference) and their
central differences; feasible problems get exactly the default result. On every backend (the
tests taking ``closest`` or ``backend_options``)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import optnet
from optnet import QPStatus
from tests.support import (
    GRADCHECK,
    TOLERANCES,
    assert_close_to,
    assert_farkas,
    closest_feasible_reference,
    infeasible_qp,
    random_qp,
    relative_error,
)

F64 = torch.float64
NAMES = ("Q", "p", "G", "h", "A", "b", "lb", "ub")


@pytest.fixture
def closest(backend_options):
    return dataclasses.replace(backend_options, infeasible="closest")


def _solve(inputs: dict, options):
    x = {name: inputs.get(name) for name in NAMES}
    return optnet.solve_qp(*(x[name] for name in NAMES[:6]), lb=x["lb"], ub=x["ub"],
                           options=options)  # fmt: skip


def test_two_contradicting_rows_meet_halfway(closest):
    # min 1/2 ||z - c||^2  s.t.  z1 <= a, z1 >= beta with a < beta: both rows move by
    # (beta - a) / 2 and z1 = (a + beta) / 2, so dz1/dh = [1/2, -1/2] for h = [a, -beta].
    G = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=F64)
    h = torch.tensor([-1.0, -2.0], dtype=F64, requires_grad=True)  # z1 <= -1, z1 >= 2
    p = torch.tensor([0.3, -0.7], dtype=F64, requires_grad=True)  # c = -p
    sol = optnet.solve_qp(torch.eye(2, dtype=F64), p, G, h, options=closest)
    assert int(sol.status) == QPStatus.CLOSEST_FEASIBLE and bool(sol.solved)
    torch.testing.assert_close(sol.z.detach(), torch.tensor([0.5, 0.7], dtype=F64))
    torch.testing.assert_close(sol.primal_residual, torch.tensor(1.5, dtype=F64))
    torch.testing.assert_close(sol.certificate.lam, torch.ones(2, dtype=F64))  # the shift
    sol.z[0].backward()
    torch.testing.assert_close(h.grad, torch.tensor([0.5, -0.5], dtype=F64))
    torch.testing.assert_close(p.grad, torch.zeros(2, dtype=F64))


CASES = [(4, 8, 1, False), (5, 10, 0, True), (6, 9, 2, True), (3, 12, 0, False)]


@pytest.mark.parametrize("n, m, neq, bounds", CASES)
def test_solution_and_gradients_match_the_reference_and_its_differences(
    backend_options, closest, n, m, neq, bounds
):
    data = dict(zip(NAMES, infeasible_qp(None, n, m, neq, bounds=bounds, seed=1)))
    data = {name: x for name, x in data.items() if x is not None}
    leaves = {name: x.clone().requires_grad_() for name, x in data.items()}
    assert int(_solve(data, backend_options).status) == QPStatus.PRIMAL_INFEASIBLE
    sol = _solve(leaves, closest)
    assert int(sol.status) == QPStatus.CLOSEST_FEASIBLE
    assert_farkas(sol.certificate, **data)  # the normalized shift proves the inconsistency
    z, u, v = closest_feasible_reference(**data)
    assert_close_to(sol.z.detach(), torch.from_numpy(z), "z", F64)
    shift = max(abs(u).max(initial=0.0), abs(v).max(initial=0.0))
    assert abs(float(sol.primal_residual) - shift) <= 1e-9 * max(1.0, shift)
    g = torch.Generator().manual_seed(2)
    w = torch.randn(n, generator=g, dtype=F64)
    (sol.z * w).sum().backward()
    eps = 1e-5
    for name, x in leaves.items():
        direction = torch.randn(x.shape, generator=g, dtype=F64)
        if name == "Q":
            direction = (direction + direction.mT) / 2
        plus, minus = (closest_feasible_reference(**{**data, name: data[name] + s * direction})[0]
                       for s in (eps, -eps))  # fmt: skip
        central = float(w.numpy() @ (plus - minus)) / (2 * eps)
        error = relative_error(float((x.grad * direction).sum()), central)
        assert error <= TOLERANCES[("fd_grad", F64)], f"d/d{name}: {error:.1e}"


def test_gradcheck_through_both_phases(closest):
    Q, p, G, h, A, b, _, _ = infeasible_qp(None, 3, 6, 1, seed=3)
    assert int(optnet.solve_qp(Q, p, G, h, A, b).status) == QPStatus.PRIMAL_INFEASIBLE
    inputs = [x.clone().requires_grad_() for x in (p, G, h, A, b)]
    assert torch.autograd.gradcheck(
        lambda p, G, h, A, b: optnet.solve_qp(Q, p, G, h, A, b, options=closest).z,
        inputs, **GRADCHECK,
    )  # fmt: skip


def test_feasible_problems_get_exactly_the_default_result(backend_options, closest):
    Q, p, G, h, A, b = random_qp(4, 5, 10, 1, seed=0)
    h = h.clone()
    h[2] -= 100.0  # problem 2 only becomes infeasible
    default, relaxed = ([x.clone().requires_grad_() for x in (p, h)] for _ in range(2))
    solutions = []
    for (p_, h_), options in ((default, backend_options), (relaxed, closest)):
        sol = optnet.solve_qp(Q, p_, G, h_, A, b, options=options)
        (sol.z[[0, 1, 3]].square().sum() + sol.lam[[0, 1, 3]].sum()).backward()
        solutions.append(sol)
    plain, closest_sol = solutions
    assert plain.status.tolist() == [0, 0, QPStatus.PRIMAL_INFEASIBLE, 0]
    assert closest_sol.status.tolist() == [0, 0, QPStatus.CLOSEST_FEASIBLE, 0]
    keep = [0, 1, 3]
    for name in ("z", "lam", "nu", "s", "iterations", "primal_residual"):
        assert torch.equal(getattr(closest_sol, name)[keep], getattr(plain, name)[keep]), name
    assert torch.equal(relaxed[0].grad, default[0].grad)
    assert torch.equal(relaxed[1].grad, default[1].grad)
    assert not torch.equal(closest_sol.z[2], plain.z[2])


def test_float32_infeasible_problems_are_relaxed_too(backend_options, closest):
    # In float32 the interior point ends these infeasible problems as MAX_ITER or
    # NUMERICAL_ERROR, without a certificate: phase 1's shift decides.
    data = infeasible_qp(8, 5, 10, 2, seed=3)
    inputs = [None if x is None else x.float() for x in data]
    Q, p, G, h, A, b, _, _ = inputs
    default = optnet.solve_qp(Q, p, G, h, A, b, options=backend_options)
    sol = optnet.solve_qp(Q, p, G, h, A, b, options=closest)
    unsolved = ~default.solved
    assert bool(unsolved.any())
    assert bool((sol.status[unsolved] == QPStatus.CLOSEST_FEASIBLE).all())
    for i in unsolved.nonzero().squeeze(-1).tolist():
        one = [None if x is None else x[i] for x in data]
        z, _, _ = closest_feasible_reference(*one)
        assert_close_to(sol.z[i], torch.from_numpy(z), "z", torch.float32)


@pytest.mark.parametrize("max_iter", [1, 2])
def test_feasible_problems_out_of_iterations_keep_their_status(closest, max_iter):
    # The phases run for these MAX_ITER problems too (as for float32's undetected infeasible
    # ones); some phase 1 solves and finds no shift beyond the tolerance: nothing to relax.
    for seed in range(3):
        Q, p, G, h, A, b = random_qp(3, 6, 12, 2, seed=seed)
        options = dataclasses.replace(closest, max_iter=max_iter)
        plain_options = dataclasses.replace(options, infeasible="status")
        default = optnet.solve_qp(Q, p, G, h, A, b, options=plain_options)
        relaxed = optnet.solve_qp(Q, p, G, h, A, b, options=options)
        assert bool((default.status == QPStatus.MAX_ITER).any())
        assert torch.equal(relaxed.status, default.status)
        assert torch.equal(relaxed.z, default.z)


def test_crossed_bounds_and_inconsistent_equalities(closest):
    eye, zero = torch.eye(2, dtype=F64), torch.zeros(2, dtype=F64)
    lb, ub = torch.tensor([0.0, 2.0], dtype=F64), torch.tensor([1.0, 1.0], dtype=F64)
    crossed = optnet.solve_qp(eye, zero, lb=lb, ub=ub, options=closest)
    assert int(crossed.status) == QPStatus.CLOSEST_FEASIBLE
    torch.testing.assert_close(crossed.z, torch.tensor([0.0, 1.5], dtype=F64))
    A = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=F64)
    b = torch.tensor([1.0, 2.0], dtype=F64)
    equal = optnet.solve_qp(eye, zero, A=A, b=b, options=closest)
    assert int(equal.status) == QPStatus.CLOSEST_FEASIBLE
    torch.testing.assert_close(equal.z, torch.tensor([0.75, 0.75], dtype=F64))


def test_the_status_says_what_happened_and_counts_as_solved():
    message = QPStatus.CLOSEST_FEASIBLE.message
    assert "infeasible='closest'" in message and "primal_residual" in message
    status = torch.tensor([0, int(QPStatus.CLOSEST_FEASIBLE), int(QPStatus.PRIMAL_INFEASIBLE)])
    error = optnet.QPSolveError(status)
    assert error.failures == {QPStatus.PRIMAL_INFEASIBLE: [2]}
