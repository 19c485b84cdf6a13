"""QPSolution: what a batched solve returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ._status import QPSolveError, QPStatus

# The outputs of the autograd Function, in order; ``QPSolution.from_outputs`` is their one
# reader. The differentiable ones (z, lam, nu, lam_lb, lam_ub) come first.
OUTPUT_FIELDS = (
    "z", "lam", "nu", "s", "lam_lb", "lam_ub",
    "status", "iterations", "primal_residual", "dual_residual", "duality_gap",
    "certificate_z", "certificate_lam", "certificate_nu", "certificate_lam_lb",
    "certificate_lam_ub",
)  # fmt: skip
DIFFERENTIABLE_FIELDS = ("z", "lam", "nu", "lam_lb", "lam_ub")


@dataclass(frozen=True)
class InfeasibilityCertificate:
    """Normalized rays proving infeasibility (zero for problems without that status; for
    ``CLOSEST_FEASIBLE`` problems the shift that made the constraints consistent, normalized,
    which is such a ray too).

    For ``PRIMAL_INFEASIBLE`` problems ``(lam, nu, lam_lb, lam_ub)`` satisfies
    ``G'lam + A'nu - lam_lb + lam_ub ~ 0``, ``lam, lam_lb, lam_ub >= 0`` and
    ``h'lam + b'nu - lb'lam_lb + ub'lam_ub < 0`` (Farkas). For ``DUAL_INFEASIBLE`` problems ``z``
    is a direction with ``Qz ~ 0``, ``Az ~ 0``, ``Gz <= ~0`` (and within the bounds' recession
    cone) along which ``p'z < 0``.
    """

    z: torch.Tensor
    lam: torch.Tensor | None
    nu: torch.Tensor | None
    lam_lb: torch.Tensor | None
    lam_ub: torch.Tensor | None


@dataclass(frozen=True)
class ActiveSet:
    """Which inequality rows hold with equality: a warm start for ``solve_qp(warm_start=)``.

    Boolean masks shaped like the duals: ``ineq`` ``(B, m)`` for the rows of ``Gz <= h``,
    ``lb`` and ``ub`` ``(B, n)`` for the bounds (unbatched ``(m,)``, ``(n,)``: one guess shared
    by the batch); None for a block the problem does not have. ``QPSolution.active_set`` is
    the set its solution was polished on; an ``ActiveSet`` can also be assembled from cached
    masks, e.g. each training sample's from the previous epoch.

    Example:
        >>> sol = solve_qp(Q, p, lb=lb)
        >>> cached = sol.active_set.lb.clone()              # (B, n), kept per sample
        >>> sol = solve_qp(Q, p_next, lb=lb, warm_start=ActiveSet(lb=cached))
    """

    ineq: torch.Tensor | None = None
    lb: torch.Tensor | None = None
    ub: torch.Tensor | None = None

    def blocks(self) -> tuple[tuple[str, torch.Tensor | None], ...]:
        """``(name, mask)`` of the three blocks, in the solver's row order (G, lb, ub)."""
        return tuple((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))


@dataclass(frozen=True)
class QPSolution:
    """Solution of a batch of QPs ``min 1/2 z'Qz + p'z  s.t.  Gz <= h, Az = b, lb <= z <= ub``.

    Shapes are ``(B, .)`` when any input is batched and unbatched otherwise. ``z``, ``lam``,
    ``nu``, ``lam_lb`` and ``lam_ub`` are differentiable. Blocks absent from the problem are None.

    Attributes:
        z: primal solution ``(B, n)``.
        lam: duals of ``Gz <= h`` ``(B, m)``, ``>= 0``.
        nu: duals of ``Az = b`` ``(B, p)``.
        s: slacks ``h - Gz`` ``(B, m)``.
        lam_lb, lam_ub: duals of ``z >= lb`` and ``z <= ub`` ``(B, n)``.
        status: ``(B,)`` int64 tensor of ``QPStatus`` codes.
        iterations: ``(B,)`` interior-point iterations each problem took.
        primal_residual, dual_residual, duality_gap: ``(B,)`` infinity-norm residuals on the
            original (unscaled) data, the quantities the tolerances are checked against.
        certificate: rays for infeasible problems, see ``InfeasibilityCertificate``.
        active_set: the constraints held with equality by the polish that produced ``z``
            (for solved problems, the active constraints); pass the solution as
            ``solve_qp(..., warm_start=sol)`` to start a nearby problem from it.
    """

    z: torch.Tensor
    lam: torch.Tensor | None
    nu: torch.Tensor | None
    s: torch.Tensor | None
    lam_lb: torch.Tensor | None
    lam_ub: torch.Tensor | None
    status: torch.Tensor
    iterations: torch.Tensor
    primal_residual: torch.Tensor
    dual_residual: torch.Tensor
    duality_gap: torch.Tensor
    certificate: InfeasibilityCertificate
    active_set: ActiveSet

    @classmethod
    def from_outputs(
        cls, outputs: Sequence[torch.Tensor | None], unbatched: bool, active_set: ActiveSet
    ) -> QPSolution:
        """The solution from the autograd Function's outputs (``OUTPUT_FIELDS`` order).

        ``unbatched``: no input had a batch dimension, so the batch of one is squeezed away
        (from ``active_set``'s masks too).
        """
        if len(outputs) != len(OUTPUT_FIELDS):
            raise ValueError(f"expected {len(OUTPUT_FIELDS)} outputs, got {len(outputs)}")
        fields = {
            name: x.squeeze(0) if unbatched and x is not None else x
            for name, x in zip(OUTPUT_FIELDS, outputs)
        }
        prefix = "certificate_"
        certificate = InfeasibilityCertificate(
            **{
                name[len(prefix) :]: fields.pop(name)
                for name in OUTPUT_FIELDS
                if name.startswith(prefix)
            }
        )
        if unbatched:
            active_set = ActiveSet(
                **{name: None if x is None else x.squeeze(0) for name, x in active_set.blocks()}
            )
        return cls(**fields, certificate=certificate, active_set=active_set)

    @property
    def solved(self) -> torch.Tensor:
        """Boolean mask of the problems with a solution: status ``SOLVED``, or
        ``CLOSEST_FEASIBLE`` (only with ``SolverOptions(infeasible="closest")``)."""
        solved = self.status == QPStatus.SOLVED
        return solved | (self.status == QPStatus.CLOSEST_FEASIBLE)

    def raise_for_status(self) -> QPSolution:
        """Raise ``QPSolveError`` naming the batch indices without a solution (``solved``);
        return self otherwise."""
        if not bool(self.solved.all()):
            raise QPSolveError(self.status)
        return self
