# Two entry points (see README): `make run` and `make test`. Everything else is their plumbing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench install system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install system-deps
	$(BIN)/mingpian serve

test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

system-deps:
	@./scripts/system-deps.sh

lint: install system-deps
	$(BIN)/mingpian lint

# Benchmarks print their figures; see each script's docstring. Peers for the legacy
# cross-check come from the `bench` extra and bench/peers/package.json (npm).
bench: install system-deps
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	-npm install --silent --prefix bench/peers
	@for b in bench/*_bench.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
