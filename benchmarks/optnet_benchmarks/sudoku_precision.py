"""float32 against float64 on the 9x9 Sudoku QP: active sets and the batch gradient in ``A``.

The Sudoku OptNet's QP (``experiments/optnet_experiments/sudoku/models.py``): ``min 1/2 q z'z -
puzzle'z  s.t.  z >= 0,  A z = A z0``, n = 729, on generated 9x9 puzzles (31-41 givens), for
a random ``A`` (``torch.rand``, 249 rows, q = 0.01) and the trained one of a checkpoint. Each
batch is solved in float32 and in float64 (the same data, rounded to float32 once); the loss
is the training loss, the mean squared error against the one-hot solutions. Reported per ``A``:
the problems whose active set of ``z >= 0`` (``lam_lb > z``) differs from float64's, the worst
z difference, and the batch gradient of the loss in ``A``, relative to float64's (max-norm),
per batch and over all batches; and float64's own directional derivative against central
differences (step 1e-6, first batch).

Example::

    optnet bench sudoku-precision --device cuda --puzzles 256
"""

from __future__ import annotations

import argparse
import datetime
import json

import numpy as np
import torch

import optnet
from optnet_experiments.cli import add_shared
from optnet_experiments.devices import resolve_device
from optnet_experiments.sudoku.boards import grid_to_one_hot
from optnet_experiments.sudoku.data import generate_puzzle
from optnet_experiments.sudoku.models import load_model

from .measure import device_name
from .report import format_table

COLUMNS = [
    ("A", "A", ""), ("problems", "problems", ""), ("set_differs", "set differs", ""),
    ("bounds_differ", "bounds differ", ""), ("z_diff", "max |dz|", ".1e"),
    ("grad_rel_worst_batch", "grad rel (worst batch)", ".1e"),
    ("grad_rel", "grad rel (all)", ".1e"), ("fd64_rel", "f64 grad vs central diff", ".1e"),
]  # fmt: skip


def puzzles_9x9(count: int, seed: int):
    """(puzzles, solutions) one-hot, (count, 729) float64."""
    rng = np.random.default_rng(seed)
    pairs = [generate_puzzle(3, rng, (31, 41)) for _ in range(count)]
    puzzles = torch.stack([grid_to_one_hot(p, 3).reshape(-1) for p, _ in pairs])
    solutions = torch.stack([grid_to_one_hot(s, 3).reshape(-1) for _, s in pairs])
    return puzzles.double(), solutions.double()


def solve(A, q, puzzles, solutions, dtype, device):
    """(z, lb-active set, gradient of the loss in A) in ``dtype``."""
    n = A.shape[-1]
    A = A.detach().to(device, dtype).clone().requires_grad_(True)
    Q = q * torch.eye(n, dtype=dtype, device=device)
    z0 = torch.full((n,), 1.0 / 9, dtype=dtype, device=device)
    p, target = (x.to(device, dtype) for x in (-puzzles, solutions))
    sol = optnet.solve_qp(Q, p, A=A, b=A @ z0, lb=torch.zeros_like(z0))
    ((sol.z - target) ** 2).mean().backward()
    return sol.z.detach().double().cpu(), (sol.lam_lb > sol.z).cpu(), A.grad.double().cpu()


def compare(name, A, q, puzzles, solutions, batch, device):
    """One row: float32 against float64 over all batches."""
    A = A.to(torch.float32).double()  # the data float32 sees, exactly
    differs = bounds = 0
    z_diff, worst_batch = 0.0, 0.0
    total32 = total64 = 0
    for start in range(0, puzzles.shape[0], batch):
        part = slice(start, start + batch)
        args = (A, q, puzzles[part], solutions[part])
        z32, set32, g32 = solve(*args, torch.float32, device)
        z64, set64, g64 = solve(*args, torch.float64, device)
        changed = (set32 != set64).sum(-1)
        differs += int((changed > 0).sum())
        bounds += int(changed.sum())
        z_diff = max(z_diff, float((z32 - z64).abs().max()))
        worst_batch = max(worst_batch, float((g32 - g64).abs().max() / g64.abs().max()))
        total32, total64 = total32 + g32, total64 + g64
    grad_rel = float((total32 - total64).abs().max() / total64.abs().max())
    fd = finite_difference_check(A, q, puzzles[:batch], solutions[:batch], device)
    return {"A": name, "problems": puzzles.shape[0], "set_differs": differs,
            "bounds_differ": bounds, "z_diff": z_diff, "grad_rel_worst_batch": worst_batch,
            "grad_rel": grad_rel, "fd64_rel": fd}  # fmt: skip


def finite_difference_check(A, q, puzzles, solutions, device, step=1e-6, seed=0):
    """float64: |<grad, V> - central difference along V| / |central difference|, V random."""
    V = torch.randn(A.shape, generator=torch.Generator().manual_seed(seed), dtype=A.dtype)
    V = V * A.abs().max() / V.abs().max()
    grad = solve(A, q, puzzles, solutions, torch.float64, device)[2]

    def loss(B):
        n = B.shape[-1]
        B = B.to(device)
        Q = q * torch.eye(n, dtype=B.dtype, device=device)
        z0 = torch.full((n,), 1.0 / 9, dtype=B.dtype, device=device)
        z = optnet.solve_qp(Q, -puzzles.to(device), A=B, b=B @ z0, lb=torch.zeros_like(z0)).z
        return float(((z - solutions.to(device)) ** 2).mean())

    central = (loss(A + step * V) - loss(A - step * V)) / (2 * step)
    return abs(float((grad * V).sum()) - central) / max(abs(central), 1e-300)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optnet bench sudoku-precision``."""
    add_shared(parser, device=None, help={"device": "default: cuda when available, else cpu"})
    parser.add_argument("--puzzles", type=int, default=256, help="9x9 puzzles (31-41 givens)")
    parser.add_argument("--batch", type=int, default=32, help="problems per solve")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--checkpoint", default="checkpoints/sudoku9.pt",
        help="a 9x9 SudokuOptNet checkpoint whose A is the 'trained' row ('' to skip)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run ``optnet bench sudoku-precision``: a JSON line per A, then the table."""
    device = resolve_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print(f"{device_name(device)}, torch {torch.__version__}, {datetime.date.today()}")
    puzzles, solutions = puzzles_9x9(args.puzzles, args.seed)
    g = torch.Generator().manual_seed(args.seed)
    cases = [("random (249 rows, q 0.01)", torch.rand(249, 729, generator=g), 0.01)]
    if args.checkpoint:
        model, checkpoint = load_model(args.checkpoint)
        q = float(checkpoint.spec.hparams.get("q", 0.1))
        cases.append((f"trained ({args.checkpoint})", model.A.detach(), q))
    rows = []
    for name, A, q in cases:
        rows.append(compare(name, A.double(), q, puzzles, solutions, args.batch, device))
        print(json.dumps({**rows[-1], "device": str(device)}), flush=True)
    print(format_table(rows, COLUMNS))
    return 0
