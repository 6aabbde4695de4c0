# autotrader: `make demo` runs replayed trading days through Prefect; `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck pytest proto bench ui clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/autotrader demo

test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -q

bench: install
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

ui: install
	$(BIN)/prefect server start --host 127.0.0.1

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
