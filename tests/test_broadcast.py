"""Every batched/unbatched mix of the six inputs; shared inputs get the batch-SUM gradient."""

from __future__ import annotations

import itertools

import pytest
import torch

import optnet
from tests.support import known_solution_problem

NAMES = ("Q", "p", "G", "h", "A", "b")
BATCH = 3


@pytest.fixture(scope="module")
def data():
    (Q, p, G, h, A, b), _ = known_solution_problem(1, 4, 5, 1, seed=11)
    shared = [x[0] for x in (Q, p, G, h, A, b)]
    g = torch.Generator().manual_seed(4)
    # Batched versions: small per-problem perturbations of the shared data (Q stays SPD).
    batched = [x + 0.05 * torch.randn(BATCH, *x.shape, generator=g, dtype=x.dtype) for x in shared]
    batched[0] = (batched[0] + batched[0].mT) / 2
    cotangents = torch.randn(3, BATCH, 5, generator=g, dtype=torch.float64)
    return shared, batched, cotangents


def loss_of(sol, cotangents):
    # Uses z, lam and nu so that every adjoint block is exercised.
    return (
        (sol.z * cotangents[0, :, :4]).sum()
        + (sol.lam * cotangents[1]).sum()
        + (sol.nu * cotangents[2, :, :1]).sum()
    )


@pytest.mark.parametrize("mask", list(itertools.product([False, True], repeat=6)))
def test_mix_matches_expanded_batch(data, mask):
    shared, batched, cotangents = data
    if not any(mask):
        pytest.skip("fully unbatched: covered by test_unbatched_output_shapes")
    inputs = [
        (b if is_batched else s).clone().requires_grad_()
        for s, b, is_batched in zip(shared, batched, mask)
    ]
    sol = optnet.solve_qp(*inputs)
    assert bool(sol.solved.all())
    loss_of(sol, cotangents).backward()

    # Reference: the same problems with every input materialized per batch element.
    expanded = [
        x.detach().clone() if is_batched else x.detach().expand(BATCH, *x.shape).clone()
        for x, is_batched in zip(inputs, mask)
    ]
    for x in expanded:
        x.requires_grad_()
    ref = optnet.solve_qp(*expanded)
    loss_of(ref, cotangents).backward()
    assert torch.allclose(sol.z, ref.z, atol=1e-10)
    for name, x, e, is_batched in zip(NAMES, inputs, expanded, mask):
        expected = e.grad if is_batched else e.grad.sum(0)
        assert x.grad.shape == x.shape, name
        assert torch.allclose(x.grad, expected, atol=1e-8), name


def test_unbatched_output_shapes(data):
    shared, _, _ = data
    sol = optnet.solve_qp(*shared)
    assert sol.z.shape == (4,) and sol.lam.shape == (5,) and sol.nu.shape == (1,)
    assert sol.status.shape == () and sol.duality_gap.shape == ()


def test_shared_gradient_is_the_sum_not_the_mean(data):
    shared, _, _ = data
    p = shared[1].clone().requires_grad_()
    ps = p.expand(BATCH, -1)  # the same problem BATCH times
    sol = optnet.solve_qp(shared[0], ps, *shared[2:])
    sol.z.sum().backward()
    single = shared[1].clone().requires_grad_()
    optnet.solve_qp(shared[0], single, *shared[2:]).z.sum().backward()
    assert torch.allclose(p.grad, BATCH * single.grad, atol=1e-9)
