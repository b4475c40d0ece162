# The two commands a newcomer needs:
#   make run   -- create .venv, install, start the hub on the embedded SQLite log
#   make test  -- install everything the tests need (brokers included), then run them all
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/dev.lock

.PHONY: run test install lock test-deps lint pytest bench bench-report clean semantic bench-index soak

# `make run PORT=8081` when 8080 is taken (CREATIVE_HUB_PORT works too).
run: $(STAMP)
	$(BIN)/creative-hub up $(if $(PORT),--port $(PORT))

test: test-deps lint pytest

# Installs are reproducible: exactly the versions in the lock file, each checked
# by its hash, then the project itself (editable, nothing else).  After changing
# dependencies in pyproject.toml, `make lock` pins them again (uv).
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "creative-hub needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The app's lock (what `pip install "creative-hub[all,sources,agents]"` needs) and the
# development lock (`.[dev]`: tests, linters, benchmarks), for Python 3.11 on this platform.
COMPILE := $(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 --quiet
lock: $(STAMP)
	$(COMPILE) --extra all --extra sources --extra agents -o requirements/app.lock
	$(COMPILE) --extra dev -o $(LOCK)

install: $(STAMP)

# Broker servers and other non-Python parts (each script is idempotent).
test-deps: $(STAMP)
	bash scripts/install-test-deps.sh

# Semantic search: the `semantic` extra and all-MiniLM-L6-v2's files, never torch
# (test-deps runs the same script through install-test-deps.sh).
semantic: $(STAMP)
	bash scripts/install-semantic.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/bench_sqlite.py

bench-index: $(STAMP)
	$(BIN)/python bench/bench_index.py

# Every benchmark in one go: bench/results/ (tables, JSON, plots) and the
# README's Performance section.  ARGS=--quick for a short check of the machinery.
bench-report: test-deps
	$(BIN)/python bench/report.py $(ARGS)

# Soak: SOAK_MINUTES of mixed load per engine, memory and open fds sampled
# (test-artifacts/soak/: CSV, JSON, PNG).  Not part of `make test`.
# `make soak SOAK_MINUTES=3` for a quick run; SOAK_ENGINES="sqlite redis" for some.
SOAK_MINUTES ?= 30
SOAK_ENGINES ?= sqlite redis kafka nats
soak: test-deps
	@set -e; for e in $(SOAK_ENGINES); do \
	  SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/pytest tests/soak -m "soak and $$e" -s -p no:cacheprovider -o timeout=0; \
	done

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
