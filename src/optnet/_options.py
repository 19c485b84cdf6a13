"""SolverOptions: every knob of the interior-point solver, validated once."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Default tolerances per dtype: float32 cannot resolve residuals much below ~1e-6 of the data.
# float32 loses the Newton direction's accuracy once slack ratios pass ~1e6, which tighter
# tolerances require; 1e-4 converges reliably (docs/solver.md). For more, use compute_dtype.
_DEFAULT_EPS = {torch.float64: 1e-9, torch.float32: 1e-4}
# Default tolerances of the (primal, dual) infeasibility certificates per dtype: a certificate
# is a ray longer than 1 / eps. In float32 the regularized Newton systems keep iterates below
# ~1e7, so 1e8 rays are never reached (measured: 1 of 610 infeasible problems certified at
# 1e-8, 602 at 1e-5); a dual ray at 1e-5 also took OptNetLayer's Q (cond ~ 2.6e6, singular
# to 1e-5 of its scale) for unbounded, at 1e-6 it did not (docs/solver.md).
_DEFAULT_EPS_INFEASIBLE = {torch.float64: (1e-8, 1e-8), torch.float32: (1e-5, 1e-6)}
# SolverOptions.infeasible: report inconsistent constraints, or solve the closest feasible QP.
INFEASIBLE_MODES = ("status", "closest")
# SolverOptions.backend: "auto" or one of these (``optnet._backends.BACKENDS`` implements each).
BACKEND_NAMES = ("batched", "graphed")


@dataclass(frozen=True)
class SolverOptions:
    """Options of the batched primal-dual interior-point solver.

    A problem is SOLVED when its primal residual, dual residual and duality gap are each
    ``<= eps_abs + eps_rel * scale`` (see ``docs/solver.md`` for the scales).

    Args:
        eps_abs: absolute tolerance; ``None`` picks 1e-9 for float64 and 1e-4 for float32.
        eps_rel: relative tolerance; ``None`` picks the same value as ``eps_abs``'s default.
        max_iter: iteration cap; problems still unsolved then get ``QPStatus.MAX_ITER``.
        regularization: static primal/dual regularization of the Newton matrix, relative
            to the largest diagonal entry; iterative refinement removes its bias.
        refine_steps: iterative-refinement steps applied to every Newton solve.
        eps_infeasible: tolerance of the infeasibility certificates; ``None`` picks 1e-8 for
            float64 and, in float32, 1e-5 for primal and 1e-6 for dual infeasibility.
        check_every: the host reads convergence flags every this many iterations
            (``None``: the backend's own period; the ``"batched"`` backend reads every
            iteration, the ``"graphed"`` one replays 4 iterations per read for the first 8,
            then 1).
        equilibrate: Ruiz-equilibrate the data before solving (results are unscaled).
        ruiz_iters: number of Ruiz passes when ``equilibrate`` is set.
        compute_dtype: dtype of the solver's arithmetic; ``None`` uses the inputs' dtype.
            ``torch.float64`` with float32 inputs gives float64 accuracy (and tolerances) at
            float64 cost; outputs and gradients keep the inputs' dtype.
        backend: how the iterations run; ``optnet._backends`` holds the table of backends and the
            one function that picks one. ``"auto"`` (default): ``"graphed"`` on CUDA for
            problems whose solve is launch-bound (``B * n * (n + m + neq) <= 2**25`` entries)
            and ``"batched"`` otherwise. ``"batched"``: tensor operations over the whole batch,
            launched from Python each iteration. ``"graphed"``: the same iteration captured as
            CUDA graphs cached per problem shape (on CPU its eager twin runs, for testing).
            ``equilibrate`` runs on ``"batched"`` only.
        infeasible: what a problem with inconsistent constraints returns. ``"status"``
            (default): status ``PRIMAL_INFEASIBLE`` with a certificate, zero gradients.
            ``"closest"``: the solution of the closest feasible problem, differentiable, with
            status ``CLOSEST_FEASIBLE``: the right-hand sides ``h, b, lb, ub`` shifted by
            the smallest change (in the 2-norm) that makes the constraints consistent. Costs
            two more solves of the infeasible problems only (``docs/solver.md``, "Infeasible
            problems"); feasible problems are solved exactly as by default.

    Example:
        >>> SolverOptions(eps_abs=1e-10, max_iter=100)
    """

    eps_abs: float | None = None
    eps_rel: float | None = None
    max_iter: int = 50
    regularization: float = 1e-10
    refine_steps: int = 1
    eps_infeasible: float | None = None
    check_every: int | None = None
    equilibrate: bool = False
    ruiz_iters: int = 10
    compute_dtype: torch.dtype | None = None
    backend: str = "auto"
    infeasible: str = "status"

    def __post_init__(self):
        for name in ("eps_abs", "eps_rel"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"SolverOptions.{name} must be a float >= 0, got {value!r}")
        if self.eps_abs == 0 and self.eps_rel == 0:
            raise ValueError("SolverOptions: eps_abs and eps_rel cannot both be 0")
        for name in ("max_iter", "ruiz_iters"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SolverOptions.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.refine_steps, int) or self.refine_steps < 0:
            raise ValueError(
                f"SolverOptions.refine_steps must be an int >= 0, got {self.refine_steps!r}"
            )
        if self.check_every is not None and (
            not isinstance(self.check_every, int) or self.check_every < 1
        ):
            raise ValueError(
                f"SolverOptions.check_every must be None or an int >= 1, got {self.check_every!r}"
            )
        if self.compute_dtype not in (None, torch.float32, torch.float64):
            raise ValueError(
                f"SolverOptions.compute_dtype must be None, torch.float32 or torch.float64, "
                f"got {self.compute_dtype!r}"
            )
        if self.backend != "auto" and self.backend not in BACKEND_NAMES:
            names = ", ".join(repr(name) for name in ("auto", *BACKEND_NAMES))
            raise ValueError(f"SolverOptions.backend must be one of {names}, got {self.backend!r}")
        if self.infeasible not in INFEASIBLE_MODES:
            names = ", ".join(map(repr, INFEASIBLE_MODES))
            raise ValueError(
                f"SolverOptions.infeasible must be one of {names}, got {self.infeasible!r}"
            )
        if not (isinstance(self.regularization, (int, float)) and 0 <= self.regularization < 1):
            raise ValueError(
                f"SolverOptions.regularization must be in [0, 1), got {self.regularization!r}"
            )
        # The certificates test rays longer than 1 / eps_infeasible: it cannot be 0.
        eps = self.eps_infeasible
        if eps is not None and not (isinstance(eps, (int, float)) and 0 < eps < 1):
            raise ValueError(
                f"SolverOptions.eps_infeasible must be in (0, 1), got {self.eps_infeasible!r}"
            )

    def tolerances(self, dtype: torch.dtype) -> tuple[float, float]:
        """(eps_abs, eps_rel) with dtype-dependent defaults filled in."""
        default = _DEFAULT_EPS[dtype]
        eps_abs = default if self.eps_abs is None else self.eps_abs
        eps_rel = default if self.eps_rel is None else self.eps_rel
        return eps_abs, eps_rel

    def infeasibility_tolerances(self, dtype: torch.dtype) -> tuple[float, float]:
        """The (primal, dual) infeasibility tolerances, dtype-dependent defaults filled in."""
        if self.eps_infeasible is None:
            return _DEFAULT_EPS_INFEASIBLE[dtype]
        return self.eps_infeasible, self.eps_infeasible
