"""Calls on a real Prefect server's API for end-to-end tests; the processes themselves (server, workers,
PostgreSQL) come from `scripts/processes.py`, shared with `make server`."""

from __future__ import annotations

import time
from typing import Any

import httpx

from scripts.processes import (
    BIN,
    PROJECT_ROOT,
    ManagedProcess,
    PostgresCluster,
    PostgresUnavailable,
    PrefectServer,
    free_port,
    postgres_bin_dir,
    postgres_os_user,
    prefect_env,
    start_prefect_server,
    start_process,
)

__all__ = [
    "BIN",
    "PROJECT_ROOT",
    "TERMINAL",
    "ManagedProcess",
    "PostgresCluster",
    "PostgresUnavailable",
    "PrefectServer",
    "api_call",
    "filter_objects",
    "free_port",
    "postgres_bin_dir",
    "postgres_os_user",
    "prefect_env",
    "run_deployment",
    "start_prefect_server",
    "start_process",
    "wait_for_run",
]


TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def api_call(server: PrefectServer, method: str, path: str, **kwargs: Any) -> Any:
    """A Prefect API call, retried like Prefect's own client does on 503 (SQLite busy under load)."""
    for attempt in range(10):
        try:
            response = httpx.request(method, f"{server.api_url}/{path}", timeout=30, **kwargs)
        except httpx.TransportError:
            if attempt == 9:
                raise
            time.sleep(1 + attempt)
            continue
        if response.status_code not in (429, 502, 503) or attempt == 9:
            response.raise_for_status()
            return response.json()
        time.sleep(1 + attempt)


def run_deployment(
    server: PrefectServer, flow_name: str, name: str, env: dict[str, str] | None = None, **parameters: Any
) -> str:
    deployment = api_call(server, "GET", f"deployments/name/{flow_name}/{name}")
    body: dict[str, Any] = {"parameters": parameters}
    if env is not None:  # replaces the deployment's env job variable
        body["job_variables"] = {"env": env}
    created = api_call(server, "POST", f"deployments/{deployment['id']}/create_flow_run", json=body)
    return str(created["id"])


def wait_for_run(server: PrefectServer, flow_run_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api_call(server, "GET", f"flow_runs/{flow_run_id}")
        if run["state_type"] in TERMINAL:
            return dict(run)
        time.sleep(1)
    logs = "\n".join(w.log()[-3000:] for w in server.workers)
    raise AssertionError(f"flow run {flow_run_id} did not finish in {timeout}s; worker log:\n{logs}")


def filter_objects(server: PrefectServer, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(api_call(server, "POST", f"{path}/filter", json=body))
