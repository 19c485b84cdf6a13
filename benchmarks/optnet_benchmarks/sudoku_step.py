"""The Sudoku OptNet's QP step (forward + backward in ``A``), optnet vs qpth.

The paper's Sudoku QP (``experiments/optnet_experiments/sudoku/models.py``): ``min 1/2 q z'z -
puzzle'z  s.t.  z >= 0,  A z = A z0`` with ``q = 0.1``, a random ``A`` of ``n_eq`` rows and
the uniform board ``z0`` (feasible for every ``A``), on random puzzles (10 % of the cells given);
the loss is ``sum(w * z)`` for a fixed random ``w``. Timed per solver, same data, medians of
``--repeats`` calls after two warm-ups (synchronized on CUDA):

- ``optnet``: ``z >= 0`` as the bound ``lb = 0``, as ``SudokuOptNet`` solves it;
- ``optnet-G``: ``z >= 0`` as ``G = -I, h = 0``, the form qpth needs;
- ``qpth``: qpth 0.0.18's ``QPFunction`` with its defaults (``G = -I, h = 0``).

Example::

    optnet bench sudoku-step --device cuda
"""

from __future__ import annotations

import argparse
import datetime
import json

import torch

import optnet
from optnet_experiments.cli import add_shared, comma_list
from optnet_experiments.devices import DTYPES, resolve_device
from optnet_experiments.errors import ConfigError

from .measure import device_name, median_time
from .peers import PEERS, qpth_function
from .report import format_table

# (board, n_eq, batch): 4x4 with the paper's batch, 9x9 with a batch that fits a GPU's time
CASES = ((2, 40, 150), (3, 300, 32))
SOLVERS = ("optnet", "optnet-G", "qpth")
COLUMNS = [
    ("board", "board", ""), ("n", "n", ""), ("n_eq", "n_eq", ""), ("batch", "B", ""),
    ("solver", "solver", ""), ("ms", "f+b ms", ".2f"), ("ratio", "qpth / this", ".2f"),
]  # fmt: skip


def step(solver: str, Q, puzzles, A, z0, w):
    """One forward + backward of ``solver``'s QP; returns nothing (A.grad is reset)."""
    n = Q.shape[-1]
    if solver == "optnet":
        z = optnet.solve_qp(Q, -puzzles, None, None, A, A @ z0, lb=torch.zeros_like(z0)).z
    else:
        G, h = -torch.eye(n, dtype=Q.dtype, device=Q.device), torch.zeros_like(z0)
        if solver == "optnet-G":
            z = optnet.solve_qp(Q, -puzzles, G, h, A, A @ z0).z
        else:
            z = qpth_function()(verbose=-1)(Q, -puzzles, G, h, A, A @ z0)
    (z * w).sum().backward()
    A.grad = None


def measure(board: int, n_eq: int, batch: int, solvers, device, dtype, repeats: int, seed=0):
    """Rows of the table for one case (``ratio``: qpth's time over the solver's)."""
    g = torch.Generator().manual_seed(seed)
    side = board * board
    n = side**3
    A = torch.rand(n_eq, n, generator=g, dtype=torch.float64).to(device, dtype).requires_grad_()
    Q = 0.1 * torch.eye(n, dtype=dtype, device=device)
    z0 = torch.full((n,), 1.0 / side, dtype=dtype, device=device)
    puzzles = (torch.rand(batch, n, generator=g) < 0.1).to(device, dtype)
    w = torch.randn(batch, n, generator=g).to(device, dtype)
    times = {}
    for solver in solvers:

        def call(solver=solver):
            step(solver, Q, puzzles, A, z0, w)

        for _ in range(2):
            call()
        times[solver] = median_time(call, device, repeats)
    base = {"board": f"{side}x{side}", "n": n, "n_eq": n_eq, "batch": batch}
    qpth = times.get("qpth")
    return [
        {**base, "solver": s, "ms": 1e3 * t, "ratio": None if qpth is None else qpth / t}
        for s, t in times.items()
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optnet bench sudoku-step``."""
    add_shared(
        parser, device=None, dtype="float32",
        help={"device": "where to run (default: cuda when available, else cpu)"},
    )  # fmt: skip
    parser.add_argument(
        "--solvers", default=",".join(SOLVERS), type=comma_list(str),
        help=f"comma list of {','.join(SOLVERS)}",
    )  # fmt: skip
    parser.add_argument(
        "--boards", default="2,3", type=comma_list(int), help="2: 4x4 (B=150), 3: 9x9 (B=32)"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per solver")


def run(args: argparse.Namespace) -> int:
    """Run ``optnet bench sudoku-step``: a JSON line per (case, solver), then the table."""
    if unknown := set(args.solvers) - set(SOLVERS):
        raise ConfigError(f"unknown solvers {sorted(unknown)}; known: {', '.join(SOLVERS)}")
    default = "cuda" if torch.cuda.is_available() else "cpu"
    device, dtype = resolve_device(args.device or default), DTYPES[args.dtype]
    solvers = list(args.solvers)
    if "qpth" in solvers and (reason := PEERS["qpth"]().unavailable_reason(device, dtype)):
        print(f"qpth: {reason}")
        solvers.remove("qpth")
    name = device_name(device)
    print(f"{name}, torch {torch.__version__}, {args.dtype}, {datetime.date.today()}")
    rows = []
    for board, n_eq, batch in CASES:
        if board in args.boards:
            rows += measure(board, n_eq, batch, solvers, device, dtype, args.repeats)
            for row in rows[-len(solvers) :]:
                print(json.dumps({**row, "device": str(device), "dtype": args.dtype}), flush=True)
    print(format_table(rows, COLUMNS))
    return 0
