"""Accuracy of z and of its gradients on known solutions, optnet vs qpth.

For each dtype and solver: the solution's error ``max_i ||z_i - z*_i||_inf / max(1, ||z*_i||)``
and, for the loss ``sum(w * z)``, the relative error ``||g_i - g*_i|| / ||g*_i||`` of the
gradient of each input (Q, p, G, h, A, b) per problem against the exact active-set derivative
(``optnet.testing.active_set_gradients``), as median and max over the batch. Q's gradients are
compared symmetrized (Q is symmetric; solvers differ in which representative they return).

Example::

    optnet bench accuracy --device cuda --sizes 30x40x6,100x100x10 --batch 128
"""

from __future__ import annotations

import argparse
import datetime
import json
import time

import torch

import optnet
from optnet.testing import active_set_gradients, known_solution_problem
from optnet_experiments.cli import add_shared, comma_list
from optnet_experiments.devices import dtype_name, resolve_device
from optnet_experiments.errors import ConfigError

from .measure import device_name
from .peers import PEERS, qpth_function

INPUTS = ("Q", "p", "G", "h", "A", "b")


def _optnet(inputs):
    sol = optnet.solve_qp(*inputs)
    return sol.z, int((~sol.solved).sum())


def _qpth(inputs):
    return qpth_function()(verbose=-1)(*inputs), None


SOLVERS = {"optnet": _optnet, "qpth": _qpth}


def measure(solver: str, dtype, device, batch: int, n: int, m: int, neq: int, seed: int = 0):
    (Q, p, G, h, A, b), (z, lam, nu, _) = known_solution_problem(batch, n, m, neq, seed)
    w = torch.randn(batch, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    expected = active_set_gradients(Q, G, A, z, lam, nu, lam > 0, w)
    inputs = [x.to(device=device, dtype=dtype).requires_grad_() for x in (Q, p, G, h, A, b)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    z_out, unsolved = SOLVERS[solver](inputs)
    (z_out * w.to(device=device, dtype=dtype)).sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    z_err = (z_out.detach().cpu().double() - z).abs().amax(-1) / z.abs().amax(-1).clamp_min(1)
    row = {
        "solver": solver, "dtype": dtype_name(dtype), "device": str(device),
        "batch": batch, "n": n, "m": m, "neq": neq, "unsolved": unsolved,
        "z_err_max": float(z_err.max()), "seconds_first_call": seconds,
    }  # fmt: skip
    for name, x in zip(INPUTS, inputs):
        got, want = x.grad.detach().cpu().double(), expected[name]
        if name == "Q":
            got = 0.5 * (got + got.mT)
        rel = (got - want).flatten(1).norm(dim=-1) / want.flatten(1).norm(dim=-1).clamp_min(1e-300)
        row[f"grad_{name}_median"] = float(rel.median())
        row[f"grad_{name}_max"] = float(rel.max())
    row["grad_median"] = max(row[f"grad_{k}_median"] for k in INPUTS)
    row["grad_max"] = max(row[f"grad_{k}_max"] for k in INPUTS)
    return row


def table(rows) -> str:
    lines = [
        "| solver | dtype | n x m x neq, B | unsolved | z error (max) | grad rel. error, "
        "worst input's median | grad rel. error, max |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['solver']} | {r['dtype']} | {r['n']} x {r['m']} x {r['neq']}, {r['batch']} | "
            f"{r['unsolved'] if r['unsolved'] is not None else '-'} | {r['z_err_max']:.1e} | "
            f"{r['grad_median']:.1e} | {r['grad_max']:.1e} |"
        )
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int, int]:
    n, m, neq = (int(x) for x in text.split("x"))
    return n, m, neq


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optnet bench accuracy``."""
    add_shared(
        parser, device="cpu", out=None,
        help={"out": "folder for accuracy.jsonl and accuracy.md (default: print only)"},
    )  # fmt: skip
    parser.add_argument(
        "--sizes", default="30x40x6", type=comma_list(_size), help="comma list of n x m x neq"
    )
    parser.add_argument("--batch", type=int, default=64, help="problems per batch")
    parser.add_argument(
        "--solvers", default="optnet,qpth", type=comma_list(str),
        help=f"comma list of {','.join(SOLVERS)}",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run ``optnet bench accuracy``: a JSON line per (size, dtype, solver), then the table."""
    if unknown := [s for s in args.solvers if s not in SOLVERS]:
        raise ConfigError(f"unknown solvers {unknown}; known: {', '.join(SOLVERS)}")
    device = resolve_device(args.device)
    rows, solvers = [], list(args.solvers)
    for n, m, neq in args.sizes:
        for dtype in (torch.float64, torch.float32):
            for solver in list(solvers):
                try:
                    rows.append(measure(solver, dtype, device, args.batch, n, m, neq))
                except ImportError:
                    print(f"{solver}: not installed ({PEERS[solver].install})")
                    solvers.remove(solver)
                    continue
                print(json.dumps(rows[-1]))
    name = device_name(device)
    header = f"{datetime.date.today()}, {name}, torch {torch.__version__}"
    text = header + "\n\n" + table(rows)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "accuracy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (args.out / "accuracy.md").write_text(text + "\n")
    return 0
