"""Wall-clock timing with device synchronization, peak memory of one call, thread limits, and
the name of the device measured."""

from __future__ import annotations

import ctypes
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch


def limit_threads(threads: int):
    """Run on ``threads`` cores: torch's intra-op pool, every BLAS and OpenMP pool loaded in the
    process (numpy's and SciPy's OpenBLAS, libgomp; through threadpoolctl) and, on Linux, the
    CPU affinity of the calling thread (its first ``threads`` allowed cores).

    The affinity is what bounds pools that size themselves by the cores they see and read no
    environment variable, such as the rayon pool of Moreau's CPU interior-point solver; they
    must start after this call (Moreau's does at its first solve). SciPy's OpenBLAS is loaded
    first, so that the BLAS limit reaches it. Returns threadpoolctl's limiter.
    """
    import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS)
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        if threads < len(allowed):
            os.sched_setaffinity(0, allowed[:threads])
    return threadpool_limits(limits=threads)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes, GPU work included (synchronized before and after)."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median over ``repeats`` calls (the caller has warmed ``fn`` up)."""
    return statistics.median(time_call(fn, device) for _ in range(repeats))


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(key: str) -> int:
    return int(re.search(rf"^{key}:\s+(\d+)", _STATUS.read_text(), re.M).group(1))


def _reset_cpu_peak() -> int | None:
    """Give freed heap back to the OS, reset the kernel's peak RSS; return the RSS (KiB)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        _CLEAR_REFS.write_text("5")  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        return _status_kib("VmRSS")
    except (OSError, AttributeError):
        return None


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> tuple[object, int | None]:
    """Run ``fn`` once; return its result and the peak memory it added, in bytes.

    CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated before the call.
    CPU: the process's peak resident set size above its size before the call (Linux only;
    None elsewhere). It includes everything the call allocates: torch, numpy and C++ solvers.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        synchronize(device)
        return result, torch.cuda.max_memory_allocated(device) - before
    before_kib = _reset_cpu_peak()
    result = fn()
    if before_kib is None:
        return result, None
    return result, max(0, _status_kib("VmHWM") - before_kib) * 1024


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (Linux; else what ``platform`` knows)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        text = Path("/proc/cpuinfo").read_text()
        return re.search(r"^model name\s*:\s*(.+)$", text, re.M).group(1).strip()
    except (OSError, AttributeError):
        return platform.processor() or platform.machine()
