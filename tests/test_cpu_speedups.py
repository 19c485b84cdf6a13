"""The CPU-specific paths of the solver agree with the general ones.

On CPU the factorizations keep the Cholesky factor L (triangular solves) instead of L^-1, reuse
their memory across iterations (``_kkt.Buffers``) and the loop gathers the still-running
problems into smaller batches; each must give what the general path gives.
"""

from __future__ import annotations

import torch

import optnet
from optnet import _ipm, _kkt
from optnet._backends import batched
from optnet._policy import CHOLESKY
from optnet._problem import Problem
from tests.support import random_qp


def _problem(batch=6, n=9, m=12, neq=3, seed=0) -> Problem:
    Q, p, G, h, A, b = random_qp(batch, n, m, neq, seed=seed)
    return Problem.from_inputs(Q, p, G, h, A, b, None, None, batch)


def _inverse_form(f: _kkt.SPDFactor) -> _kkt.SPDFactor:
    """The same factor as the GPU path keeps it: L^-1 instead of L."""
    eye = torch.eye(f.L.shape[-1], dtype=f.L.dtype).expand_as(f.L)
    return _kkt.SPDFactor(torch.linalg.solve_triangular(f.L, eye, upper=False), f.d, f.ok)


def test_triangular_and_inverse_factor_forms_solve_alike():
    problem = _problem()
    w = torch.rand(problem.batch, problem.m_all, dtype=torch.float64) * 10
    reg = torch.full((problem.batch,), 1e-10, dtype=torch.float64)
    cpu = _kkt.factor(problem, w, reg, 1, CHOLESKY)
    assert cpu.H_factor.L_inv is None and cpu.W is not None  # the CPU form
    H_factor = _inverse_form(cpu.H_factor)
    Hinv_At = H_factor.solve(problem.A.mT.expand(problem.batch, -1, -1))
    S_factor = _inverse_form(cpu.S_factor)
    gpu = _kkt.KKTFactor(cpu.H, H_factor, problem.A, Hinv_At, S_factor, 1)
    r1 = torch.randn(problem.batch, problem.n, dtype=torch.float64)
    r2 = torch.randn(problem.batch, problem.A.shape[-2], dtype=torch.float64)
    for x_cpu, x_gpu in zip(_kkt.solve(cpu, r1, r2), _kkt.solve(gpu, r1, r2)):
        torch.testing.assert_close(x_cpu, x_gpu, rtol=1e-10, atol=1e-12)
    # and both solve the KKT system
    x, y = _kkt.solve(cpu, r1, r2)
    torch.testing.assert_close(
        (cpu.H @ x.unsqueeze(-1)).squeeze(-1) + (problem.A.mT @ y.unsqueeze(-1)).squeeze(-1),
        r1,
        rtol=1e-9,
        atol=1e-9,
    )


def test_factor_in_reused_buffers_equals_fresh_factor():
    problem = _problem()
    reg = torch.full((problem.batch,), 1e-10, dtype=torch.float64)
    buffers = _kkt.Buffers()
    r1 = torch.randn(problem.batch, problem.n, dtype=torch.float64)
    r2 = torch.randn(problem.batch, problem.A.shape[-2], dtype=torch.float64)
    for seed in range(3):  # the second and third factorizations overwrite the first's memory
        w = torch.rand(problem.batch, problem.m_all, dtype=torch.float64) + seed
        fresh = _kkt.solve(_kkt.factor(problem, w, reg, 1, CHOLESKY), r1, r2)
        reused = _kkt.solve(_kkt.factor(problem, w, reg, 1, CHOLESKY, buffers), r1, r2)
        for a, b in zip(fresh, reused):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # a smaller batch uses the leading part of the same memory
    small = problem.select(torch.tensor([1, 4]))
    w = torch.rand(2, problem.m_all, dtype=torch.float64)
    f = _kkt.factor(small, w, reg[:2], 1, CHOLESKY, buffers)
    assert f.H.data_ptr() == buffers.get("H", f.H.shape, f.H).data_ptr()
    fresh = _kkt.solve(_kkt.factor(small, w, reg[:2], 1, CHOLESKY), r1[:2], r2[:2])
    for a, b in zip(_kkt.solve(f, r1[:2], r2[:2]), fresh):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_compacting_loop_matches_the_plain_loop():
    # Problems of different difficulty stop at different iterations, so the running ones are
    # gathered into smaller batches (check_every=1 on CPU) or not (check_every=2).
    Q, p, G, h, A, b = random_qp(16, 10, 14, 3, seed=3)
    p = p * torch.logspace(-2, 2, 16, dtype=torch.float64).unsqueeze(-1)
    compacted = optnet.solve_qp(Q, p, G, h, A, b, options=optnet.SolverOptions(check_every=1))
    plain = optnet.solve_qp(Q, p, G, h, A, b, options=optnet.SolverOptions(check_every=2))
    assert len(set(compacted.iterations.tolist())) > 1  # the loop did compact
    assert torch.equal(compacted.status, plain.status)
    assert torch.equal(compacted.iterations, plain.iterations)
    torch.testing.assert_close(compacted.z, plain.z, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(compacted.lam, plain.lam, rtol=1e-9, atol=1e-9)


def test_select_keeps_shared_data_shared():
    Q, p, G, h, A, b = random_qp(5, 6, 7, 2, seed=4)
    problem = Problem.from_inputs(Q[0], p, G[0], h, A, b, None, None, 5)
    rows = torch.tensor([0, 3])
    part = problem.select(rows)
    assert part.batch == 2 and part.Q.shape[0] == 1 and part.G.shape[0] == 1
    torch.testing.assert_close(part.p, p[rows])
    torch.testing.assert_close(part.A, A[rows])


def test_early_exit_when_nothing_runs_changes_nothing():
    problem = _problem(batch=3)
    options = optnet.SolverOptions()
    policy = batched.policy(problem.p.device, options)
    iteration = _ipm.Iteration(problem, options, policy)
    state = _ipm.initial_state(problem, options, policy)
    for _ in range(40):
        state = iteration(state, check_certificates=True)
    assert not bool(iteration.running(state).any())
    again = iteration(state, check_certificates=True)
    for name in ("z", "s", "lam", "nu", "iterations", "bumps", "best_z"):
        assert torch.equal(getattr(again, name), getattr(state, name))
