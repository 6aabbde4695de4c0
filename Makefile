# autotrader: `make demo` runs replayed trading days through Prefect; `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: system-deps install demo test lint typecheck pytest proto bench ui clean automations lock server server-stop

# Every package comes from a lock with its sha256 hashes (pip refuses a file whose hash is not listed): first pip
# itself and the build backend setuptools, then all dependencies (runtime and dev), then the project without touching
# dependencies. Nothing builds in isolation, which would fetch an unhashed setuptools: the pinned one builds the
# sdist-only dependencies and the project. setup.py builds the optional native feed decoder in place; a changed C
# source reinstalls (rebuilds) it.
$(STAMP): pyproject.toml requirements-bootstrap.lock requirements.lock setup.py engine/feed/_fastfeed.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r requirements-bootstrap.lock
	$(BIN)/python -m pip install -q --require-hashes --no-deps --no-build-isolation -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation --check-build-dependencies -e .
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

# Chaos day (issue 16): the three shipped demo days with 50 feed faults a day (drops, stalls, malformed frames,
# duplicated and out-of-order ticks) for three seeds on paper and zerodha-sandbox, each against its venue's clean run:
# the same trades and open positions, or a difference the run itself reported. Prints the recovery per fault kind.
.PHONY: chaos
chaos: install
	$(BIN)/python -m tests.chaos.demos --from 2024-06-03 --to 2024-06-05 --faults 50 --seeds 1 2 3 \
		--venues paper zerodha-sandbox

# Regenerate engine/feed/proto/ from proto/MarketDataFeedV3.proto (grpcio-tools protoc + mypy-protobuf).
proto: install
	$(BIN)/python -m engine.feed.proto.generate

# The Prefect server and UI on http://127.0.0.1:4200, with the demo's runs (Prefect state in var/prefect).
ui: install
	PREFECT_HOME=$${PREFECT_HOME:-$(CURDIR)/var/prefect} PREFECT_SERVER_ANALYTICS_ENABLED=false \
		$(BIN)/prefect server start --host 127.0.0.1

# Production Prefect locally (scripts/prod_server.py): PostgreSQL from the OS packages (make system-deps) holding the
# Prefect server's and the autotrader databases, the Prefect server on 127.0.0.1:4200 against it, the process work pool
# and two workers; state in var/server. Runs in the foreground: Ctrl-C, or `make server-stop` elsewhere, stops it all.
server: install
	$(BIN)/python -m scripts.prod_server start

server-stop:
	$(BIN)/python -m scripts.prod_server stop

# Alert block + automations (failed/crashed/timed-out stages, zombie runs) on the Prefect API in
# PREFECT_API_URL; alerts go to AUTOTRADER_ALERT_WEBHOOK_URL. See docs/orchestration.md.
automations: install
	$(BIN)/python -m flows.automations

# Regenerate the hashed locks from pyproject.toml with pip-tools in a throwaway venv. Versions already in the locks
# are kept; `make lock UPGRADE=1` moves everything to the newest versions pyproject.toml allows. The bootstrap lock
# takes setuptools at the version the main lock has (pinned by pyproject's [build-system]).
PIP_TOOLS := pip-tools==7.7.0
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	$(if $(UPGRADE),--upgrade)
lock: export CUSTOM_COMPILE_COMMAND := make lock
lock:
	tools=$$(mktemp -d) && trap 'rm -rf "$$tools"' EXIT && $(PYTHON) -m venv "$$tools" \
		&& "$$tools/bin/python" -m pip install -q $(PIP_TOOLS) \
		&& "$$tools/bin/pip-compile" $(LOCK_FLAGS) --all-build-deps --extra dev -o requirements.lock pyproject.toml \
		&& { echo pip; grep -o '^setuptools==[^ ]*' requirements.lock; } \
		| "$$tools/bin/pip-compile" $(LOCK_FLAGS) -o requirements-bootstrap.lock -

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
