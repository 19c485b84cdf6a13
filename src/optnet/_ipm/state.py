"""What one iteration reads and writes, and what a solve returns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .._kkt import ActiveSetFactor
from .._problem import Problem
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


def map_tensors(obj, fn):
    """``fn`` applied to every tensor inside nested dataclasses (other leaves are kept)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: map_tensors(getattr(obj, f.name), fn) for f in dataclasses.fields(obj)}
        return dataclasses.replace(obj, **changes)
    return obj


def where_tree(keep: torch.Tensor, kept, new):
    """Per problem, ``kept`` where ``keep`` else ``new``, through tuples and dataclasses.

    Tensors without the batch dimension (shared data) and non-tensors are the same in both.
    """
    if isinstance(kept, torch.Tensor):
        if kept is new or kept.dim() == 0 or kept.shape[0] != keep.shape[0]:
            return kept
        return torch.where(keep.view(-1, *([1] * (kept.dim() - 1))), kept, new)
    if isinstance(kept, tuple):
        return tuple(where_tree(keep, a, b) for a, b in zip(kept, new))
    if dataclasses.is_dataclass(kept) and kept is not new:
        changes = {f.name: where_tree(keep, getattr(kept, f.name), getattr(new, f.name))
                   for f in dataclasses.fields(kept)}  # fmt: skip
        return dataclasses.replace(kept, **changes)
    return kept


def scatter_tree(full, rows: torch.Tensor, part, batch: int):
    """``full`` with the problems ``rows`` replaced by ``part``'s, through tuples and dataclasses.

    ``batch`` is ``full``'s batch size: tensors of another leading size (shared data) and the
    problem data are kept.
    """
    if isinstance(full, torch.Tensor):
        return full if full.dim() == 0 or full.shape[0] != batch else full.index_copy(0, rows, part)
    if isinstance(full, tuple):
        return tuple(scatter_tree(a, rows, b, batch) for a, b in zip(full, part))
    if isinstance(full, Problem) or not dataclasses.is_dataclass(full):
        return full
    changes = {f.name: scatter_tree(getattr(full, f.name), rows, getattr(part, f.name), batch)
               for f in dataclasses.fields(full)}  # fmt: skip
    return dataclasses.replace(full, **changes)
