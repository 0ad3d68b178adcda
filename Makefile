# Every target builds the environment from scratch if it is missing, so
# `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . --group test
	touch $(STAMP)

# The peers the benchmark harness measures against (DBOS, Temporal, moto, matplotlib):
# tests run the harness in its quick mode, so its peer code cannot rot unnoticed.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --group bench
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(BIN)/python -m wayline.demo

test: $(BENCH_STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks all

clean:
	rm -rf $(VENV)
