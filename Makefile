# autotrader: `make demo` runs replayed trading days through Prefect; `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: system-deps install demo test lint typecheck pytest proto bench ui clean automations

# setup.py builds the optional native feed decoder in place; a changed C source reinstalls (rebuilds) it.
$(STAMP): pyproject.toml requirements.lock setup.py engine/feed/_fastfeed.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/autotrader demo

test: system-deps install lint typecheck pytest

# OS packages some tests use (PostgreSQL server for the storage tests); installed only as root with
# apt-get, otherwise those tests skip with a reason.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql) \
		|| echo "warning: could not install postgresql; PostgreSQL tests will be skipped"; \
	fi
	@# Headless Chromium for the Prefect UI end-to-end test (tests/flows/test_e2e_prefect.py).
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v chromium >/dev/null; then \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
		|| echo "warning: could not install chromium; the Prefect UI screenshot test will be skipped"; \
	fi

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -q

bench: install
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# Regenerate engine/feed/proto/ from proto/MarketDataFeedV3.proto (grpcio-tools protoc + mypy-protobuf).
proto: install
	$(BIN)/python -m engine.feed.proto.generate

# The Prefect server and UI on http://127.0.0.1:4200, with the demo's runs (Prefect state in var/prefect).
ui: install
	PREFECT_HOME=$${PREFECT_HOME:-$(CURDIR)/var/prefect} PREFECT_SERVER_ANALYTICS_ENABLED=false \
		$(BIN)/prefect server start --host 127.0.0.1

# Alert block + automations (failed/crashed/timed-out stages, zombie runs) on the Prefect API in
# PREFECT_API_URL; alerts go to AUTOTRADER_ALERT_WEBHOOK_URL. See docs/orchestration.md.
automations: install
	$(BIN)/python -m flows.automations

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
