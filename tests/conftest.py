"""Shared fixtures: seeding, the tolerance table, markers that skip without their resource."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

# Without a GPU, Triton kernels (the fused solver) run in Triton's interpreter. It must be set
# before the kernels are defined; the default options never pick the kernel on CPU.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The tests solve many tiny problems; intra-op threads only add synchronization overhead there
# (and on a loaded 2-core machine, OpenMP barriers made a 5x5 Cholesky take 15 ms).
torch.set_num_threads(1)

# One tolerance table, keyed by (quantity, dtype): the largest error we accept against a
# float64 reference solved to 1e-12, relative to the reference's infinity norm (floor 1).
TOLERANCES = {
    ("z", torch.float64): 1e-6,
    ("z", torch.float32): 2e-2,
    ("dual", torch.float64): 1e-5,
    ("dual", torch.float32): 5e-2,
    ("grad", torch.float64): 1e-5,
    ("grad", torch.float32): 5e-2,
}


def assert_close_to(actual, expected, quantity: str, dtype: torch.dtype):
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    scale = max(1.0, float(expected.abs().max())) if expected.numel() else 1.0
    error = float((actual - expected).abs().max()) / scale if expected.numel() else 0.0
    tol = TOLERANCES[(quantity, dtype)]
    assert error <= tol, f"{quantity} ({dtype}): relative error {error:.3e} > {tol:.1e}"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
