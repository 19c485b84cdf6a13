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
