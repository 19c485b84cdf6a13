"""Measure the GPU's matmul rates and copy bandwidth, and where an iteration's time goes.

Run on a CUDA machine: ``PYTHONPATH=src python3 benchmarks/roofline.py``. Prints JSON lines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import random_qp  # noqa: E402

import optnet  # noqa: E402
from optnet import _pdipm  # noqa: E402
from optnet._problem import Problem  # noqa: E402


def timed(fn, repeats=20):
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats / 1e3  # seconds


def machine_rates():
    for dtype in (torch.float64, torch.float32):
        a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
        t = timed(lambda: a @ a, 5)
        print(
            json.dumps(
                {"what": "matmul 8192^3", "dtype": str(dtype), "tflops": 2 * 8192**3 / t / 1e12}
            )
        )
        b = torch.randn(128, 500, 500, device="cuda", dtype=dtype)
        t = timed(lambda: b @ b)
        print(
            json.dumps(
                {
                    "what": "bmm 128x500^3",
                    "dtype": str(dtype),
                    "tflops": 2 * 128 * 500**3 / t / 1e12,
                }
            )
        )
        spd = b @ b.mT + 500 * torch.eye(500, device="cuda", dtype=dtype)
        t = timed(lambda: torch.linalg.cholesky_ex(spd))
        print(
            json.dumps(
                {
                    "what": "cholesky_ex 128x500",
                    "dtype": str(dtype),
                    "ms": t * 1e3,
                    "tflops": 128 * 500**3 / 3 / t / 1e12,
                }
            )
        )
    x = torch.empty(2**28, device="cuda", dtype=torch.float32)
    y = torch.empty_like(x)
    t = timed(lambda: y.copy_(x))
    print(json.dumps({"what": "copy 1 GiB", "TB/s (read+write)": 2 * x.numel() * 4 / t / 1e12}))


def iteration_profile(n, batch, dtype):
    Q, p, G, h, _, _ = (
        x.cuda() if x is not None else None for x in random_qp(batch, n, n, 0, dtype=dtype, seed=1)
    )
    problem = Problem.from_inputs(Q, p, G, h, None, None, None, None, batch)
    options = optnet.SolverOptions()
    iteration = _pdipm.Iteration(problem, options)
    state = _pdipm.initial_state(problem, options)
    t = timed(lambda: iteration(state, check_certificates=False), 10)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        iteration(state, check_certificates=False)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    total = sum(e.self_device_time_total for e in events)
    top = sorted(events, key=lambda e: -e.self_device_time_total)[:6]
    print(
        json.dumps(
            {
                "what": "one eager iteration",
                "n": n,
                "batch": batch,
                "dtype": str(dtype),
                "wall_ms": t * 1e3,
                "kernels": sum(e.count for e in events),
                "gpu_ms": total / 1e3,
                "top": [
                    [e.key[:60], round(e.self_device_time_total / 1e3, 3), e.count] for e in top
                ],
            }
        )
    )


if __name__ == "__main__":
    print(torch.__version__, torch.cuda.get_device_name())
    machine_rates()
    for n, batch in ((10, 1), (100, 128), (100, 1024), (500, 128)):
        for dtype in (torch.float64, torch.float32):
            iteration_profile(n, batch, dtype)
