# `make demo` and `make test` set everything up on a fresh machine (a .venv with pip).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tea demo

# Two pytest workers, one torch thread each (tests/conftest.py): the suite's two cores.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --durations=10

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m ""

bench: $(STAMP)
	$(BIN)/tea bench step-cost --json runs/bench/step-cost.json

clean:
	rm -rf runs .pytest_cache
