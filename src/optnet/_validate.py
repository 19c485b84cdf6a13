"""Input checks run before any work: every message names the argument and what was expected."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._problem import INPUTS, ROW_BLOCKS, row_blocks
from ._solution import ActiveSet, QPSolution

_SUPPORTED_DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True)
class ProblemShape:
    """Sizes of a validated problem; ``batch`` is None when no input is batched."""

    batch: int | None
    n: int
    m: int
    neq: int
    dtype: torch.dtype
    device: torch.device


def validate_inputs(*, check_values: bool = True, **arrays: torch.Tensor | None) -> ProblemShape:
    """Check the eight QP inputs (None = block absent) and infer the problem sizes.

    ``check_values=False`` checks types, dtypes and shapes only, which read no data (possible
    under vmap and torch.compile); the values are then checked where the data are read.
    """
    present = {name: x for name, x in arrays.items() if x is not None}
    for name, x in present.items():
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or None, got {type(x).__name__}")
    for name in ("Q", "p"):
        if name not in present:
            raise ValueError(f"{name} is required")
    for pair in (("G", "h"), ("A", "b")):
        given = [name for name in pair if name in present]
        if len(given) == 1:
            missing = (set(pair) - set(given)).pop()
            raise ValueError(f"{given[0]} was given without {missing}: pass both or neither")

    dtype, device = present["p"].dtype, present["p"].device
    for name, x in present.items():
        if x.dtype not in _SUPPORTED_DTYPES:
            raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
        if x.dtype != dtype:
            raise TypeError(
                f"all inputs must share one dtype: p is {dtype} but {name} is {x.dtype}"
            )
        if x.device != device:
            raise ValueError(
                f"all inputs must be on one device: p is on {device} but {name} is on {x.device}"
            )

    sizes = {"n": _infer_n(present)}
    if "G" in present:
        sizes["m"] = present["G"].shape[-2] if present["G"].dim() >= 2 else None
    if "A" in present:
        sizes["neq"] = present["A"].shape[-2] if present["A"].dim() >= 2 else None
    batch = None
    for name, x in present.items():
        expected = tuple(sizes.get(letter) for letter in INPUTS[name])
        core = tuple(x.shape[x.dim() - len(expected) :]) if x.dim() >= len(expected) else None
        if x.dim() not in (len(expected), len(expected) + 1) or core != expected:
            letters = ", ".join(INPUTS[name]) + ("," if len(expected) == 1 else "")
            values = ", ".join(map(str, expected)) + ("," if len(expected) == 1 else "")
            raise ValueError(
                f"{name} must have shape ({letters}) = ({values}) or (B, {letters.rstrip(',')}) "
                f"= (B, {values.rstrip(',')}), got {tuple(x.shape)}"
            )
        if x.dim() == len(expected) + 1:
            if batch is not None and x.shape[0] != batch:
                raise ValueError(
                    f"batch sizes disagree: {name} has batch size {x.shape[0]}, "
                    f"an earlier input has {batch}"
                )
            batch = x.shape[0]
    if sizes["n"] == 0:
        raise ValueError("Q and p must have at least one variable (n >= 1)")

    if check_values:
        _check_values(present)
    return ProblemShape(batch, sizes["n"], sizes.get("m", 0), sizes.get("neq", 0), dtype, device)


def _infer_n(present: dict[str, torch.Tensor]) -> int:
    """n as most inputs have it, so that the error names the odd one out (Q on a tie with p)."""
    votes: dict[int, int] = {}
    for name, x in present.items():
        if x.dim() >= 1:
            votes[x.shape[-1]] = votes.get(x.shape[-1], 0) + (name not in ("h", "b"))
    from_q, from_p = present["Q"].shape[-1], present["p"].shape[-1]
    return from_p if votes.get(from_p, 0) > votes.get(from_q, 0) else from_q


def _check_values(present: dict[str, torch.Tensor]) -> None:
    for name in ("Q", "p", "G", "A", "b"):
        x = present.get(name)
        if x is not None and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or infinite entries")
    # Infinite right-hand sides mean "no constraint", but only in the direction that relaxes it.
    for name, allowed in (("h", float("inf")), ("lb", float("-inf")), ("ub", float("inf"))):
        x = present.get(name)
        if x is not None and not bool((torch.isfinite(x) | (x == allowed)).all()):
            raise ValueError(
                f"{name} contains NaN or {-allowed} entries (only {allowed} is allowed)"
            )
    Q = present["Q"]
    if not Q.numel():  # an empty batch
        return
    asym = (Q - Q.mT).abs().amax()
    scale = Q.abs().amax().clamp_min(1.0)
    if bool(asym > 100 * torch.finfo(Q.dtype).eps * scale):
        raise ValueError(
            f"Q must be symmetric; max |Q - Q^T| = {float(asym):.3g} "
            "(symmetrize with (Q + Q.mT) / 2)"
        )


def validate_warm_start(warm_start, shape: ProblemShape, G, lb, ub) -> torch.Tensor | None:
    """``solve_qp``'s ``warm_start`` checked against the problem's blocks and shapes, as the op
    takes it: the guessed rows stacked in the solver's order (G, lb, ub), bool ``(B, m_all)``,
    or ``(m_all,)`` for one guess shared by the batch; None without a warm start."""
    if warm_start is None:
        return None
    guess = warm_start.active_set if isinstance(warm_start, QPSolution) else warm_start
    if not isinstance(guess, ActiveSet):
        raise TypeError(
            f"warm_start must be a QPSolution, an ActiveSet or None, got {type(guess).__name__}"
        )
    sizes = row_blocks(shape.n, G, lb, ub)
    masks = dict(guess.blocks())
    batched = shape.batch is not None and any(
        x is not None and x.dim() == 2 for x in masks.values()
    )
    parts = []
    for name, size in sizes.items():
        x = masks[name]
        where = f"warm_start.{name}"
        if size is None or x is None:
            if (size is None) != (x is None):
                given = ROW_BLOCKS[name]
                state = "is None" if x is None else "was given"
                has = "has" if x is None else "has no"
                raise ValueError(
                    f"{where} {state} but the problem {has} {given}: warm-start from the "
                    "solution of a problem with the same constraint blocks"
                )
            continue
        if not isinstance(x, torch.Tensor) or x.dtype != torch.bool:
            kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"{where} must be a bool tensor, got {kind}")
        if x.device != shape.device:
            raise ValueError(f"{where} is on {x.device} but the problem is on {shape.device}")
        batch = "" if shape.batch is None else f" or (B, {size}) = ({shape.batch}, {size})"
        if x.shape != (size,) and (shape.batch is None or x.shape != (shape.batch, size)):
            raise ValueError(
                f"{where} must have shape ({size},){batch}, got {tuple(x.shape)}: warm-start "
                "from the solution of a problem with the same shapes and batch size"
            )
        parts.append(x.expand(shape.batch, size) if batched else x)
    if not parts:  # no inequalities: the guess is the empty set
        lead = (shape.batch,) if shape.batch is not None else ()
        return torch.zeros(*lead, 0, dtype=torch.bool, device=shape.device)
    return torch.cat(parts, -1)
