# Every target bootstraps .venv from pyproject.toml on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint typecheck bench bench-latency clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/audience-sync demo --workdir demo

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check audience_sync tests migrations bench
	$(BIN)/ruff format --check audience_sync tests migrations bench

typecheck: $(STAMP)
	$(BIN)/mypy

N ?= 1000000
CHURN ?= 0.01
STORE ?= sqlite
bench: $(STAMP)
	$(BIN)/python bench/run_bench.py --members $(N) --churn $(CHURN) --store $(STORE)

AUDIENCES ?= 8
bench-latency: $(STAMP)
	$(BIN)/python bench/latency.py --audiences $(AUDIENCES) --store $(STORE)

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
