# Every target bootstraps .venv from pyproject.toml on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# pytest-xdist workers for the fast suite; most tests wait on subprocesses, HTTP and databases,
# so more workers than cores pays.
WORKERS ?= 4

.PHONY: demo test test-fast test-slow lint typecheck bench bench-plan-in-database bench-latency clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/audience-sync demo --workdir demo

# lint, type checks and the fast suite (every test not marked slow), in parallel
test: $(STAMP) lint typecheck test-fast

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -n $(WORKERS) $(PYTEST_ARGS)

# the tests marked slow (scale, wheel install, ...), one at a time: the scale tests each hold
# a 1M-contact sandbox and measure the job's peak memory
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check audience_sync tests migrations bench
	$(BIN)/ruff format --check audience_sync tests migrations bench

typecheck: $(STAMP)
	$(BIN)/mypy

N ?= 1000000
CHURN ?= 0.01
STORE ?= sqlite
PLANNER ?= embedded
SOURCE ?= file
# more run_bench.py options, e.g. BENCH_ARGS=--no-snapshot-cache
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/run_bench.py --members $(N) --churn $(CHURN) --store $(STORE) \
		--planner $(PLANNER) --source $(SOURCE) $(BENCH_ARGS)

# plan (dry run) of the churned snapshot on PostgreSQL with confirmed state seeded by SQL:
# both planners reading the same source table, and the DuckDB reference
bench-plan-in-database: $(STAMP)
	$(BIN)/python bench/plan_in_database.py --members $(N) --churn $(CHURN)

AUDIENCES ?= 8
bench-latency: $(STAMP)
	$(BIN)/python bench/latency.py --audiences $(AUDIENCES) --store $(STORE)

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
