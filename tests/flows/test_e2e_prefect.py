"""End to end on a REAL Prefect server (127.0.0.1, SQLite) and a REAL process worker: prefect.yaml
deployed with `prefect deploy --all`, the demo deployment runs a replayed trading day, a failing
stage fires the automation into a loopback webhook, and headless Chromium shows the UI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from engine.session.stages import stage_log
from engine.storage import init_db, session_scope
from engine.storage.tables import OrderRow, SetupRow
from tests.flows.prefect_processes import (
    PROJECT_ROOT,
    PrefectServer,
    api_call,
    filter_objects,
    run_deployment,
    wait_for_run,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DAY = "2024-06-04"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo_run(deployed: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The `trading-day/demo` deployment run once on the worker, on its own database."""
    database = tmp_path_factory.mktemp("e2e-db") / "autotrader.db"
    # speed None: the replay in lockstep (deterministic, as fast as the CPU allows), not paced
    demo_env = {"AUTOTRADER_BROKER": "paper", "AUTOTRADER_FEED__SOURCE": "replay",
                "AUTOTRADER_DATABASE_URL": f"sqlite:///{database}"}  # the database: never a flow parameter
    run_id = run_deployment(deployed, "trading-day", "demo", demo_env, day=DAY, speed=None)
    run = wait_for_run(deployed, run_id)
    return {"run": run, "database_url": f"sqlite:///{database}"}


def test_demo_deployment_runs_a_replayed_trading_day_on_the_process_worker(
    deployed: PrefectServer, demo_run: dict[str, Any]
) -> None:
    run = demo_run["run"]
    assert run["state_type"] == "COMPLETED", run["state"]
    children = filter_objects(deployed, "flow_runs", {"flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}})
    child_flows = {
        api_call(deployed, "GET", f"flows/{child['flow_id']}")["name"]: child["state_type"]
        for child in children
    }
    assert child_flows == {"pre-open": "COMPLETED", "live-session": "COMPLETED", "post-close": "COMPLETED"}

    db = init_db(demo_run["database_url"])
    stages = stage_log(db, date.fromisoformat(DAY))
    assert {stage: s["status"] for stage, s in stages.items()} == {
        "pre_open": "COMPLETED", "live_session": "COMPLETED", "post_close": "COMPLETED",
    }
    assert stages["pre_open"]["checkpoint"]["universe"] == 12
    with session_scope(db) as session:
        setups = session.exec(select(SetupRow)).all()
        entries = session.exec(select(OrderRow).where(OrderRow.purpose == "ENTRY")).all()
    assert setups and entries

    artifacts = filter_objects(deployed, "artifacts", {"artifacts": {"key": {"like_": DAY}}})
    keys = {a["key"] for a in artifacts}
    assert {f"{n}-{DAY}" for n in ("setups", "orders", "positions", "trades", "pnl", "pnl-chart")} <= keys
    orders = next(a for a in artifacts if a["key"] == f"orders-{DAY}")
    assert {e.client_order_id for e in entries} <= {row["client_order_id"] for row in json.loads(orders["data"])}

    # The run's heartbeats (what the zombie automation watches) reach the server.
    heartbeats = api_call(deployed, "POST", "events/filter", json={"filter": {
        "event": {"name": ["prefect.flow-run.heartbeat"]},
        "resource": {"id": [f"prefect.flow-run.{run['id']}"]},
    }})
    assert heartbeats["events"], "no flow-run heartbeat event"

    # Structured logs carry instrument and order ids (engine loggers reach the run logs).
    run_ids = [run["id"], *(child["id"] for child in children)]
    logs = filter_objects(deployed, "logs", {"logs": {"flow_run_id": {"any_": run_ids}}, "limit": 200})
    text = "\n".join(log["message"] for log in logs)
    assert any(e.client_order_id in text and e.symbol in text for e in entries), text[-2000:]


def test_a_failing_stage_fires_the_automation_and_the_loopback_webhook_receives_the_alert(
    deployed: PrefectServer, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    applied = subprocess.run(
        [sys.executable, "-m", "flows.automations", "--webhook-url", url, "--heartbeat-seconds", "30"],
        cwd=PROJECT_ROOT, env=deployed.env(), capture_output=True, text=True, timeout=120,
    )
    assert applied.returncode == 0, applied.stderr
    automations = {a["name"]: a for a in filter_objects(deployed, "automations", {})}
    assert {"autotrader: trading stage failed", "autotrader: crash zombie runs"} <= set(automations)
    zombie = automations["autotrader: crash zombie runs"]
    assert zombie["trigger"]["posture"] == "Proactive"
    assert zombie["trigger"]["after"] == ["prefect.flow-run.heartbeat"]
    assert zombie["trigger"]["within"] == 120.0  # four missed 30 s heartbeats
    assert zombie["actions"] == [
        {"type": "change-flow-run-state", "name": "Crashed", "state": "CRASHED", "force": False,
         "message": "No heartbeat for 120 s: the run's process or machine stopped."}
    ]

    run_id = run_deployment(deployed, "pre-open", "pre-open", day="2024-13-01")
    run = wait_for_run(deployed, run_id, timeout=120)
    assert run["state_type"] == "FAILED"

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not received:
        time.sleep(1)
    assert received, "no alert reached the webhook"
    alert = received[0]
    assert alert["source"] == "autotrader"
    assert "pre-open" in alert["subject"] and "Failed" in alert["subject"]
    assert run["name"] in alert["subject"]
    assert "2024-13-01" in alert["body"]


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args],
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make system-deps)")
def test_the_prefect_ui_shows_the_deployments_and_the_completed_run(
    deployed: PrefectServer, demo_run: dict[str, Any], tmp_path: Path
) -> None:
    dom = _chromium("--dump-dom", f"{deployed.url}/deployments", profile=tmp_path / "profile-dom").stdout
    for name in ("pre-open", "live-session", "post-close", "trading-day", "demo"):
        assert name in dom, f"deployment {name} not on the UI's deployments page"

    run = demo_run["run"]
    run_page = f"{deployed.url}/runs/flow-run/{run['id']}"
    run_dom = _chromium("--dump-dom", run_page, profile=tmp_path / "profile-run").stdout
    assert run["name"] in run_dom and "Completed" in run_dom

    screenshot = tmp_path / "ui.png"
    shot = _chromium(f"--screenshot={screenshot}", "--window-size=1400,900", run_page, profile=tmp_path / "profile-png")
    assert screenshot.exists(), shot.stderr[-2000:]
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1400, 900)
    assert len(png) > 30_000, "the screenshot is nearly blank"
