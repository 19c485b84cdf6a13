"""Accuracy of z* and of its gradients on problems with a known solution, optnet vs qpth.

For each dtype and solver: the solution's error ``max_i ||z_i - z*_i||_inf / max(1, ||z*_i||)``
and, for the loss ``sum(w * z)``, the relative error ``||g_i - g*_i|| / ||g*_i||`` of the
gradient of each input (Q, p, G, h, A, b) per problem against the exact active-set derivative
(``optnet.testing.active_set_gradients``), as median and max over the batch. Q's gradients are
compared symmetrized (Q is symmetric; solvers differ in which representative they return).

    python -m optnet_benchmarks.accuracy --device cuda --sizes 30x40x6,100x100x10 --batch 128
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

import optnet
from optnet.testing import active_set_gradients, known_solution_problem

from .peers import qpth_function

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
        "solver": solver, "dtype": str(dtype).removeprefix("torch."), "device": str(device),
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="30x40x6", help="comma-separated n x m x neq")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--solvers", default="optnet,qpth")
    parser.add_argument("--out", type=Path, default=None, help="folder for accuracy.jsonl/.md")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for size in args.sizes.split(","):
        n, m, neq = (int(x) for x in size.split("x"))
        for dtype in (torch.float64, torch.float32):
            for solver in args.solvers.split(","):
                try:
                    rows.append(measure(solver, dtype, device, args.batch, n, m, neq))
                except ImportError as err:
                    print(f"{solver}: not installed ({err})")
                    continue
                print(json.dumps(rows[-1]))
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor()
    header = f"{datetime.date.today()}, {name or 'CPU'}, torch {torch.__version__}"
    text = header + "\n\n" + table(rows)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "accuracy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (args.out / "accuracy.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
