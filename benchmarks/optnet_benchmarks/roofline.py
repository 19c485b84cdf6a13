"""A GPU's matmul rates and bandwidth, and where a solve's time goes (CUDA only).

Prints JSON lines: the dense and batched matmul rates, batched Cholesky and the copy
bandwidth, then per backend, size and dtype the time and GPU kernels of one forward solve.

The solver is profiled through the public API only: a forward ``solve_qp`` with a fixed number
of iterations (``eps_abs = eps_rel = 0`` is refused, so a tolerance of 1e-30 keeps every
problem iterating to ``max_iter``); the per-iteration figures divide by that count, so they
include the start and finish, spread over the iterations.

Example::

    optnet bench roofline --backends batched,graphed
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from optnet_experiments.cli import comma_list
from optnet_experiments.devices import dtype_name
from optnet_experiments.errors import ConfigError

from .problems import random_feasible_qp

ITERATIONS = 20  # iterations of each profiled solve
CASES = ((10, 1), (100, 128), (100, 1024), (500, 128))  # (n = m, B)


def timed(fn: Callable[[], object], repeats: int = 20) -> float:
    """Seconds per call of ``fn`` on the GPU (3 warm-up calls, then CUDA events)."""
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats / 1e3


def machine_rates() -> list[dict]:
    """Dense and batched matmul rates, batched Cholesky and copy bandwidth."""
    rows = []
    for dtype in (torch.float64, torch.float32):
        name = dtype_name(dtype)
        a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
        t = timed(lambda: a @ a, 5)
        rows.append({"what": "matmul 8192^3", "dtype": name, "tflops": 2 * 8192**3 / t / 1e12})
        b = torch.randn(128, 500, 500, device="cuda", dtype=dtype)
        t = timed(lambda: b @ b)
        rows.append({"what": "bmm 128x500^3", "dtype": name, "tflops": 2 * 128 * 500**3 / t / 1e12})
        spd = b @ b.mT + 500 * torch.eye(500, device="cuda", dtype=dtype)
        t = timed(lambda: torch.linalg.cholesky_ex(spd))
        rows.append(
            {
                "what": "cholesky_ex 128x500",
                "dtype": name,
                "ms": t * 1e3,
                "tflops": 128 * 500**3 / 3 / t / 1e12,
            }
        )
    x = torch.empty(2**28, device="cuda", dtype=torch.float32)
    y = torch.empty_like(x)
    t = timed(lambda: y.copy_(x))
    rows.append({"what": "copy 1 GiB", "TB/s (read+write)": 2 * x.numel() * 4 / t / 1e12})
    return rows


def solve_profile(n: int, batch: int, dtype: torch.dtype, backend: str) -> dict:
    """Wall time and GPU kernels of one forward solve of ``ITERATIONS`` iterations."""
    from optnet import SolverOptions, solve_qp

    qp = random_feasible_qp(batch, n, n, 0, seed=1).to(dtype, "cuda")
    options = SolverOptions(eps_abs=1e-30, eps_rel=1e-30, max_iter=ITERATIONS, backend=backend)

    def solve():
        return solve_qp(*qp.inputs(), options=options)

    seconds = timed(solve, 5)
    iterations = int(solve().iterations.max())
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        solve()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    total_us = sum(e.self_device_time_total for e in events)
    top = sorted(events, key=lambda e: -e.self_device_time_total)[:6]
    per = max(1, iterations)
    return {
        "what": "one solve",
        "backend": backend,
        "n": n,
        "batch": batch,
        "dtype": dtype_name(dtype),
        "iterations": iterations,
        "wall_ms_per_iteration": seconds * 1e3 / per,
        "kernels_per_iteration": sum(e.count for e in events) / per,
        "gpu_ms_per_iteration": total_us / 1e3 / per,
        "top": [[e.key[:60], round(e.self_device_time_total / 1e3, 3), e.count] for e in top],
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optnet bench roofline``."""
    parser.add_argument(
        "--backends", default="batched,graphed", type=comma_list(str),
        help="comma list of SolverOptions(backend=...)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run ``optnet bench roofline``: JSON lines on stdout."""
    if not torch.cuda.is_available():
        raise ConfigError("roofline needs a CUDA device")
    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name()}))
    for row in machine_rates():
        print(json.dumps(row))
    for backend in args.backends:
        for n, batch in CASES:
            for dtype in (torch.float64, torch.float32):
                print(json.dumps(solve_profile(n, batch, dtype, backend)))
    return 0
