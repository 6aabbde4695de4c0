"""Fixtures for flow tests (the in-process Prefect harness is in tests/conftest.py): a loopback alert
webhook receiver, and ONE real
`prefect server` (127.0.0.1, free port, SQLite, PREFECT_HOME in a temporary directory) shared by
the end-to-end tests, stopped with every worker at the end of the session."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.flows.prefect_processes import PrefectServer, start_prefect_server

WORK_POOL = "autotrader-process"


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


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Webhook", (_Webhook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


