# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: run test fuzz system-deps lint bench bench-venv bench-quick clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[deploy,tune,dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/trainwise train

# Tests run in TEST_WORKERS processes (pytest-xdist; default: one per core), a test file per worker at a time: most
# tests are single-threaded (tests/conftest.py sets one intra-op thread), so on 2 cores this halves the wall time.
# TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= auto

test: $(STAMP)
	bash scripts/system-deps.sh
	$(BIN)/ruff check src tests benchmarks recipes
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The property-based tests (tests/test_fuzz.py) with many more examples than `make test` runs (8 per property).
fuzz: $(STAMP)
	TRAINWISE_FUZZ_EXAMPLES=$${TRAINWISE_FUZZ_EXAMPLES:-300} $(BIN)/python -m pytest -q -n 0 tests/test_fuzz.py

# What the suite needs outside Python (Chromium for the HTML tests); `make test` runs it first.
system-deps:
	bash scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks recipes
	$(BIN)/mypy

# Benchmarks run in their own environment, which also holds the peers (lightning, accelerate) pinned to the same
# torch; the test environment above never needs them. Timed runs hold a lock so two benchmarks never overlap.
BENCH_VENV := .venv-bench
BBIN := $(BENCH_VENV)/bin
BPIP := $(BBIN)/pip install -c constraints.txt
BSTAMP := $(BENCH_VENV)/.installed
BENCH_LOCK := $(shell command -v flock >/dev/null 2>&1 && echo flock /tmp/trainwise-bench.lock)

$(BSTAMP): pyproject.toml constraints.txt benchmarks/requirements.txt
	test -x $(BBIN)/python || $(PY) -m venv $(BENCH_VENV)
	$(BPIP) --upgrade pip
	$(BPIP) torch==2.13.0
	$(BPIP) -e '.[deploy]' -r benchmarks/requirements.txt
	touch $(BSTAMP)

bench-venv: $(BSTAMP)

bench: $(BSTAMP)
	$(BENCH_LOCK) $(BBIN)/python benchmarks/bench_loop.py
	$(BENCH_LOCK) $(BBIN)/python benchmarks/bench_peers.py
	$(BBIN)/python benchmarks/bench_gpu.py
	$(BBIN)/python benchmarks/readme_numbers.py

bench-quick: $(BSTAMP)
	$(BENCH_LOCK) $(BBIN)/python benchmarks/bench_peers.py --quick

clean:
	rm -rf $(VENV) $(BENCH_VENV) build src/*.egg-info
