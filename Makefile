# Quick start: `make demo` (the main job, on CPU) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION := 2.13.0

.PHONY: demo test lint wheel clean

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch would pull the CUDA build.
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	touch $@

# The library (src/optnet, the wheel) and the repo-level experiments and benchmarks packages.
$(VENV)/.installed: $(VENV)/.torch pyproject.toml experiments/pyproject.toml benchmarks/pyproject.toml
	$(PY) -m pip install --quiet -e ".[test,dev]" -e ./experiments -e ./benchmarks
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/optnet sudoku demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests experiments benchmarks

# The library's wheel only (no experiments, benchmarks or data paths): into dist/.
wheel: $(VENV)/.installed
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info experiments/*.egg-info benchmarks/*.egg-info
