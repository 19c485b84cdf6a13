"""Markdown tables (for docs/benchmarks.md) from the benchmarks' JSON lines.

A file of ``optnet bench`` (speed) records gives its speed table; a file of ``optnet bench
maros-meszaros`` records gives the success rate per tier, the failures (status and failing
criteria) and a per-problem table with one column of pass/fail marks per tier.

Example::

    optnet bench markdown runs/gpu/bench_cuda.jsonl runs/gpu/maros_cuda_float64.jsonl
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from optnet_experiments.json_lines import read_json_lines

from .maros_meszaros import OUTCOME_COLUMNS, PROBLEM_COLUMNS, success_rates
from .report import SPEED_COLUMNS, format_markdown, table_rows

FAILURE_COLUMNS = (
    *PROBLEM_COLUMNS,
    *OUTCOME_COLUMNS,
    ("failing", "failing", ""),
    ("dual_inf_norm", "max dual", ".1e"),
    ("objective_error", "obj err", ".1e"),
)


def speed_markdown(records: list[dict]) -> str:
    first = records[0]
    head = (
        f"{first['device_name']} ({first['device']}, {first['threads']} torch threads), "
        f"torch {first['torch']}, {first['date']}"
    )
    return head + "\n\n" + format_markdown(table_rows(records), SPEED_COLUMNS)


def maros_markdown(records: list[dict]) -> str:
    tiers = list(dict.fromkeys(r["tier"] for r in records))
    rates = success_rates(records, tiers)
    ran = [r for r in records if r["status"] != "NOT_RUN"]
    not_run = len(records) - len(ran)
    seconds = sum(r.get("time_s", 0) for r in ran)
    head = (
        f"{ran[0]['dtype']} on {ran[0]['device']}, max_iter {ran[0]['max_iter']}, "
        f"eps_rel {ran[0]['eps_rel']}, equilibrate {ran[0]['equilibrate']}; "
        f"{len(records) // len(tiers)} problems, {not_run} (problem, tier) pairs not run; "
        f"total solve time {seconds:.0f} s"
    )
    rate_table = format_markdown(
        [{"tier": t, "rate": f"{rates[t]:.1f} %"} for t in tiers],
        (("tier", "tier", ""), ("rate", "success rate", "")),
    )
    failures = format_markdown([r for r in ran if not r["passed"]], FAILURE_COLUMNS)
    per_problem: dict[str, dict] = defaultdict(dict)
    for r in records:
        row = per_problem[r["problem"]]
        row.update(problem=r["problem"], n=r.get("n"), m=r.get("m"), neq=r.get("neq"))
        mark = "-" if r["status"] == "NOT_RUN" else ("pass" if r["passed"] else "FAIL")
        row[r["tier"]] = f"{mark} ({r['status']}, {r.get('iterations', '-')} it)"
    columns = [*PROBLEM_COLUMNS, *((t, t, "") for t in tiers)]
    return "\n\n".join(
        [
            head,
            rate_table,
            "Failures:",
            failures,
            format_markdown(list(per_problem.values()), columns),
        ]
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optnet bench markdown``."""
    parser.add_argument("files", type=Path, nargs="+", help="JSON lines of the benchmarks")


def run(args: argparse.Namespace) -> int:
    """Run ``optnet bench markdown``: the tables of each file on stdout."""
    for path in args.files:
        records = read_json_lines(path)
        if not records:
            continue
        print(f"<!-- from {path} -->")
        print(speed_markdown(records) if "solver" in records[0] else maros_markdown(records))
        print()
    return 0
