"""Shared fixtures: seeding, the backends of the conformance suite, and markers that skip
tests without their resource."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch

from tests.support.backends import CONFIGS
from tests.support.tolerances import TIGHT

# The tests solve many tiny problems; intra-op threads only add synchronization overhead there
# (and on a loaded 2-core machine, OpenMP barriers made a 5x5 Cholesky take 15 ms).
torch.set_num_threads(1)

# Test modules that import the repo-level packages (`make` installs them): not collected where
# they are absent, so that the library alone (`pip install -e '.[test]'`) runs everything else.
NEEDS = {
    "test_bench.py": ("optnet_benchmarks",),
    "test_maros_meszaros.py": ("optnet_benchmarks", "optnet_experiments"),
}
MISSING = {
    module: [name for name in packages if importlib.util.find_spec(name) is None]
    for module, packages in NEEDS.items()
}
collect_ignore = [module for module, missing in MISSING.items() if missing]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=list(CONFIGS))
def backend_options(request):
    """The conformance suite: ``SolverOptions`` selecting each backend in turn
    (``tests/support/backends.py``)."""
    return CONFIGS[request.param]


@pytest.fixture
def tight_options(backend_options):
    """``backend_options`` solving to 1e-12, for finite-difference checks."""
    return dataclasses.replace(backend_options, **TIGHT)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_report_header(config):
    return [f"not collected: {module} (needs {', '.join(missing)})"
            for module, missing in MISSING.items() if missing]  # fmt: skip


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "conformance: run once per backend (takes the backend_options fixture)"
    )


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "backend_options" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.conformance)
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
