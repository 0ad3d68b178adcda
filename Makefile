# Every target builds the environment from scratch if it is missing, so
# `make demo` and `make test` work on a fresh clone. `make clean` removes it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

# A .venv made by another Python (another version, another installation, or one since
# removed) is rebuilt rather than reused: its packages were built for that interpreter.
# Compared: the bytecode tag (cpython-311) and the base installation's prefix.
IDENTIFY := import sys; print(sys.implementation.cache_tag, sys.base_prefix)
WANT := $(shell $(PYTHON) -c '$(IDENTIFY)' 2>/dev/null)
HAVE := $(shell [ -d $(VENV) ] && $(BIN)/python -c '$(IDENTIFY)' 2>/dev/null)
ifneq ($(WANT),)
ifneq ($(wildcard $(VENV)),)
ifneq ($(WANT),$(HAVE))
$(info $(VENV) was made by another Python ($(or $(HAVE),its interpreter is gone)); rebuilding it with $(PYTHON) ($(WANT)))
$(shell rm -rf $(VENV))
endif
endif
endif

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "wayline needs Python 3.11 or newer: run make with PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . --group test
	touch $(STAMP)

# The peers the benchmark harness measures against (DBOS, Temporal, moto, matplotlib):
# tests run the harness in its smoke mode, so its peer code cannot rot unnoticed.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --group bench
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(BIN)/python -m wayline.demo

# Two workers: most of the suite's wall time is waiting (subprocesses, fsyncs, servers
# starting), which a second worker overlaps (4m30s serial, 1m56s on 2 workers, 2 cores).
# worksteal keeps a worker busy while the other runs the long tests. TEST_WORKERS=0: serial.
TEST_WORKERS ?= 2

test: $(BENCH_STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks all

# The environment and everything the tools leave behind; the next target rebuilds it all.
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis benchmarks/results dist build
