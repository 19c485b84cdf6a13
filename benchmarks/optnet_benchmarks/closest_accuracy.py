"""Accuracy of ``infeasible="closest"``: z and its derivatives on infeasible QPs.

For random infeasible QPs (the construction of the tests' infeasible problems, here inline),
the relative error of z against two Clarabel solves of the definition
(``optnet.testing.closest_feasible_reference``), and for the loss ``sum(w * z)`` the relative
error of the directional derivative along one random direction per input (Q, p, G, h, A, b,
lb, ub) against central differences of that reference (``--step``).

Example::

    optnet bench closest-accuracy --problems 8 --step 1e-5
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import optnet
from optnet.testing import closest_feasible_reference

NAMES = ("Q", "p", "G", "h", "A", "b", "lb", "ub")
SHAPES = ((4, 8, 1, False), (5, 10, 0, True), (6, 9, 2, True), (3, 12, 0, False))


def problem(n: int, m: int, neq: int, bounds: bool, seed: int) -> dict:
    """A strongly convex QP whose rows of G (h shifted down by 1) are usually inconsistent."""
    g = torch.Generator().manual_seed(seed)
    d = torch.float64
    M = torch.randn(n, n, generator=g, dtype=d)
    data = {
        "Q": M @ M.T / n + 0.1 * torch.eye(n, dtype=d), "p": torch.randn(n, generator=g, dtype=d),
        "G": torch.randn(m, n, generator=g, dtype=d), "h": torch.randn(m, generator=g, dtype=d) - 1,
    }  # fmt: skip
    if neq:
        data["A"] = torch.randn(neq, n, generator=g, dtype=d)
        data["b"] = torch.randn(neq, generator=g, dtype=d)
    if bounds:
        data["lb"] = -torch.rand(n, generator=g, dtype=d)
        data["ub"] = torch.rand(n, generator=g, dtype=d)
    return data


def errors(data: dict, step: float, seed: int) -> dict[str, float] | None:
    """{"z": error, input: derivative error}, or None when the problem is feasible."""
    leaves = {name: x.clone().requires_grad_() for name, x in data.items()}
    args = [leaves.get(name) for name in NAMES]
    options = optnet.SolverOptions(infeasible="closest")
    sol = optnet.solve_qp(*args[:6], lb=args[6], ub=args[7], options=options)
    if int(sol.status) != optnet.QPStatus.CLOSEST_FEASIBLE:
        return None
    g = torch.Generator().manual_seed(seed + 1000)
    w = torch.randn(sol.z.shape, generator=g, dtype=torch.float64)
    (sol.z * w).sum().backward()
    z = closest_feasible_reference(**data)[0]
    out = {"z": float(np.abs(sol.z.detach().numpy() - z).max() / max(1.0, np.abs(z).max()))}
    for name, x in leaves.items():
        direction = torch.randn(x.shape, generator=g, dtype=torch.float64)
        if name == "Q":
            direction = (direction + direction.T) / 2
        plus, minus = (closest_feasible_reference(**{**data, name: data[name] + s * direction})[0]
                       for s in (step, -step))  # fmt: skip
        central = float(w.numpy() @ (plus - minus)) / (2 * step)
        out[name] = abs(float((x.grad * direction).sum()) - central) / max(1.0, abs(central))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optnet bench closest-accuracy``."""
    parser.add_argument("--problems", type=int, default=8, help="seeds per shape")
    parser.add_argument("--step", type=float, default=1e-5, help="central-difference step")


def run(args: argparse.Namespace) -> int:
    """Run ``optnet bench closest-accuracy``: the worst relative errors, one per quantity."""
    worst: dict[str, float] = {}
    count = 0
    for seed in range(args.problems):
        for shape in SHAPES:
            result = errors(problem(*shape, seed=seed), args.step, seed)
            if result is None:
                continue
            count += 1
            for name, value in result.items():
                worst[name] = max(worst.get(name, 0.0), value)
    print(f"{count} infeasible problems, float64, step {args.step:g}; worst relative errors:")
    print(" ".join(f"{name} {value:.1e}" for name, value in worst.items()))
    return 0
