"""Shared fixtures: seeding, and markers that skip tests without their resource."""

from __future__ import annotations

import pytest
import torch

# The tests solve many tiny problems; intra-op threads only add synchronization overhead there
# (and on a loaded 2-core machine, OpenMP barriers made a 5x5 Cholesky take 15 ms).
torch.set_num_threads(1)


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
