# Two commands do all the set-up on a fresh machine:
#   make demo   – the end-to-end demo on embedded defaults
#   make test   – the test suite (installs what the tests need first)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Two pytest workers (one per core here), each taking whole test files: about 40% off the
# default run's wall time. PARALLEL= runs it in one process.
PARALLEL ?= -n 2 --dist loadfile

.PHONY: setup demo test test-all lint bench package clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/otwatch demo

test: setup
	./scripts/ensure-system.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q $(PARALLEL)

test-all: setup
	./scripts/ensure-system.sh
	$(BIN)/pytest -q -m "slow or not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check otwatch tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

# dist/otwatch_VERSION_amd64.deb: otwatch and its dependencies in /opt/otwatch, units, config
# (docs/deploy.md). Builds from the pip cache/index configured here; installs with no network.
package:
	./packaging/deb/build-deb.sh dist

bench: setup
	$(BIN)/python bench/replay.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
