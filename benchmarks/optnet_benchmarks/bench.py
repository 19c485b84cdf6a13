"""``optnet bench``: speed of optnet against qpth, QPLayer, cvxpylayers and Moreau on the same QPs.

The timed repetitions interleave the solvers (each repetition times every solver once, in a
rotating order); the ratios to optnet are medians of the per-repetition ratios.

Example (the issue-6 CPU target: 2 cores, float64, n = m = 50, 10 equalities, B = 128)::

    optnet bench --device cpu --dtype float64 --sizes 50 --batches 128 --neq 10 \\
        --solvers optnet,qpth,qplayer,moreau --threads 2 --out runs/bench_cpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from optnet_experiments.cli import reports_errors
from optnet_experiments.common import DTYPES, ConfigError, JsonLines, progress, resolve_device

from ._cli import HelpFormatter, comma_list
from .measure import limit_threads
from .peers import PEERS
from .report import format_table, plot_time_vs_batch
from .speed import SpeedBenchmark, SpeedConfig, grid

TABLE_COLUMNS = (
    ("solver", "solver", ""),
    ("dtype", "dtype", ""),
    ("n", "n", ""),
    ("m", "m", ""),
    ("neq", "neq", ""),
    ("batch", "B", ""),
    ("forward_ms", "fwd ms", ".2f"),
    ("forward_backward_ms", "fwd+bwd ms", ".2f"),
    ("ratio_forward", "fwd / optnet", ".2f"),
    ("ratio_forward_backward", "f+b / optnet", ".2f"),
    ("iterations_max", "iters", ""),
    ("z_error", "z err max", ".1e"),
    ("z_error_median", "z err med", ".1e"),
    ("grad_p_error", "dp err max", ".1e"),
    ("grad_p_error_median", "dp err med", ".1e"),
    ("z_error_clarabel", "z err (clarabel)", ".1e"),
    ("peak_mib", "peak MiB", ".1f"),
    ("skipped", "note", ""),
)


def table_rows(records: list[dict]) -> list[dict]:
    """Records with milliseconds and MiB added, for the tables."""
    rows = []
    for r in records:
        row = dict(r)
        for key in ("forward", "forward_backward"):
            seconds = r.get(f"{key}_s")
            row[f"{key}_ms"] = None if seconds is None else 1e3 * seconds
        peak = r.get("peak_memory_bytes")
        row["peak_mib"] = None if peak is None else peak / 2**20
        rows.append(row)
    return rows


def register(subparsers) -> None:
    """Add ``bench`` to the ``optnet`` command's subparsers (entry point ``optnet.commands``)."""
    parser = subparsers.add_parser(
        "bench",
        help="time optnet against other differentiable QP layers",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run")
    parser.add_argument(
        "--dtype", default="float64", type=comma_list(str), help="comma list of float64,float32"
    )
    parser.add_argument(
        "--sizes", default="10,50,100,500", type=comma_list(int), help="comma list of n (variables)"
    )
    parser.add_argument(
        "--batches", default="1,128,1024", type=comma_list(int), help="comma list of batch sizes B"
    )
    parser.add_argument("--m-ratio", default=1.0, type=float, help="inequalities m = ratio * n")
    parser.add_argument(
        "--neq", default="0", help="equalities: a count ('10') or a fraction of n ('0.2n')"
    )
    parser.add_argument(
        "--solvers",
        default="optnet,qpth,qplayer,cvxpylayers",
        type=comma_list(str),
        help=f"comma list of {','.join(PEERS)}; ratios are to optnet's times",
    )
    parser.add_argument(
        "--repeats", default=5, type=int, help="timed repetitions, interleaved across solvers"
    )
    parser.add_argument(
        "--eps",
        default=None,
        type=float,
        help="tolerance given to every solver (default: 1e-8 for float64, 1e-4 for float32)",
    )
    parser.add_argument(
        "--cap",
        default=30.0,
        type=float,
        help="seconds one (solver, case) may take; slower ones are skipped",
    )
    parser.add_argument(
        "--clarabel-checks",
        default=3,
        type=int,
        help="problems per case also solved by Clarabel as a check",
    )
    parser.add_argument(
        "--budget",
        default=None,
        type=float,
        help="seconds for the whole run; later cases skip (default: no limit)",
    )
    parser.add_argument("--max-iter", default=50, type=int, help="optnet peers' iteration cap")
    parser.add_argument(
        "--threads",
        default=None,
        type=int,
        help="CPU threads of torch and of every BLAS/OpenMP pool (default: the libraries' own)",
    )
    parser.add_argument("--seed", default=0, type=int, help="seed of the random QP batches")
    parser.add_argument("--out", default=Path("runs/bench"), type=Path, help="output folder")
    parser.set_defaults(func=reports_errors("optnet bench")(main))


def main(args: argparse.Namespace) -> int:
    """Run ``optnet bench``: JSON lines, a text table and a plot under ``args.out``."""
    unknown = [s for s in args.solvers if s not in PEERS]
    bad_dtypes = [d for d in args.dtype if d not in DTYPES]
    if unknown or bad_dtypes:
        raise ConfigError(
            f"unknown solvers {unknown} or dtypes {bad_dtypes}; solvers: {', '.join(PEERS)}; "
            f"dtypes: {', '.join(DTYPES)}"
        )
    if "optnet" in args.solvers:  # optnet first: peers' ratios refer to its times
        args.solvers = ["optnet"] + [s for s in args.solvers if s != "optnet"]
    if args.threads:
        limit_threads(args.threads)
    device = resolve_device(args.device)
    cases = grid([DTYPES[d] for d in args.dtype], args.sizes, args.batches, args.m_ratio, args.neq)
    config = SpeedConfig(
        device=device,
        cases=cases,
        solvers=tuple(args.solvers),
        repeats=args.repeats,
        eps=args.eps,
        cap_s=args.cap,
        clarabel_checks=args.clarabel_checks,
        optnet_max_iter=args.max_iter,
        seed=args.seed,
        budget_s=args.budget,
        threads=args.threads,
    )
    out = Path(args.out)
    writer = JsonLines(out / f"bench_{device.type}.jsonl")
    records = []
    total = len(cases) * len(args.solvers)
    for record in progress(SpeedBenchmark(config).records(), desc="bench", total=total):
        writer.write(record)
        records.append(record)
    table = format_table(table_rows(records), TABLE_COLUMNS)
    (out / f"bench_{device.type}_table.txt").write_text(table + "\n")
    title = f"{records[0]['device_name']} ({device.type})" if records else device.type
    plot_time_vs_batch(records, out / f"bench_{device.type}.png", title=title)
    print(table)
    print(json.dumps({"records": len(records), "out": str(out)}))
    return 0


if __name__ == "__main__":  # ``python -m optnet_benchmarks.bench ...``: ``optnet bench ...``
    import sys

    from .__main__ import main as standalone

    sys.exit(standalone(["bench", *sys.argv[1:]]))
