"""Speed, memory and accuracy of optnet against other differentiable QP layers.

Peers: qpth, proxsuite's QPLayer, cvxpylayers and Moreau (``--solvers``). For each case (dtype,
n, B) the data are drawn once in float64 (random, strictly feasible, strongly convex QPs) and
a float64 reference is computed once (optnet at a tight tolerance, checked by Clarabel); each
solver then gets its own copies in the case's dtype. Per solver one warm-up forward+backward,
then the timed repetitions, interleaved across the solvers (repetition r times one forward and
one forward+backward of each solver in turn, the order rotated), so that the machine's load
changes hit every solver alike; medians of the times and, as ratios to optnet, medians of the
per-repetition ratios; last, per solver, one untimed forward+backward that measures peak
memory and the accuracy of z and dloss/dp. Writes JSON lines, the tables and a plot to --out.

Example (2 CPU cores, float64, n = m = 50, 10 equalities, B = 128)::

    optnet bench --device cpu --dtype float64 --sizes 50 --batches 128 --neq 10 \\
        --solvers optnet,qpth,qplayer,moreau --threads 2 --out runs/bench_cpu
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import logging
import math
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from optnet_experiments.cli import add_shared, comma_list
from optnet_experiments.devices import DTYPES, dtype_name, resolve_device
from optnet_experiments.errors import ConfigError
from optnet_experiments.json_lines import JsonLines
from optnet_experiments.plotting import can_plot
from optnet_experiments.progress import progress

from . import measure, reference
from .peers import PEERS, OptNetPeer, Peer, PeerRun
from .problems import QPBatch, random_feasible_qp
from .report import plot_time_vs_batch, speed_tables

logger = logging.getLogger("optnet")

_DEFAULT_EPS = {torch.float64: 1e-8, torch.float32: 1e-4}
_MIN_BATCH_TO_EXTRAPOLATE = 32


@dataclass(frozen=True)
class Case:
    dtype: torch.dtype
    n: int
    m: int
    neq: int
    batch: int


@dataclass(frozen=True)
class SpeedConfig:
    """Everything a ``SpeedBenchmark`` needs.

    ``eps`` None picks 1e-8 (float64) / 1e-4 (float32) for every solver. ``cap_s`` bounds the
    time spent on one (solver, case): a case whose forward+backward is predicted (linearly in B
    from the same solver's previous batch, see ``Peer.serial_over_batch``) or measured (warm-up)
    above it is skipped, with the reason recorded, and repeats are cut so that they fit in it.
    """

    device: torch.device
    cases: tuple[Case, ...]
    solvers: tuple[str, ...]
    repeats: int = 5
    eps: float | None = None
    cap_s: float = 30.0
    clarabel_checks: int = 3
    optnet_max_iter: int = 50  # the iteration cap of every optnet peer (optnet, optnet-*)
    seed: int = 0
    budget_s: float | None = None  # stop starting cases after this many seconds in total
    threads: int | None = None  # limit torch and every BLAS/OpenMP pool (measure.limit_threads)


def grid(
    dtypes: list[torch.dtype], sizes: list[int], batches: list[int], m_ratio: float, neq: str
) -> tuple[Case, ...]:
    """Cases ordered n, B ascending, then dtype (B ascending is what the time cap extrapolates
    along; dtype innermost lets both dtypes share one data set and reference).

    ``neq`` is an absolute count ("10") or a fraction of n ("0.2n"), capped at n - 1.
    """
    cases = []
    for n in sizes:
        count = round(float(neq[:-1]) * n) if neq.endswith("n") else int(neq)
        m = max(1, round(m_ratio * n))
        for batch in sorted(batches):
            cases += [Case(dtype, n, m, min(count, n - 1), batch) for dtype in dtypes]
    return tuple(cases)


def case_data(case: Case, seed: int = 0) -> QPBatch:
    """The float64 CPU batch of ``case``: a fresh one per size, seeded by the size so that
    runs are reproducible and both dtypes of a size share it."""
    seed = seed + 7919 * case.n + case.batch
    return random_feasible_qp(case.batch, case.n, case.m, case.neq, seed=seed)


def _peer_version(peer: Peer) -> str | None:
    if peer.distribution is None:
        return None
    try:
        return importlib.metadata.version(peer.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _make_peer(name: str, config: SpeedConfig) -> Peer:
    cls = PEERS[name]
    return cls(config.optnet_max_iter) if issubclass(cls, OptNetPeer) else cls()


def _loss_backward(run: PeerRun, qp: QPBatch) -> torch.Tensor:
    for x in qp.inputs():
        if x is not None:
            x.grad = None
    z = run.solve()
    (z * qp.loss_weights).sum().backward()
    return z


def _forward(run: PeerRun) -> None:
    run.solve()


class SpeedBenchmark:
    """Runs the cases of a ``SpeedConfig``; iterate ``records()`` for one dict per measurement."""

    def __init__(self, config: SpeedConfig):
        self.config = config
        self.peers: dict[str, Peer] = {name: _make_peer(name, config) for name in config.solvers}
        self._data: dict[tuple, QPBatch] = {}
        self._references: dict[tuple, dict[str, Any]] = {}
        self._last_timed: dict[tuple, tuple[int, float]] = {}  # (solver, dtype, n) -> (B, fb)

    def records(self) -> Iterator[dict[str, Any]]:
        """One record per (case, solver), a case's records together, in ``config.solvers``
        order; ratios are to optnet's times in the same case."""
        self._start = time.perf_counter()
        for case in self.config.cases:
            records = self._run_case(case)
            for name in self.config.solvers:
                _add_ratios(records[name], records.get("optnet"))
                yield records[name]

    def _case_data(self, case: Case) -> tuple[QPBatch, dict[str, Any]]:
        key = (case.n, case.m, case.neq, case.batch)
        if key not in self._data:
            qp = case_data(case, self.config.seed)
            z_ref, grad_ref, unsolved = reference.optnet_reference(qp, self.config.device)
            if unsolved:
                logger.warning("reference: %d of %d problems not solved", unsolved, case.batch)
            ref = {"z": z_ref, "grad_p": grad_ref, "clarabel": None, "ref_vs_clarabel": None}
            ref["unsolved"] = unsolved
            if self.config.clarabel_checks:
                z_cl = reference.clarabel_reference(qp, self.config.clarabel_checks)
                ref["clarabel"] = z_cl
                ref["ref_vs_clarabel"] = reference.relative_error(z_ref[: len(z_cl)], z_cl)
            self._data = {key: qp}  # keep one case's data alive at a time (GPU memory)
            self._references = {key: ref}
        return self._data[key], self._references[key]

    def _skip_reason(self, name: str, case: Case) -> str | None:
        config = self.config
        reason = self.peers[name].unavailable_reason(config.device, case.dtype)
        elapsed = time.perf_counter() - self._start
        if reason is None and config.budget_s is not None and elapsed > config.budget_s:
            reason = f"run budget of {config.budget_s:g} s exhausted"
        previous = self._last_timed.get((name, case.dtype, case.n))
        # Batched solvers' small-B times are mostly fixed overhead: extrapolate only from B >= 32.
        if reason is None and previous is not None:
            if self.peers[name].serial_over_batch or previous[0] >= _MIN_BATCH_TO_EXTRAPOLATE:
                predicted = previous[1] * case.batch / previous[0]
                if predicted > config.cap_s:
                    reason = f"predicted fwd+bwd {predicted:.1f} s > cap {config.cap_s:g} s"
        return reason

    def _run_case(self, case: Case) -> dict[str, dict[str, Any]]:
        """Every solver on one case: warm-ups, interleaved repetitions, then accuracy."""
        config, device = self.config, self.config.device
        records = {
            name: _base_record(name, self.peers[name], case, config) for name in config.solvers
        }
        prepared: dict[str, tuple[PeerRun, QPBatch]] = {}
        for name, record in records.items():
            reason = self._skip_reason(name, case)
            if reason is not None:
                record["skipped"] = reason
                continue
            data, _ = self._case_data(case)
            eps = _DEFAULT_EPS.get(case.dtype, 1e-4) if config.eps is None else config.eps
            record["eps"] = eps
            qp = data.to(case.dtype, device).leaves(requires_grad=True)
            try:
                prepared[name] = self.peers[name].prepare(qp, eps), qp
            except Exception as err:  # a peer failing on a case is a result, not a crash
                _record_failure(record, name, case, err)
        if config.threads:  # again: the peers may have loaded thread pools of their own
            measure.limit_threads(config.threads)
        timed: dict[str, _Timed] = {}
        for name, (run, qp) in prepared.items():
            record = records[name]
            try:
                cold = measure.time_call(lambda: _loss_backward(run, qp), device)
            except Exception as err:
                _record_failure(record, name, case, err)
                continue
            record["cold_forward_backward_s"] = cold
            if cold > config.cap_s:
                record["skipped"] = f"warm-up fwd+bwd {cold:.1f} s > cap {config.cap_s:g} s"
                self._last_timed[(name, case.dtype, case.n)] = (case.batch, cold)
                continue
            # each repetition is one forward plus one forward+backward: fit them in the cap
            repeats = max(1, min(config.repeats, math.floor(config.cap_s / (2 * cold))))
            record["repeats"] = repeats
            timed[name] = _Timed(run, qp, repeats)
        self._time_interleaved(timed, records, case)
        for name, t in timed.items():
            record = records[name]
            record["forward_times_s"] = t.forward
            record["forward_backward_times_s"] = t.forward_backward
            record["forward_s"] = statistics.median(t.forward)
            record["forward_backward_s"] = statistics.median(t.forward_backward)
            self._last_timed[(name, case.dtype, case.n)] = (
                case.batch,
                record["forward_backward_s"],
            )
            try:
                z, peak = measure.peak_memory_bytes(lambda: _loss_backward(t.run, t.qp), device)
            except Exception as err:
                _record_failure(record, name, case, err)
                continue
            record["peak_memory_bytes"] = peak
            self._add_accuracy(record, t, z, self._case_data(case)[1])
        return records

    def _time_interleaved(
        self, timed: dict[str, _Timed], records: dict[str, dict[str, Any]], case: Case
    ) -> None:
        """Repetition r times one forward and one forward+backward of every solver in turn
        (the order rotated by one each repetition), so that a change of the machine's load
        hits all of them alike; a solver that raises is dropped with the error recorded."""
        device = self.config.device
        names = list(timed)
        for rep in range(max((t.repeats for t in timed.values()), default=0)):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                t = timed.get(name)
                if t is None or rep >= t.repeats:
                    continue
                try:
                    t.forward.append(measure.time_call(lambda: _forward(t.run), device))
                    fb = measure.time_call(lambda: _loss_backward(t.run, t.qp), device)
                    t.forward_backward.append(fb)
                except Exception as err:
                    _record_failure(records[name], name, case, err)
                    del timed[name]

    def _add_accuracy(
        self, record: dict[str, Any], t: _Timed, z: torch.Tensor, ref: dict[str, Any]
    ) -> None:
        z_errors = reference.relative_errors(z, ref["z"])
        record["z_error"] = float(z_errors.max())
        record["z_error_median"] = float(z_errors.median())
        if t.qp.p.grad is not None:
            grad_errors = reference.relative_errors(t.qp.p.grad, ref["grad_p"])
            record["grad_p_error"] = float(grad_errors.max())
            record["grad_p_error_median"] = float(grad_errors.median())
        if ref["clarabel"] is not None:
            record["z_error_clarabel"] = reference.relative_error(
                z[: len(ref["clarabel"])], ref["clarabel"]
            )
        record["reference_vs_clarabel"] = ref["ref_vs_clarabel"]
        record["reference_unsolved"] = ref["unsolved"]
        if "iterations_max" in t.run.stats:
            iterations = t.run.stats["iterations_max"].float()
            record["iterations_max"] = int(iterations.max())
            record["iterations_mean"] = float(iterations.mean())
            record["unsolved"] = int((t.run.stats["status"] != 0).sum())


@dataclass
class _Timed:
    """A solver's prepared run in one case and its per-repetition times (seconds)."""

    run: PeerRun
    qp: QPBatch
    repeats: int
    forward: list[float] = field(default_factory=list)
    forward_backward: list[float] = field(default_factory=list)


def _record_failure(record: dict[str, Any], name: str, case: Case, err: Exception) -> None:
    logger.warning("%s failed on %s: %s", name, case, err)
    record["skipped"] = f"error: {type(err).__name__}: {err}"[:300]
    for key in ("forward_s", "forward_backward_s"):
        record[key] = None


def _base_record(name: str, peer: Peer, case: Case, config: SpeedConfig) -> dict[str, Any]:
    device = config.device
    return {
        "solver": name,
        "version": _peer_version(peer),
        "device": device.type,
        "device_name": measure.device_name(device),
        "threads": torch.get_num_threads(),
        "dtype": dtype_name(case.dtype),
        "n": case.n,
        "m": case.m,
        "neq": case.neq,
        "batch": case.batch,
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "eps": None,
        "repeats": None,
        "forward_s": None,
        "forward_backward_s": None,
        "cold_forward_backward_s": None,
        "skipped": None,
    }


def _add_ratios(record: dict[str, Any], optnet: dict[str, Any] | None) -> None:
    """peer time / optnet time (> 1: optnet is faster): the median over the repetitions of the
    ratio within each repetition (both timed in the same round of the interleaved loop)."""
    for key in ("forward", "forward_backward"):
        ours = [] if optnet is None else optnet.get(f"{key}_times_s") or []
        theirs = record.get(f"{key}_times_s") or []
        ratios = [t / o for t, o in zip(theirs, ours) if o > 0]
        record[f"ratio_{key}"] = statistics.median(ratios) if ratios else None


# ----------------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optnet bench [speed]``."""
    add_shared(
        parser, device="cpu", seed=0, max_iter=50, threads=None, out=Path("runs/bench"),
        help={
            "seed": "seed of the random QP batches",
            "max_iter": "iteration cap of the optnet peers",
            "threads": "CPU threads of torch and of every BLAS/OpenMP pool (default: the "
            "libraries' own)",
        },
    )  # fmt: skip
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
        "--solvers", default="optnet,qpth,qplayer,cvxpylayers", type=comma_list(str),
        help=f"comma list of {','.join(PEERS)}; ratios are to optnet's times",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", default=5, type=int, help="timed repetitions, interleaved across solvers"
    )
    parser.add_argument(
        "--eps", default=None, type=float,
        help="tolerance given to every solver (default: 1e-8 for float64, 1e-4 for float32)",
    )  # fmt: skip
    parser.add_argument(
        "--cap", default=30.0, type=float,
        help="seconds one (solver, case) may take; slower ones are skipped",
    )  # fmt: skip
    parser.add_argument(
        "--clarabel-checks", default=3, type=int,
        help="problems per case also solved by Clarabel as a check",
    )  # fmt: skip
    parser.add_argument(
        "--budget", default=None, type=float,
        help="seconds for the whole run; later cases skip (default: no limit)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run ``optnet bench``: JSON lines, the tables and a plot under ``args.out``."""
    unknown = [s for s in args.solvers if s not in PEERS]
    bad_dtypes = [d for d in args.dtype if d not in DTYPES]
    if unknown or bad_dtypes:
        raise ConfigError(
            f"unknown solvers {unknown} or dtypes {bad_dtypes}; solvers: {', '.join(PEERS)}; "
            f"dtypes: {', '.join(DTYPES)}"
        )
    solvers = args.solvers
    if "optnet" in solvers:  # optnet first: peers' ratios refer to its times
        solvers = ["optnet"] + [s for s in solvers if s != "optnet"]
    if args.threads:
        measure.limit_threads(args.threads)
    device = resolve_device(args.device)
    cases = grid([DTYPES[d] for d in args.dtype], args.sizes, args.batches, args.m_ratio, args.neq)
    config = SpeedConfig(
        device=device, cases=cases, solvers=tuple(solvers), repeats=args.repeats, eps=args.eps,
        cap_s=args.cap, clarabel_checks=args.clarabel_checks, optnet_max_iter=args.max_iter,
        seed=args.seed, budget_s=args.budget, threads=args.threads,
    )  # fmt: skip
    out = Path(args.out)
    writer = JsonLines(out / f"bench_{device.type}.jsonl")
    records = []
    total = len(cases) * len(solvers)
    for record in progress(SpeedBenchmark(config).records(), desc="bench", total=total):
        writer.write(record)
        records.append(record)
    tables = speed_tables(records)
    (out / f"bench_{device.type}_table.txt").write_text(tables + "\n")
    if can_plot():
        title = f"{records[0]['device_name']} ({device.type})" if records else device.type
        plot_time_vs_batch(records, out / f"bench_{device.type}.png", title=title)
    print(tables)
    print(json.dumps({"records": len(records), "out": str(out)}))
    return 0
