"""What the infeasibility certificates must satisfy (``optnet.InfeasibilityCertificate``),
checked from the problem's data, independently of how the solver found them. Both take the
certificate and the problem's inputs by name (Q, p, G, h, A, b, lb, ub), batched or not."""

from __future__ import annotations

import torch

from .tolerances import TOLERANCES


def _matvec(M, x):
    return torch.einsum("...ij,...j->...i", M, x)


def _dot(x, y):
    return (x * y).sum(-1)


def _inf_norm(x):
    return x.abs().amax(-1)


def assert_farkas(cert, Q=None, p=None, G=None, h=None, A=None, b=None, lb=None, ub=None):
    """The certificate proves the constraints inconsistent (finite bounds): ``(lam, nu,
    lam_lb, lam_ub)`` has norm 1, ``lam, lam_lb, lam_ub >= 0``, ``G'lam + A'nu - lam_lb +
    lam_ub = 0`` and ``h'lam + b'nu - lb'lam_lb + ub'lam_ub < 0``."""
    tol = TOLERANCES[("certificate", cert.z.dtype)]
    # Each block of rows C z <= d (= d for A) as (its multiplier y, C'y, d'y, y >= 0 required).
    blocks = []
    if G is not None:
        blocks.append((cert.lam, _matvec(G.mT, cert.lam), _dot(h, cert.lam), True))
    if A is not None:
        blocks.append((cert.nu, _matvec(A.mT, cert.nu), _dot(b, cert.nu), False))
    if lb is not None:
        blocks.append((cert.lam_lb, -cert.lam_lb, -_dot(lb, cert.lam_lb), True))
    if ub is not None:
        blocks.append((cert.lam_ub, cert.lam_ub, _dot(ub, cert.lam_ub), True))
    norm = _inf_norm(torch.cat([y for y, *_ in blocks], -1))
    torch.testing.assert_close(norm, torch.ones_like(norm), msg="the certificate is not normalized")
    for y, _, _, nonnegative in blocks:
        assert not nonnegative or float(y.min()) >= -tol, f"a negative multiplier: {y}"
    combination = _inf_norm(sum(Cty for _, Cty, _, _ in blocks))
    assert float(combination.max()) <= tol, f"C'y is not zero: {combination}"
    rhs = sum(dy for _, _, dy, _ in blocks)
    assert float(rhs.max()) < -tol, f"d'y is not negative: {rhs}"


def assert_unbounded_ray(cert, Q, p, G=None, h=None, A=None, b=None, lb=None, ub=None):
    """The certificate's ``z``, a direction ``d`` of norm 1, proves the objective unbounded
    below (on a feasible set): ``Qd = 0``, ``Ad = 0``, ``Gd <= 0``, ``d >= 0`` where ``lb`` is
    finite, ``d <= 0`` where ``ub`` is finite, and ``p'd < 0``."""
    d = cert.z
    tol = TOLERANCES[("certificate", d.dtype)]
    torch.testing.assert_close(_inf_norm(d), torch.ones_like(d[..., 0]), msg="not normalized")
    assert float(_inf_norm(_matvec(Q, d)).max()) <= tol, "Qd is not zero"
    if A is not None:
        assert float(_inf_norm(_matvec(A, d)).max()) <= tol, "Ad is not zero"
    if G is not None:
        assert float(_matvec(G, d).max()) <= tol, "Gd is not <= 0"
    for bound, outward in ((lb, -d), (ub, d)):
        if bound is not None:
            away = torch.where(torch.isfinite(bound), outward, 0)
            assert float(away.max()) <= tol, "d leaves the bounds' recession cone"
    assert float(_dot(p, d).max()) < -tol, "p'd is not negative"
