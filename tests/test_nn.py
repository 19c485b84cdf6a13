"""The nn layers: shapes, feasibility by construction, gradients reach every parameter."""

from __future__ import annotations

import logging

import pytest
import torch

import optnet
from optnet.nn import OptNetLayer, QPLayer


def test_qplayer_returns_solution_and_strict_raises():
    Q = torch.eye(2, dtype=torch.float64)
    G = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    h = torch.tensor([-1.0, -1.0], dtype=torch.float64)  # infeasible
    sol = QPLayer()(Q, torch.zeros(2, dtype=torch.float64), G, h)
    assert int(sol.status) == optnet.QPStatus.PRIMAL_INFEASIBLE
    with pytest.raises(optnet.QPSolveError):
        QPLayer(strict=True)(Q, torch.zeros(2, dtype=torch.float64), G, h)


def test_qplayer_logs_unsolved_problems(caplog):
    Q = torch.eye(2, dtype=torch.float64)
    G = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    h = torch.tensor([-1.0, -1.0], dtype=torch.float64)
    with caplog.at_level(logging.WARNING, logger="optnet"):
        QPLayer()(Q, torch.zeros(2, dtype=torch.float64), G, h)
    assert "1 of 1 problems not solved" in caplog.text


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_optnet_layer_keeps_the_input_dtype(dtype):
    layer = OptNetLayer(4, 6, dtype=dtype)
    for p_dtype in (torch.float32, torch.float64):
        z = layer(torch.randn(3, 4, dtype=p_dtype))
        assert z.dtype == p_dtype
    assert OptNetLayer(4, 6).L.dtype == torch.get_default_dtype()


def test_optnet_layer_blames_a_wrong_input_length_on_p():
    with pytest.raises(ValueError, match=r"p must have shape \(n,\) = \(4,\)"):
        OptNetLayer(4, 6)(torch.randn(3, 5))


def test_optnet_layer_is_feasible_and_trains():
    torch.manual_seed(0)
    layer = OptNetLayer(6, 8, 2, dtype=torch.float64)
    p = torch.randn(5, 6, dtype=torch.float64)
    z = layer(p)
    Q, G, h, A, b = layer.qp_data()
    assert z.shape == (5, 6)
    assert bool(((G @ z.T).T <= h + 1e-6).all())
    assert torch.allclose(z @ A.T, b.expand(5, -1), atol=1e-6)
    z.square().sum().backward()
    for name, param in layer.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
