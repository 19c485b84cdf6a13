"""CUDA paths (skipped without a GPU): same answers as CPU, graphs or not, and gradients."""

from __future__ import annotations

import pytest
import torch

import optnet
from tests.support import random_qp

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("backend", ["graphed", "batched"])
def test_cuda_matches_cpu(dtype, backend):
    data = random_qp(16, 20, 30, 5, dtype=dtype, seed=0)
    options = optnet.SolverOptions(backend=backend)
    cpu = optnet.solve_qp(*data, options=options)
    gpu = optnet.solve_qp(*(x.cuda() for x in data), options=options)
    assert bool(gpu.solved.all())
    tol = 1e-9 if dtype == torch.float64 else 5e-5  # both polished to the dtype's accuracy
    assert float((cpu.z - gpu.z.cpu()).abs().max()) < tol


def test_graph_cache_reuse_gives_fresh_results():
    first = random_qp(4, 10, 12, 0, seed=1)
    second = random_qp(4, 10, 12, 0, seed=2)
    z1 = optnet.solve_qp(*(x.cuda() for x in first if x is not None)).z
    z2 = optnet.solve_qp(*(x.cuda() for x in second if x is not None)).z
    z1_again = optnet.solve_qp(*(x.cuda() for x in first if x is not None)).z
    assert torch.equal(z1, z1_again) and not torch.allclose(z1, z2)


def test_cuda_gradients_match_cpu():
    data = random_qp(8, 12, 15, 3, seed=3)
    grads = []
    for device in ("cpu", "cuda"):
        inputs = [x.detach().to(device).requires_grad_() for x in data]
        sol = optnet.solve_qp(*inputs)
        (sol.z.square().sum() + sol.lam.sum()).backward()
        grads.append([x.grad.cpu() for x in inputs])
    for g_cpu, g_gpu in zip(*grads):
        error = float((g_cpu - g_gpu).abs().max() / g_cpu.abs().max().clamp_min(1))
        assert error < 1e-6, error


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_replayed_derivatives_equal_the_eager_ones(dtype):
    # The graphed backend replays the backward's solve from a CUDA graph; "batched" runs it
    # eagerly (after a forward that stops differently): the same derivative up to round-off,
    # also for a second batch of the shape through the same graph.
    from optnet._backends import graphed

    tol = 1e-10 if dtype == torch.float64 else 1e-5
    for seed in (6, 7):
        data = random_qp(16, 20, 30, 5, dtype=dtype, seed=seed)
        grads = []
        for backend in ("graphed", "batched"):
            inputs = [x.cuda().requires_grad_() for x in data]
            sol = optnet.solve_qp(*inputs, options=optnet.SolverOptions(backend=backend))
            (sol.z.square().sum() + sol.nu.sum()).backward()
            grads.append([x.grad for x in inputs])
        for replayed, eager in zip(*grads):
            error = float((replayed - eager).abs().max() / eager.abs().max().clamp_min(1))
            assert error < tol, error
    assert any(key[0].__name__ == "_solve_active" for key in graphed._functions)


def test_blocked_factorization_matches_cusolver():
    from optnet import _kkt

    size = _kkt.BLOCKED_FROM + 116  # 500: the blocks of the n = 500 benchmark
    g = torch.Generator(device="cuda").manual_seed(0)
    G = torch.randn(8, size, size, dtype=torch.float64, device="cuda", generator=g)
    M = G.mT @ G + torch.eye(size, dtype=torch.float64, device="cuda")
    blocked, info = _kkt._cholesky_inverse_factor(M)
    plain, _ = _kkt._unblocked(M)
    assert int(info.abs().sum()) == 0
    eye = torch.eye(size, dtype=torch.float64, device="cuda")
    error = float((blocked @ M @ blocked.mT - eye).abs().max())
    assert error < 4 * float((plain @ M @ plain.mT - eye).abs().max()) + 1e-12, error
