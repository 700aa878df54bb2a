# The few verbs a newcomer needs. Everything runs in ./.venv, created on first use.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
# CPU build of PyTorch; an unpinned `torch` may pull a multi-GB CUDA build.
TORCH   ?= torch==2.13.0
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install system-deps lock demo test test-fast lint format typecheck tree bench-stream bench-quality soak clean

$(BIN)/tripwire: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[train,dev]"
	@touch $@

install: $(BIN)/tripwire ## create .venv and install Tripwire with dev tools

# Prometheus server + promtool, Alertmanager + amtool, and docker-compose (schema check of docker-compose.yml;
# no Docker engine needed), Debian packages for the deploy tests.
system-deps:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v docker-compose >/dev/null \
	  && command -v amtool >/dev/null && command -v prometheus-alertmanager >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq prometheus prometheus-alertmanager docker-compose >/dev/null; \
	  else echo "install Debian's 'prometheus', 'prometheus-alertmanager' and 'docker-compose' packages for the deploy tests" >&2; exit 1; fi; }

# Hashed lock files of the images (requirements/README.md); needs pip-tools.
LOCK_ARGS := --quiet --generate-hashes --no-emit-index-url --no-emit-find-links --strip-extras \
	--allow-unsafe --constraint requirements/torch-cpu.txt
lock:
	pip-compile $(LOCK_ARGS) --output-file requirements/worker.lock pyproject.toml
	pip-compile $(LOCK_ARGS) --extra train --output-file requirements/trainer.lock pyproject.toml

demo: install ## train, publish, stream the tutorial's data through Kafka, print metrics
	$(BIN)/tripwire demo

# stream/ and training/ are tripwire.stream and tripwire.training only once installed
# (pyproject's package-dir); lint-imports and mypy walk directories, so they read
# $(TREE), the installed layout as links to the sources (tools/linktree.py).
TREE := build/tree

tree: install
	@$(BIN)/python tools/linktree.py $(TREE)

lint: tree ## ruff, ruff format, and the import contracts of pyproject's [tool.importlinter]
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd $(TREE) && $(CURDIR)/$(BIN)/lint-imports $(CURDIR)/pyproject.toml

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: tree
	$(BIN)/mypy

test: install system-deps lint typecheck ## the full suite, slow tests included (what CI runs)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install ## skip the slow tests
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

# The project's own harness (benchmarks/, not installed): the full tables of
# docs/performance.md and docs/quality.md. Users measure their own setup with
# `tripwire bench stream` / `tripwire bench quality`.
bench-stream: install ## the worker beside its ceilings and a naive peer (docs/performance.md)
	$(BIN)/python -m benchmarks stream $(BENCH_ARGS)

bench-quality: install ## Tripwire's detectors vs PyOD's on the ADBench folder (docs/quality.md)
	$(BIN)/python -m benchmarks quality $(BENCH_ARGS)

soak: install ## the 10-minute soak of the worker (not part of make test)
	TRIPWIRE_SOAK=1 $(BIN)/pytest tests/stream/reliability/test_soak.py -m soak -s $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info build
