"""The fused Triton kernel (``optnet._fused``) against the batched tensor solver.

On CUDA it runs compiled; without a GPU under Triton's interpreter (conftest sets
``TRITON_INTERPRET=1``), which is slow: the problems here are tiny. The kernel is the same
algorithm as ``_pdipm``, so it must agree with it closely: same statuses and iteration counts,
solutions and gradients to round-off.
"""

from __future__ import annotations

import pytest
import torch
from helpers import random_qp

import optnet

pytest.importorskip("triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FUSED = optnet.SolverOptions(fused_kernel=True)
BATCHED = optnet.SolverOptions(fused_kernel=False)
# Both paths take the same steps; only the order of floating-point sums differs.
AGREE = {torch.float64: 1e-9, torch.float32: 1e-3}


def _on_device(data):
    return [None if x is None else x.to(DEVICE) for x in data]


def _solve_both(*args, **kwargs):
    return (
        optnet.solve_qp(*args, **kwargs, options=FUSED),
        optnet.solve_qp(*args, **kwargs, options=BATCHED),
    )


def _assert_agree(fused, batched, dtype):
    assert fused.status.tolist() == batched.status.tolist()
    assert fused.iterations.tolist() == batched.iterations.tolist()
    for name in ("z", "lam", "nu", "lam_lb", "lam_ub", "primal_residual", "duality_gap"):
        a, b = getattr(fused, name), getattr(batched, name)
        assert (a is None) == (b is None), name
        if a is not None:
            scale = 1 + float(b.abs().max())
            assert float((a - b).abs().max()) <= AGREE[dtype] * scale, name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("neq", [0, 2])
def test_matches_batched_solver(dtype, neq):
    data = _on_device(random_qp(3, 5, 6, neq, dtype=dtype, seed=neq))
    _assert_agree(*_solve_both(*data), dtype)


def test_bounds_with_infinite_entries_and_shared_inputs():
    Q, p, G, h, A, b = _on_device(random_qp(3, 5, 4, 1, seed=3))
    lb = torch.full((5,), -2.0, dtype=Q.dtype, device=DEVICE)
    ub = torch.full((3, 5), 2.0, dtype=Q.dtype, device=DEVICE)
    lb[1], ub[0, 2], h[1, 0] = -float("inf"), float("inf"), float("inf")
    fused, batched = _solve_both(Q[0], p, G, h, A[0], b[0], lb=lb, ub=ub)
    assert bool(fused.solved.all())
    _assert_agree(fused, batched, torch.float64)


def test_gradients_match_batched_solver():
    data = _on_device(random_qp(2, 4, 5, 1, seed=5))
    lb = torch.full((4,), -0.2, dtype=torch.float64, device=DEVICE)  # one bound active
    grads = []
    for options in (FUSED, BATCHED):
        inputs = [x.clone().requires_grad_() for x in [*data, lb]]
        sol = optnet.solve_qp(*inputs[:6], lb=inputs[6], options=options)
        assert bool(sol.solved.all())
        loss = sol.z.sin().sum() + sol.lam.cos().sum() + sol.nu.sum() + sol.lam_lb.square().sum()
        grads.append(torch.autograd.grad(loss, inputs))
    for name, a, b in zip(("Q", "p", "G", "h", "A", "b", "lb"), *grads):
        assert float((a - b).abs().max()) <= 1e-6 * (1 + float(b.abs().max())), name


def test_backward_reuses_the_kernels_factor(monkeypatch):
    data = _on_device(random_qp(2, 4, 5, 0, seed=5))
    inputs = [x.requires_grad_() for x in data if x is not None]
    sol = optnet.solve_qp(*inputs, options=FUSED)

    def no_factoring(*args, **kwargs):
        raise AssertionError("the backward pass factored a matrix")

    monkeypatch.setattr(torch.linalg, "cholesky_ex", no_factoring)
    sol.z.sum().backward()
    assert all(x.grad is not None for x in inputs)


def test_statuses_and_certificates_match_batched_solver():
    n = 3
    Q = torch.zeros(3, n, n, dtype=torch.float64, device=DEVICE)
    Q[2] = torch.eye(n)
    p = torch.tensor([[1.0, 1, 1], [-1, 0, 0], [1, 1, 1]], dtype=torch.float64, device=DEVICE)
    # 0: z1 <= -1 and -z1 <= 0 (infeasible); 1: unbounded LP along z1; 2: lb > ub on z3.
    G = torch.tensor([[1.0, 0, 0], [-1, 0, 0]], dtype=torch.float64, device=DEVICE)
    h = torch.tensor([[-1.0, 0], [5, 5], [1, 1]], dtype=torch.float64, device=DEVICE)
    G = G.expand(3, -1, -1).clone()
    G[1] = torch.tensor([[0.0, 1, 0], [0, -1, 0]])
    lb = torch.tensor([[-1.0, -1, -1], [-1, -1, -1], [0, 0, 1]], dtype=torch.float64)
    ub = torch.tensor([[1.0, 1, 1], [float("inf")] * 3, [1, 1, 0]], dtype=torch.float64)
    lb[1, 0] = -float("inf")
    fused, batched = _solve_both(Q, p, G, h, lb=lb.to(DEVICE), ub=ub.to(DEVICE))
    assert fused.status.tolist() == [
        optnet.QPStatus.PRIMAL_INFEASIBLE,
        optnet.QPStatus.DUAL_INFEASIBLE,
        optnet.QPStatus.PRIMAL_INFEASIBLE,
    ]
    _assert_agree(fused, batched, torch.float64)
    for name in ("z", "lam", "lam_lb", "lam_ub"):
        a, b = getattr(fused.certificate, name), getattr(batched.certificate, name)
        assert float((a - b).abs().max()) <= 1e-9, name


def test_iteration_limit_returns_best_iterate_like_batched_solver():
    data = _on_device(random_qp(2, 5, 6, 1, seed=6))
    options = [optnet.SolverOptions(fused_kernel=k, max_iter=2) for k in (True, False)]
    fused, batched = (optnet.solve_qp(*data, options=o) for o in options)
    assert fused.status.tolist() == [optnet.QPStatus.MAX_ITER] * 2
    _assert_agree(fused, batched, torch.float64)


def test_fused_kernel_true_rejects_what_it_cannot_run(monkeypatch):
    data = _on_device(random_qp(1, 40, 2, 0))
    with pytest.raises(ValueError, match="too large"):
        optnet.solve_qp(*data, options=FUSED)
    if DEVICE == "cpu":
        monkeypatch.delenv("TRITON_INTERPRET")
        with pytest.raises(ValueError, match="CUDA"):
            optnet.solve_qp(*random_qp(1, 3, 2, 0), options=FUSED)
    with pytest.raises(ValueError, match="fused_kernel"):
        optnet.SolverOptions(fused_kernel="yes")


def test_opt_in_and_automatic_only_on_cuda():
    from optnet import _fused

    auto = optnet.SolverOptions(fused_kernel=None)
    small = optnet._problem.Problem.from_inputs(*random_qp(2, 4, 4, 0), None, None, batch=2)
    assert not _fused.usable(small, optnet.SolverOptions())
    assert not _fused.usable(small, auto)
    if torch.cuda.is_available():
        on_gpu = optnet._problem.Problem.from_inputs(
            *_on_device(random_qp(2, 4, 4, 0)), None, None, batch=2
        )
        assert not _fused.usable(on_gpu, optnet.SolverOptions())
        assert _fused.usable(on_gpu, auto)


def test_unbatched_inputs_and_compute_dtype():
    Q, p, G, h, A, b = (x[0].float() for x in _on_device(random_qp(1, 4, 5, 1, seed=7)))
    options = [
        optnet.SolverOptions(fused_kernel=k, compute_dtype=torch.float64) for k in (True, False)
    ]
    fused, batched = (optnet.solve_qp(Q, p, G, h, A, b, options=o) for o in options)
    assert fused.z.shape == (4,) and fused.z.dtype == torch.float32
    assert int(fused.status) == optnet.QPStatus.SOLVED
    assert int(fused.iterations) == int(batched.iterations)
    assert float((fused.z - batched.z).abs().max()) <= 1e-6
