"""The dense Maros-Meszaros subset, solved by optnet, scored like qpbenchmark.

Each problem is solved once per accuracy tier with ``eps_abs`` = the tier's tolerance and
``eps_rel = 0`` (qpbenchmark also runs each tier separately). Success is decided by our own
recomputation of the primal residual, dual residual and duality gap on the original data (see
``optnet_benchmarks.qp_scoring``), not by the solver's status.

The data folder (62 ``.mat`` files and ``opt_costs.json``) is ``--data``, else
``$OPTNET_DATA/maros_meszaros``, else ``../shared/data/maros_meszaros`` from the current folder.

Example (``optnet maros-meszaros`` is the same command)::

    optnet bench maros-meszaros --dtype float64 --tiers high,mid,low --out runs/maros
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from optnet_experiments.cli import add_command, add_shared, comma_list
from optnet_experiments.data_paths import data_dir, default_help
from optnet_experiments.devices import DTYPES, dtype_name, resolve_device
from optnet_experiments.errors import ConfigError
from optnet_experiments.json_lines import JsonLines
from optnet_experiments.progress import progress

from .maros_data import MarosProblem, load_problem, optimal_costs, problem_names
from .measure import synchronize
from .qp_scoring import TIERS, optimality
from .report import format_table

logger = logging.getLogger("optnet")

DATA_NAME = "maros_meszaros"  # the folder's name under the data root

# The problem, and how one (problem, tier) solve went: shared with `optnet bench markdown`.
PROBLEM_COLUMNS = (("problem", "problem", ""), ("n", "n", ""), ("m", "m", ""), ("neq", "neq", ""))
OUTCOME_COLUMNS = (
    ("tier", "tier", ""),
    ("status", "status", ""),
    ("iterations", "iters", ""),
    ("primal_residual", "primal", ".1e"),
    ("dual_residual", "dual", ".1e"),
    ("duality_gap", "gap", ".1e"),
)

# The printed table, 100 columns at most: the sizes and the failing criteria are in the JSON
# lines (and in `optnet bench markdown`'s tables).
TABLE_COLUMNS = (
    PROBLEM_COLUMNS[0],
    *OUTCOME_COLUMNS,
    ("objective_error", "obj err", ".1e"),
    ("time_s", "time s", ".3f"),
    ("result", "result", ""),
)


@dataclass(frozen=True)
class MarosConfig:
    """What ``run_maros_meszaros`` solves and how; ``data`` is the folder of the ``.mat`` files."""

    data: Path
    problems: tuple[str, ...] = ()  # empty: every file in ``data``
    tiers: tuple[str, ...] = ("high", "mid", "low")
    dtype: torch.dtype = torch.float64
    device: torch.device = torch.device("cpu")
    max_iter: int = 200
    eps_rel: float = 0.0
    equilibrate: bool = False
    fixed_as_equalities: bool = True
    budget_s: float | None = None  # problems not started within this many seconds: NOT_RUN


def solve_and_score(problem: MarosProblem, tier: str, config: MarosConfig, opt_cost) -> dict:
    """Solve one problem at one tier; return the record (status, criteria, pass/fail)."""
    from optnet import QPStatus, SolverOptions, solve_qp

    tol = TIERS[tier]
    options = SolverOptions(
        eps_abs=tol,
        eps_rel=config.eps_rel,
        max_iter=config.max_iter,
        equilibrate=config.equilibrate,
    )
    record: dict[str, Any] = {
        "problem": problem.name,
        "n": problem.n,
        "m": problem.m,
        "neq": problem.neq,
        "n_fixed": problem.n_fixed,
        "tier": tier,
        "tolerance": tol,
        "dtype": dtype_name(config.dtype),
        "device": config.device.type,
        "max_iter": config.max_iter,
        "eps_rel": config.eps_rel,
        "equilibrate": config.equilibrate,
    }
    args = problem.solve_qp_args(config.dtype, config.device)
    synchronize(config.device)
    start = time.perf_counter()
    try:
        sol = solve_qp(**args, options=options)
        synchronize(config.device)
    except Exception as err:  # a crash on one problem is a result to report, not the end
        record.update(status="EXCEPTION", passed=False, error=f"{type(err).__name__}: {err}")
        return record
    record["time_s"] = time.perf_counter() - start
    record["status"] = QPStatus(int(sol.status)).name
    record["iterations"] = int(sol.iterations)
    record["solver_primal_residual"] = float(sol.primal_residual)
    record["solver_dual_residual"] = float(sol.dual_residual)
    record["solver_duality_gap"] = float(sol.duality_gap)
    crit = optimality(
        problem.P,
        problem.q,
        problem.G,
        problem.h,
        problem.A,
        problem.b,
        problem.lb,
        problem.ub,
        z=sol.z,
        lam=sol.lam,
        nu=sol.nu,
        lam_lb=sol.lam_lb,
        lam_ub=sol.lam_ub,
    )
    record["primal_residual"] = crit.primal_residual
    record["dual_residual"] = crit.dual_residual
    record["duality_gap"] = crit.duality_gap
    # huge duals mean a diverging dual sequence (e.g. degenerate constraints): worth knowing
    duals = [x for x in (sol.lam, sol.nu, sol.lam_lb, sol.lam_ub) if x is not None and x.numel()]
    record["dual_inf_norm"] = max((float(x.abs().max()) for x in duals), default=0.0)
    record["passed"] = crit.passes(tol)
    record["failing"] = ",".join(crit.failing(tol)) or None
    z = sol.z.detach().to("cpu", torch.float64).numpy()
    record["objective"] = problem.objective(z)
    if opt_cost is not None:
        record["objective_reference"] = opt_cost
        record["objective_error"] = abs(record["objective"] - opt_cost) / max(1.0, abs(opt_cost))
    return record


def run_maros_meszaros(config: MarosConfig) -> Iterator[dict]:
    """Yield one record per (problem, tier), in the order of ``config.problems``."""
    names = list(config.problems) or problem_names(config.data)
    costs = optimal_costs(config.data)
    jobs = [(name, tier) for name in names for tier in config.tiers]
    loaded: dict[str, MarosProblem] = {}
    start = time.perf_counter()
    for name, tier in progress(jobs, desc="maros-meszaros", total=len(jobs)):
        if config.budget_s is not None and time.perf_counter() - start > config.budget_s:
            yield {"problem": name, "tier": tier, "status": "NOT_RUN", "passed": False}
            continue
        if name not in loaded:
            loaded.clear()
            path = Path(config.data) / f"{name}.mat"
            loaded[name] = load_problem(path, fixed_as_equalities=config.fixed_as_equalities)
        yield solve_and_score(loaded[name], tier, config, costs.get(name))


def success_rates(records: list[dict], tiers) -> dict[str, float]:
    """Percentage of problems passing each tier."""
    rates = {}
    for tier in tiers:
        rows = [r for r in records if r["tier"] == tier]
        rates[tier] = 100.0 * sum(bool(r.get("passed")) for r in rows) / max(1, len(rows))
    return rates


def _result(record: dict) -> str:
    if record["status"] == "NOT_RUN":
        return "-"
    return "pass" if record["passed"] else "FAIL"


def register(subparsers) -> None:
    """Add ``maros-meszaros`` to the ``optnet`` command's subparsers (entry point): the same
    command as ``optnet bench maros-meszaros``, under its older name."""
    parser = add_command(
        subparsers, "maros-meszaros", run, help="the same as `optnet bench maros-meszaros`",
        description=__doc__,
    )  # fmt: skip
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optnet bench maros-meszaros``."""
    add_shared(
        parser, device="cpu", dtype="float64", max_iter=200, threads=None, data=None,
        out=Path("runs/maros_meszaros"),
        help={"data": f"folder of the .mat files and opt_costs.json {default_help(DATA_NAME)}"},
    )  # fmt: skip
    parser.add_argument(
        "--problems", default=None, type=comma_list(str), help="comma list of names (default: all)"
    )
    parser.add_argument(
        "--tiers", default="high,mid,low", type=comma_list(str),
        help="comma list of high (1e-9), mid (1e-6), low (1e-3)",
    )  # fmt: skip
    parser.add_argument(
        "--eps-rel", default=0.0, type=float,
        help="relative tolerance given to the solver (qpbenchmark: 0)",
    )  # fmt: skip
    parser.add_argument("--equilibrate", action="store_true", help="Ruiz-equilibrate the data")
    parser.add_argument(
        "--fixed-as-bounds", action="store_true",
        help="keep fixed variables (lb == ub) as bounds, not equality rows",
    )  # fmt: skip
    parser.add_argument(
        "--budget", default=None, type=float,
        help="seconds; problems not started by then: NOT_RUN (default: no limit)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run ``optnet bench maros-meszaros``: JSON lines and a table with the success rates."""
    unknown = [t for t in args.tiers if t not in TIERS]
    if unknown:
        raise ConfigError(f"unknown tiers {unknown}; choose from {sorted(TIERS)}")
    data = Path(data_dir(DATA_NAME, args.data))
    if not data.is_dir():
        raise ConfigError(
            f"no Maros-Meszaros folder at {data} (pass --data or set OPTNET_DATA to the folder "
            f"holding {DATA_NAME}/)"
        )
    config = MarosConfig(
        data=data,
        problems=tuple(args.problems or ()),
        tiers=tuple(args.tiers),
        dtype=DTYPES[args.dtype],
        device=resolve_device(args.device),
        max_iter=args.max_iter,
        eps_rel=args.eps_rel,
        equilibrate=args.equilibrate,
        fixed_as_equalities=not args.fixed_as_bounds,
        budget_s=args.budget,
    )
    tag = f"maros_{config.device.type}_{args.dtype}"
    writer = JsonLines(Path(args.out) / f"{tag}.jsonl")
    records = []
    for record in run_maros_meszaros(config):
        writer.write(record)
        records.append(record)
    results = [{**r, "result": _result(r)} for r in records]
    table = format_table(results, TABLE_COLUMNS)
    rates = success_rates(records, config.tiers)
    summary = "success rate: " + ", ".join(f"{t} {v:.1f}%" for t, v in rates.items())
    not_run = sum(r["status"] == "NOT_RUN" for r in records)
    if not_run:
        summary += f" ({not_run} (problem, tier) pairs NOT_RUN: budget exhausted, counted failed)"
    (Path(args.out) / f"{tag}_table.txt").write_text(table + "\n" + summary + "\n")
    print(table)
    print(summary)
    print(json.dumps({"success_rate": rates, "problems": len(records) // len(config.tiers)}))
    return 0
