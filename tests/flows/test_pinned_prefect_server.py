"""Proof that the pinned dependency set works with a REAL Prefect server: prefect 3.9.1 with
fastapi < 0.151 (3.8.8 + fastapi >= 0.151 crashed `prefect server start`) and SQLAlchemy < 2.1
(2.1 broke the scheduler, so scheduled runs were never created)."""

from __future__ import annotations

import time
from importlib.metadata import version

import httpx
import pytest
from packaging.version import Version

from tests.flows.conftest import WORK_POOL
from tests.flows.prefect_processes import PrefectServer

pytestmark = pytest.mark.e2e


def test_pinned_versions_are_the_known_good_set() -> None:
    assert Version(version("prefect")) >= Version("3.9.1")
    assert Version(version("prefect")) < Version("3.10")
    assert Version(version("fastapi")) < Version("0.151")
    assert Version(version("sqlalchemy")) < Version("2.1")


def test_pinned_set_runs_a_real_prefect_server_whose_scheduler_creates_runs(prefect_server: PrefectServer) -> None:
    health = httpx.get(f"{prefect_server.api_url}/health", timeout=10)
    assert health.status_code == 200 and health.json() is True
    server_version = httpx.get(f"{prefect_server.api_url}/admin/version", timeout=10).json()
    assert server_version == version("prefect")

    prefect_server.cli("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite")
    prefect_server.cli("deploy", "--all")

    deployments = httpx.post(f"{prefect_server.api_url}/deployments/filter", json={}, timeout=10).json()
    names = {d["name"] for d in deployments}
    assert {"pre-open", "live-session", "post-close", "trading-day", "demo"} <= names
    pre_open = next(d for d in deployments if d["name"] == "pre-open")
    (schedule,) = pre_open["schedules"]
    assert schedule["schedule"]["cron"] == "30 8 * * *"  # every day: weekend special sessions get their run
    assert schedule["schedule"]["timezone"] == "Asia/Kolkata"
    live = next(d for d in deployments if d["name"] == "live-session")
    assert live["global_concurrency_limit"]["limit"] == 1
    assert live["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    demo = next(d for d in deployments if d["name"] == "demo")
    assert demo["schedules"] == []

    # The scheduler service (the part SQLAlchemy 2.1 broke) creates runs of the scheduled deployments.
    deadline = time.monotonic() + 90
    scheduled: list[dict[str, object]] = []
    while time.monotonic() < deadline and not scheduled:
        scheduled = httpx.post(
            f"{prefect_server.api_url}/flow_runs/filter",
            json={
                "deployments": {"id": {"any_": [pre_open["id"]]}},
                "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
            },
            timeout=10,
        ).json()
        time.sleep(1)
    assert scheduled, "the scheduler created no runs for the pre-open deployment"
    first = min(str(run["expected_start_time"]) for run in scheduled)
    # 08:30 IST is 03:00 UTC.
    assert "T03:00:00" in first
