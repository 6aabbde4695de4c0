"""Fixtures for flow tests: a session-scoped `prefect_test_harness` for flow logic, and ONE real
`prefect server` (127.0.0.1, free port, SQLite, PREFECT_HOME in a temporary directory) shared by
the end-to-end tests, stopped with every worker at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.flows.prefect_processes import PrefectServer, start_prefect_server

WORK_POOL = "autotrader-process"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    home = Path(tmp_path_factory.mktemp("prefect-home"))
    server = start_prefect_server(home)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def deployed(prefect_server: PrefectServer) -> PrefectServer:
    """prefect.yaml deployed (`prefect deploy --all`) to the process pool, with one worker polling it."""
    prefect_server.cli("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite")
    prefect_server.cli("deploy", "--all")
    prefect_server.start_worker(
        WORK_POOL,
        PREFECT_WORKER_QUERY_SECONDS="2",
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY="30",
        PREFECT_LOGGING_EXTRA_LOGGERS="engine",
        AUTOTRADER_UNIVERSE__MAX_INSTRUMENTS="12",
    )
    return prefect_server
