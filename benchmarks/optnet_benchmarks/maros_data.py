"""The Maros-Meszaros convex QP test set (dense subset): reading and conversion.

Each ``.mat`` file holds ``minimize 1/2 x'Px + q'x + r  s.t.  l <= Ax <= u`` whose last n rows of
A are the identity (the variable bounds). We convert it to ``solve_qp``'s form::

    minimize 1/2 z'Qz + p'z   s.t.  Gz <= h,  Az = b,  lb <= z <= ub

general rows with ``u - l < 1e-10`` become equalities; the finite sides of the others become
rows of G (``a'z <= u`` and ``-a'z <= -l``); the identity rows become native bounds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

INFINITY = 1e20  # the files' stand-in for an infinite bound
EQUALITY_WIDTH = 1e-10  # rows with u - l below this are equalities


@dataclass(frozen=True)
class MarosProblem:
    """One converted problem; all arrays float64 numpy, None where a block is absent.

    ``n_fixed`` counts variables with ``lb == ub``; with ``fixed_as_equalities`` (the loader's
    default) they are rows ``e_i'z = lb_i`` of A and their bounds are dropped.
    """

    name: str
    P: np.ndarray  # (n, n) dense
    q: np.ndarray  # (n,)
    r: float
    G: np.ndarray | None  # (m, n)
    h: np.ndarray | None
    A: np.ndarray | None  # (neq, n)
    b: np.ndarray | None
    lb: np.ndarray | None  # (n,) with -inf where unbounded
    ub: np.ndarray | None  # (n,) with +inf where unbounded
    n_fixed: int

    @property
    def n(self) -> int:
        return self.q.shape[0]

    @property
    def m(self) -> int:
        return 0 if self.G is None else self.G.shape[0]

    @property
    def neq(self) -> int:
        return 0 if self.A is None else self.A.shape[0]

    def objective(self, z: np.ndarray) -> float:
        """``1/2 z'Pz + q'z + r`` (the offset included, as in opt_costs.json)."""
        return float(0.5 * z @ self.P @ z + self.q @ z + self.r)

    def solve_qp_args(self, dtype: torch.dtype, device: torch.device | str) -> dict:
        """Keyword arguments of ``optnet.solve_qp`` (unbatched tensors)."""

        def tensor(x):
            return None if x is None else torch.as_tensor(x, dtype=dtype, device=device)

        return {
            "Q": tensor(self.P), "p": tensor(self.q), "G": tensor(self.G), "h": tensor(self.h),
            "A": tensor(self.A), "b": tensor(self.b), "lb": tensor(self.lb), "ub": tensor(self.ub),
        }  # fmt: skip


def _float_column(value) -> np.ndarray:
    # Some files store q, l, u or r as uint8/int16: cast before any arithmetic (negation wraps).
    return np.asarray(value, dtype=np.float64).reshape(-1)


def _finite(values: np.ndarray) -> np.ndarray:
    """Map the files' +-1e20 to +-inf.

    Some files hold 9.999999999999998e19 rather than 1e20 (a rounding in their conversion),
    so anything within a factor 10 of the marker counts as infinite.
    """
    out = values.copy()
    out[out >= INFINITY / 10] = np.inf
    out[out <= -INFINITY / 10] = -np.inf
    return out


def convert(
    name: str, P, q, r, A, lower, upper, *, fixed_as_equalities: bool = True
) -> MarosProblem:
    """Convert ``lower <= Ax <= upper`` data (bounds in the last n rows) to a ``MarosProblem``."""
    q = _float_column(q)
    n = q.shape[0]
    P = np.asarray(P.toarray() if hasattr(P, "toarray") else P, dtype=np.float64)
    A = np.asarray(A.toarray() if hasattr(A, "toarray") else A, dtype=np.float64)
    lower, upper = _finite(_float_column(lower)), _finite(_float_column(upper))
    if A.shape[0] < n or not np.array_equal(A[-n:], np.eye(n)):
        raise ValueError(f"{name}: the last n={n} rows of A are not the identity")
    C, cl, cu = A[:-n], lower[:-n], upper[:-n]
    lb, ub = lower[-n:].copy(), upper[-n:].copy()

    is_eq = np.isfinite(cl) & np.isfinite(cu) & (cu - cl < EQUALITY_WIDTH)
    eq_rows, eq_rhs = [C[is_eq]], [cu[is_eq]]
    upper = ~is_eq & np.isfinite(cu)
    lower = ~is_eq & np.isfinite(cl)
    G = np.vstack([C[upper], -C[lower]])
    h = np.concatenate([cu[upper], -cl[lower]])

    fixed = np.isfinite(lb) & np.isfinite(ub) & (ub - lb < EQUALITY_WIDTH)
    if fixed_as_equalities and fixed.any():
        eq_rows.append(np.eye(n)[fixed])
        eq_rhs.append(lb[fixed])
        lb[fixed], ub[fixed] = -np.inf, np.inf
    A_eq, b_eq = np.vstack(eq_rows), np.concatenate(eq_rhs)
    return MarosProblem(
        name=name,
        P=0.5 * (P + P.T),  # the files store both triangles; this only removes rounding asymmetry
        q=q,
        r=float(_float_column(r)[0]) if np.size(r) else 0.0,
        G=G if G.shape[0] else None,
        h=h if G.shape[0] else None,
        A=A_eq if A_eq.shape[0] else None,
        b=b_eq if A_eq.shape[0] else None,
        lb=lb if np.isfinite(lb).any() else None,
        ub=ub if np.isfinite(ub).any() else None,
        n_fixed=int(fixed.sum()),
    )


def load_problem(path: Path, *, fixed_as_equalities: bool = True) -> MarosProblem:
    """Read one ``.mat`` file of the set."""
    from scipy.io import loadmat

    data = loadmat(str(path))
    return convert(
        Path(path).stem,
        data["P"], data["q"], data["r"], data["A"], data["l"], data["u"],
        fixed_as_equalities=fixed_as_equalities,
    )  # fmt: skip


def problem_names(folder: Path) -> list[str]:
    """Names of the problems in ``folder``, smallest file first (a rough size order)."""
    files = sorted(Path(folder).glob("*.mat"), key=lambda f: (f.stat().st_size, f.name))
    return [f.stem for f in files]


def optimal_costs(folder: Path) -> dict[str, float]:
    """name -> reference optimal objective (offset r included) from ``opt_costs.json``."""
    path = Path(folder) / "opt_costs.json"
    return json.loads(path.read_text()) if path.exists() else {}
