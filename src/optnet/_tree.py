"""Per-problem operations through nested dataclasses and tuples of batched tensors.

A solve's state and result are dataclasses of ``(B, ...)`` tensors; sub-batches (compaction,
warm starts, polish rounds) are taken, merged and copied through these helpers.
"""

from __future__ import annotations

import dataclasses

import torch

from ._problem import Problem


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
