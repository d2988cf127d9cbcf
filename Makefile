# invppl: every command creates the environment itself when it is missing.
#   make demo        the main job: the SGM on rotated MNIST, report in reports/demo
#   make test        ruff, mypy, pytest (+ doctests), tutorials (small mode), docs (-W)
#   make test-slow   the slow tests only (marked @pytest.mark.slow)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
export JAX_PLATFORMS ?= cpu
export PYTHONHASHSEED := 0

.PHONY: env demo test test-fast test-slow lint typecheck pytest tutorials docs lock clean

env: $(STAMP)

# --no-compile: pip would byte-compile every installed module (84 s for the lock, 37 s without);
# Python compiles only the modules that are imported, once, on first import.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || "$$(tools/python312.sh)" -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(VENV)/bin/invppl demo --out reports/demo

test: lint typecheck pytest tutorials docs

test-fast: lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# one worker per core, a test module per worker (module fixtures are built once): the suite
# is dominated by single-threaded XLA compiles, so two cores nearly halve it.
# XLA's compiled programs are kept in build/jax-cache. A clean clone (CI) starts with none,
# but within one run a program compiled by one test process is reused by the other worker
# and by the tutorials: tutorial 02 after the demo's test took 69 s instead of 87 s (the same
# programs). Between local runs the cache stays warm (the SGM tests: 45 s instead of 61 s).
# The tests and the small tutorials compile far more than they compute: LLVM's optimisation
# level 0 compiles faster (the demo's test: 77 s instead of 103 s) and runs tiny programs
# no slower. Only for these two targets; `make demo` and the benchmarks keep XLA's default.
TEST_JAX := JAX_COMPILATION_CACHE_DIR=$(CURDIR)/build/jax-cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0.1 \
	XLA_FLAGS="--xla_backend_optimization_level=0 $${XLA_FLAGS:-}"
pytest: $(STAMP)
	$(TEST_JAX) $(PY) -m pytest -n auto --dist loadscope -m "not slow" --doctest-modules tests invppl

test-slow: $(STAMP)
	$(PY) -m pytest -m slow tests

tutorials: $(STAMP)
	$(TEST_JAX) INVPPL_SMALL=1 $(PY) tools/run_tutorials.py --out build/tutorials

docs: $(STAMP) tutorials
	rm -rf docs/_build docs/_generated
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# Re-resolve the pins (needs the package index); commit the result.
lock:
	$(PY) -m pip install --quiet uv==0.13.9
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.12 \
		--generate-hashes -o requirements.lock

clean:
	rm -rf build docs/_build docs/_generated reports .pytest_cache .mypy_cache .ruff_cache
