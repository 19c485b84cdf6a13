"""What one iteration reads and writes, and what a solve returns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .._kkt import ActiveSetFactor
from .residuals import Residuals

# Status of a problem that is still iterating (the final statuses are QPStatus codes >= 0).
RUNNING = -1


@dataclass(frozen=True)
class IPMState:
    """Everything one iteration reads and writes; all tensors, so a chunk can be graph-captured.

    ``best_*`` keep each problem's iterate with the smallest merit so far (see ``stopping``):
    when the tolerance is out of reach, late iterations can drift away from a nearly optimal
    point, and an unsolved problem then returns its best point (still with its honest status).
    """

    z: torch.Tensor
    s: torch.Tensor
    lam: torch.Tensor
    nu: torch.Tensor | None
    status: torch.Tensor  # (B,) int64: RUNNING or a final QPStatus
    iterations: torch.Tensor  # (B,) int64
    bumps: torch.Tensor  # (B,) int64: times the regularization was raised after a failed factor
    best_z: torch.Tensor
    best_s: torch.Tensor
    best_lam: torch.Tensor
    best_nu: torch.Tensor | None
    best_merit: torch.Tensor  # (B,) merit of the best iterate

    def iterate(self, best: torch.Tensor | None = None):
        """(z, s, lam, nu): the current iterate, or per problem the best one where ``best``."""
        current = (self.z, self.s, self.lam, self.nu)
        if best is None:
            return current
        kept = (self.best_z, self.best_s, self.best_lam, self.best_nu)
        pick = best.unsqueeze(-1)
        return tuple(None if c is None else torch.where(pick, k, c) for c, k in zip(current, kept))

    def map(self, fn) -> IPMState:
        """``fn`` applied to every tensor."""
        changes = {f.name: None if (x := getattr(self, f.name)) is None else fn(x)
                   for f in dataclasses.fields(self)}  # fmt: skip
        return IPMState(**changes)

    def scatter(self, part: IPMState, rows: torch.Tensor) -> IPMState:
        """This state with the problems ``rows`` replaced by ``part``."""
        changes = {
            f.name: None if (x := getattr(self, f.name)) is None
            else x.index_copy(0, rows, getattr(part, f.name))
            for f in dataclasses.fields(self)
        }  # fmt: skip
        return IPMState(**changes)


@dataclass(frozen=True)
class IPMResult:
    """A finished solve in the solver's dtype, inequality rows stacked as ``Problem`` lays them.

    ``factor`` is the active-set KKT factor made by the polish; the backward pass reuses it.
    """

    z: torch.Tensor  # (B, n)
    s: torch.Tensor  # (B, m_all)
    lam: torch.Tensor  # (B, m_all)
    nu: torch.Tensor | None  # (B, neq)
    status: torch.Tensor  # (B,) QPStatus codes; RUNNING: handed off, unpolished, to resume
    iterations: torch.Tensor  # (B,)
    residuals: Residuals
    certificate_dual: torch.Tensor  # (B, m_all + neq) ray (lam, nu) for PRIMAL_INFEASIBLE
    certificate_primal: torch.Tensor  # (B, n) ray z for DUAL_INFEASIBLE
    factor: ActiveSetFactor
    polished: torch.Tensor  # (B,) bool: the returned point is the polished one

    def resume_state(self, rows: torch.Tensor) -> IPMState:
        """The problems ``rows`` as a running state at their returned (unpolished) iterate."""
        point = (self.z, self.s, self.lam, self.nu)
        z, s, lam, nu = (None if x is None else x[rows] for x in point)
        iterations = self.iterations[rows]
        best = [None if x is None else x.clone() for x in (z, s, lam, nu)]
        return IPMState(
            z, s, lam, nu, torch.full_like(iterations, RUNNING), iterations,
            torch.zeros_like(iterations), *best, torch.full_like(z[:, 0], float("inf")),
        )  # fmt: skip
