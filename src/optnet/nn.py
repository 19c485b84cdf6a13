"""Neural-network layers built on ``solve_qp``."""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn import functional as F

from ._autograd import values_readable
from ._options import SolverOptions
from ._solution import QPSolution
from .functional import solve_qp

logger = logging.getLogger("optnet")


class QPLayer(nn.Module):
    """A QP as a layer: ``forward(Q, p, G, h, A, b, lb=, ub=)`` returns a ``QPSolution``.

    The layer holds no parameters, only the ``SolverOptions``. Unsolved problems are logged
    (warning level) unless ``strict=True``, in which case they raise ``QPSolveError``.

    Example:
        >>> layer = QPLayer(SolverOptions(max_iter=30))
        >>> sol = layer(Q, p, G, h)
        >>> z = layer(Q, p + 1e-3, G, h, warm_start=sol).z   # nearby problem: sol's active set
    """

    def __init__(self, options: SolverOptions | None = None, *, strict: bool = False):
        super().__init__()
        self.options = SolverOptions() if options is None else options
        self.strict = strict
        # The layer the user built, named in warnings (an OptNetLayer holds a QPLayer).
        self.owner = type(self).__name__

    def forward(
        self, Q, p, G=None, h=None, A=None, b=None, *, lb=None, ub=None, warm_start=None
    ) -> QPSolution:
        """``solve_qp`` with the layer's options; ``warm_start`` as in ``solve_qp``."""
        sol = solve_qp(Q, p, G, h, A, b, lb=lb, ub=ub, options=self.options, warm_start=warm_start)
        if self.strict:
            sol.raise_for_status()
        elif not values_readable(sol.status):
            pass  # under torch.compile or torch.func: the statuses cannot be read here
        elif logger.isEnabledFor(logging.WARNING) and not bool(sol.solved.all()):
            unsolved = int((~sol.solved).sum())
            logger.warning(
                "%s: %d of %d problems not solved (statuses: QPSolution.status)",
                self.owner, unsolved, sol.status.numel(),
            )  # fmt: skip
        return sol

    def extra_repr(self) -> str:
        return f"options={self.options}, strict={self.strict}"


class OptNetLayer(nn.Module):
    """The OptNet paper's general layer, feasible by construction (Amos & Kolter 2017, sec. 3).

    ``z*(p) = argmin 1/2 z'Qz + p'z  s.t.  Gz <= h, Az = b`` with learnable
    ``Q = L L' + eps I`` (L lower triangular), ``G``, ``h = G z0 + s0`` (``s0 > 0`` through a
    softplus), ``A`` and ``b = A z0``: z0 is always a strictly feasible point. ``p`` comes from
    the input, shape ``(B, n)``; the output is ``z*`` of shape ``(B, n)``.

    The parameters have ``dtype`` (default: ``torch.get_default_dtype()``, like ``nn.Linear``)
    and the QP is solved in it; the output has the input's dtype, so a float32 network stays
    float32 (pass ``dtype=torch.float64`` to solve in float64 inside a float32 network).
    """

    def __init__(
        self,
        n: int,
        n_ineq: int,
        n_eq: int = 0,
        *,
        eps: float = 1e-4,
        options: SolverOptions | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        kw = {"dtype": torch.get_default_dtype() if dtype is None else dtype}
        self.eps = eps
        self.L = nn.Parameter(torch.tril(torch.rand(n, n, **kw)))
        self.G = nn.Parameter(torch.empty(n_ineq, n, **kw).uniform_(-1, 1))
        self.z0 = nn.Parameter(torch.zeros(n, **kw))
        self.s0_raw = nn.Parameter(torch.full((n_ineq,), 0.5413, **kw))  # softplus -> 1
        self.A = nn.Parameter(torch.empty(n_eq, n, **kw).uniform_(-1, 1)) if n_eq else None
        self.qp = QPLayer(options)
        self.qp.owner = type(self).__name__

    def qp_data(self):
        L = torch.tril(self.L)
        Q = L @ L.mT + self.eps * torch.eye(L.shape[0], dtype=L.dtype, device=L.device)
        h = self.G @ self.z0 + F.softplus(self.s0_raw)
        b = None if self.A is None else self.A @ self.z0
        return Q, self.G, h, self.A, b

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        Q, G, h, A, b = self.qp_data()
        return self.qp(Q, p.to(Q.dtype), G, h, A, b).z.to(p.dtype)
