"""qpbenchmark's absolute optimality criteria, recomputed from a returned primal-dual point.

For ``min 1/2 z'Pz + q'z  s.t.  Gz <= h, Az = b, lb <= z <= ub`` with duals ``lam >= 0`` (G),
``nu`` (A), ``lam_lb, lam_ub >= 0`` (bounds)::

    primal residual  max(||Az - b||_inf, max(Gz - h)_+, max(lb - z)_+, max(z - ub)_+)
    dual residual    ||Pz + q + G'lam + A'nu - lam_lb + lam_ub||_inf
    duality gap      |z'Pz + q'z + h'lam + b'nu - lb'lam_lb + ub'lam_ub|

Infinite bounds and right-hand sides contribute nothing. A point is accepted at tolerance ``tol``
when all three are ``<= tol`` (qpbenchmark: high 1e-9, mid 1e-6, low 1e-3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIERS = {"high": 1e-9, "mid": 1e-6, "low": 1e-3}


@dataclass(frozen=True)
class Optimality:
    primal_residual: float
    dual_residual: float
    duality_gap: float

    def passes(self, tol: float) -> bool:
        values = (self.primal_residual, self.dual_residual, self.duality_gap)
        return all(np.isfinite(v) and v <= tol for v in values)

    def failing(self, tol: float) -> list[str]:
        """Names of the criteria above ``tol`` (non-finite counts as above)."""
        named = {"primal": self.primal_residual, "dual": self.dual_residual,
                 "gap": self.duality_gap}  # fmt: skip
        return [k for k, v in named.items() if not (np.isfinite(v) and v <= tol)]


def _array(x) -> np.ndarray | None:
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)


def _finite_term(bound: np.ndarray | None, dual: np.ndarray | None) -> float:
    """bound' dual over the finite entries of ``bound``."""
    if bound is None or dual is None:
        return 0.0
    finite = np.isfinite(bound)
    return float(bound[finite] @ dual[finite])


def optimality(
    P, q, G=None, h=None, A=None, b=None, lb=None, ub=None, *,
    z, lam=None, nu=None, lam_lb=None, lam_ub=None,
) -> Optimality:  # fmt: skip
    """The three criteria in float64 for one (unbatched) problem and point."""
    P, q, z = _array(P), _array(q), _array(z)
    G, h, A, b, lb, ub = (_array(x) for x in (G, h, A, b, lb, ub))
    lam, nu, lam_lb, lam_ub = (_array(x) for x in (lam, nu, lam_lb, lam_ub))
    Pz = P @ z
    violations = [0.0]
    dual = Pz + q
    gap = z @ Pz + q @ z
    if A is not None:
        violations.append(np.abs(A @ z - b).max())
        if nu is not None:
            dual = dual + A.T @ nu
            gap += b @ nu
    if G is not None:
        finite = np.isfinite(h)
        if finite.any():
            violations.append(np.maximum(G[finite] @ z - h[finite], 0).max())
        if lam is not None:
            lam = np.where(finite, lam, 0.0)
            dual = dual + G.T @ lam
            gap += _finite_term(h, lam)
    for bound, sign, bound_dual in ((lb, -1.0, lam_lb), (ub, 1.0, lam_ub)):
        if bound is None:
            continue
        finite = np.isfinite(bound)
        if finite.any():
            violations.append(np.maximum(sign * (z[finite] - bound[finite]), 0).max())
        if bound_dual is not None:
            bound_dual = np.where(finite, bound_dual, 0.0)
            dual = dual + sign * bound_dual
            gap += sign * _finite_term(bound, bound_dual)
    primal = float(np.max(np.asarray(violations)))  # np.max propagates NaN, max() would not
    return Optimality(primal, float(np.abs(dual).max()), float(abs(gap)))
