"""Print markdown tables (for docs/benchmarks.md) from benchmark JSON lines.

    python benchmarks/to_markdown.py runs/gpu/bench_cuda.jsonl runs/gpu/maros_cuda_float64.jsonl

Needs the ``optnet_benchmarks`` package (``pip install -e ./benchmarks``, or ``benchmarks`` and
``experiments`` on ``PYTHONPATH``).

A file of ``optnet bench`` records gives its speed table; a file of ``optnet maros-meszaros``
records gives the success rate per tier, the failures (status and failing criteria) and a
per-problem table with one column of pass/fail marks per tier.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from optnet_benchmarks.bench import TABLE_COLUMNS, table_rows
from optnet_benchmarks.maros_meszaros import OUTCOME_COLUMNS, success_rates
from optnet_benchmarks.report import format_markdown
from optnet_experiments.common import read_json_lines

FAILURE_COLUMNS = (
    ("problem", "problem", ""),
    ("n", "n", ""),
    ("m", "m (G rows)", ""),
    ("neq", "neq", ""),
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
    return head + "\n\n" + format_markdown(table_rows(records), TABLE_COLUMNS)


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
    columns = [("problem", "problem", ""), ("n", "n", ""), ("m", "m", ""), ("neq", "neq", "")]
    columns += [(t, t, "") for t in tiers]
    return "\n\n".join(
        [
            head,
            rate_table,
            "Failures:",
            failures,
            format_markdown(list(per_problem.values()), columns),
        ]
    )


def main(paths: list[str]) -> None:
    for path in paths:
        records = read_json_lines(path)
        if not records:
            continue
        print(f"<!-- from {path} -->")
        print(speed_markdown(records) if "solver" in records[0] else maros_markdown(records))
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
