"""The GPUs' blocked factorization (``_kkt._cholesky_inverse_factor``), run on CPU (its twin)."""

from __future__ import annotations

import torch

from optnet import _kkt


def _spd(batch: int, size: int, seed: int, spread: float = 8.0) -> torch.Tensor:
    """Unit-diagonal SPD matrices like an interior point's late ones (weights over 1e``spread``)."""
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(batch, size, size, dtype=torch.float64, generator=g)
    w = 10 ** (spread * torch.rand(batch, size, dtype=torch.float64, generator=g) - spread / 2)
    M = G.mT @ (w.unsqueeze(-1) * G) + 1e-3 * torch.eye(size, dtype=torch.float64)
    d = M.diagonal(dim1=-2, dim2=-1).rsqrt()
    return d.unsqueeze(-1) * M * d.unsqueeze(-2)  # unit diagonal, as factor_spd scales it


def test_blocked_inverse_factor_is_as_accurate_as_the_unblocked_one():
    size = _kkt.BLOCKED_FROM + 17  # two levels of blocks, an uneven last one
    eye = torch.eye(size, dtype=torch.float64)
    for spread, bound in ((1.0, 1e-9), (8.0, 1e-6)):  # cond(M) ~1e6 and ~5e9
        M = _spd(3, size, seed=0, spread=spread)
        L_inv, info = _kkt._cholesky_inverse_factor(M)
        expected, _ = _kkt._unblocked(M)
        assert torch.equal(info, torch.zeros(3, dtype=info.dtype))
        assert torch.equal(L_inv, L_inv.tril())
        # L^-1 M L^-T = I for an exact inverse factor; round-off grows with cond(M).
        error, reference = (
            float((inv @ M @ inv.mT - eye).abs().max()) for inv in (L_inv, expected)
        )
        assert error < bound and error < 4 * reference, (error, reference)


def test_blocked_factor_reports_where_it_failed():
    size = _kkt.BLOCKED_FROM
    M = _spd(2, size, seed=1)
    M[1, 300, 300] = -1.0  # not positive definite from row 300 (in the second block)
    L_inv, info = _kkt._cholesky_inverse_factor(M)
    assert int(info[0]) == 0 and int(info[1]) > 256
    assert bool(torch.isfinite(L_inv).all())
