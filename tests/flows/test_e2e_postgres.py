"""End to end on production Prefect (`make server`, scripts/prod_server.py): a PostgreSQL cluster from the OS
packages holding the Prefect server's database and the autotrader database, the Prefect server on it, two
process workers on the pool and prefect.yaml deployed with `prefect deploy --all`. A replayed day completes
with the autotrader tables in PostgreSQL; then a worker dies with its run mid-session (SIGKILL, as on a machine
loss), the run goes silent, the zombie automation marks it Crashed and the alert reaches a loopback webhook."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import select

from engine.session.stages import stage_log
from engine.storage import init_db, session_scope
from engine.storage.tables import OrderRow, TradeRow
from scripts.prod_server import HEARTBEAT_SECONDS, ProductionServer, start_production_server
from tests.flows.prefect_processes import (
    PROJECT_ROOT,
    PostgresUnavailable,
    api_call,
    filter_objects,
    free_port,
    postgres_os_user,
    run_deployment,
    wait_for_run,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# 2024-06-03 enters RELIANCE at 15:15 with a GTT stop; 2024-06-05 opens below that stop, so the paced day closes
# the trade in its first seconds (written to PostgreSQL before the kill).
ENTRY_DAY = "2024-06-03"
KILLED_DAY = "2024-06-05"
# 09:13 → 15:30 at 400× the wall clock: a live session of about 57 s, long enough to be killed in the middle.
KILLED_SPEED = 400.0
# The zombie window is MISSED_HEARTBEATS (4) × this: 60 s, two 30 s heartbeats (Prefect's minimum frequency).
AUTOMATION_HEARTBEAT_SECONDS = 15


@pytest.fixture(scope="module")
def stack() -> Iterator[ProductionServer]:
    try:
        postgres_os_user()
        root = Path(tempfile.mkdtemp(prefix="autotrader-prod-"))
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    root.chmod(0o711)  # as root the cluster runs as `postgres`, which must reach its directory below
    try:
        server = start_production_server(
            root, prefect_port=free_port(), postgres_port=free_port(), durable=False,
            PREFECT_WORKER_QUERY_SECONDS="2", AUTOTRADER_UNIVERSE__MAX_INSTRUMENTS="12",
        )
    except PostgresUnavailable as error:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(str(error))
    try:
        server.prefect.cli("deploy", "--all", timeout=300)
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _children(stack: ProductionServer, run_id: str) -> dict[str, dict[str, Any]]:
    children = filter_objects(stack.prefect, "flow_runs", {"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}})
    return {api_call(stack.prefect, "GET", f"flows/{child['flow_id']}")["name"]: child for child in children}


def test_a_replayed_day_on_postgres_completes_with_two_workers_and_the_tables_in_postgres(
    stack: ProductionServer,
) -> None:
    workers = api_call(stack.prefect, "POST", "work_pools/autotrader-process/workers/filter", json={})
    assert len(workers) == 2 and {w["status"] for w in workers} == {"ONLINE"}, workers

    run_id = run_deployment(stack.prefect, "trading-day", "trading-day", day=ENTRY_DAY, replay=True)
    run = wait_for_run(stack.prefect, run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    children = _children(stack, run_id)
    assert {name: child["state_type"] for name, child in children.items()} == {
        "pre-open": "COMPLETED", "live-session": "COMPLETED", "post-close": "COMPLETED",
    }

    # The Prefect server keeps its runs in PostgreSQL, not in an embedded SQLite.
    assert not list(stack.prefect.home.glob("*.db"))
    prefect_db = create_engine(stack.cluster.url("prefect", "postgresql+psycopg"))
    try:
        with prefect_db.connect() as connection:
            stored = connection.execute(text("SELECT state_type FROM flow_run WHERE id = :id"), {"id": run_id}).all()
    finally:
        prefect_db.dispose()
    assert [row[0] for row in stored] == ["COMPLETED"]

    # The flows wrote the autotrader tables to PostgreSQL (the workers' AUTOTRADER_DATABASE_URL).
    db = init_db(stack.autotrader_database_url)
    try:
        stages = stage_log(db, date.fromisoformat(ENTRY_DAY))
        with session_scope(db) as session:
            entries = session.exec(select(OrderRow).where(OrderRow.purpose == "ENTRY")).all()
    finally:
        db.dispose()
    assert {stage: s["status"] for stage, s in stages.items()} == {
        "pre_open": "COMPLETED", "live_session": "COMPLETED", "post_close": "COMPLETED",
    }
    assert [e.symbol for e in entries] == ["RELIANCE"]


def _trades(stack: ProductionServer, day: str) -> list[TradeRow]:
    db = init_db(stack.autotrader_database_url)
    try:
        with session_scope(db) as session:
            return list(session.exec(select(TradeRow).where(TradeRow.trading_day == date.fromisoformat(day))).all())
    finally:
        db.dispose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _parent_pid(pid: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ...", comm may hold spaces
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _wait(what: str, condition: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_a_worker_killed_mid_run_goes_silent_and_the_zombie_automation_crashes_it_into_an_alert(
    stack: ProductionServer, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    applied = subprocess.run(
        [sys.executable, "-m", "flows.automations", "--webhook-url", url,
         "--heartbeat-seconds", str(AUTOMATION_HEARTBEAT_SECONDS)],
        cwd=PROJECT_ROOT, env=stack.prefect.env(), capture_output=True, text=True, timeout=120,
    )
    assert applied.returncode == 0, applied.stderr
    window = AUTOMATION_HEARTBEAT_SECONDS * 4
    assert window >= 2 * HEARTBEAT_SECONDS  # a live run's heartbeats never leave a gap that long

    run_id = run_deployment(stack.prefect, "trading-day", "trading-day", day=KILLED_DAY, replay=True,
                             speed=KILLED_SPEED)
    _wait("live-session running", lambda: (c := _children(stack, run_id).get("live-session"))
          and c["state_type"] == "RUNNING", timeout=180)
    # The run's heartbeat (what the zombie automation watches) has reached the server.
    _wait("a heartbeat of the run", lambda: api_call(stack.prefect, "POST", "events/filter", json={"filter": {
        "event": {"name": ["prefect.flow-run.heartbeat"]}, "resource": {"id": [f"prefect.flow-run.{run_id}"]},
    }})["events"], timeout=60)
    # Mid-session: the carried position's GTT stop has closed the trade in PostgreSQL.
    trades = _wait("the trade closed by the GTT stop", lambda: _trades(stack, KILLED_DAY), timeout=60)
    assert [(t.symbol, t.exit_reason) for t in trades] == [("RELIANCE", "stop (GTT)")]

    run_pid = int(api_call(stack.prefect, "GET", f"flow_runs/{run_id}")["infrastructure_pid"].rsplit(":", 1)[-1])
    worker = next(w for w in stack.workers if w.process.pid == _parent_pid(run_pid))
    survivor = next(w for w in stack.workers if w is not worker)
    # The worker's process group dies; Prefect started the run in a session of its own, so the run outlives it
    # (until its next console log line, which a dead worker's pipe turns into a self-reported crash)...
    worker.kill()
    assert _alive(run_pid), "the run died with its worker's process group"
    # ...so SIGKILL the run too: both die as on a machine loss, with no handler, hook or final state.
    os.killpg(run_pid, signal.SIGKILL)
    killed_at = time.monotonic()

    alert = _wait("the alert of the killed run", lambda: next(
        (a for a in received if run_id in a["body"] and "Crashed" in a["subject"]), None), timeout=window + 90)
    crashed_after = time.monotonic() - killed_at
    run = api_call(stack.prefect, "GET", f"flow_runs/{run_id}")
    assert run["state_type"] == "CRASHED"
    assert run["state"]["message"] == f"No heartbeat for {window} s: the run's process or machine stopped."
    assert "trading-day" in alert["subject"] and run["name"] in alert["subject"]
    assert crashed_after < window + 60, crashed_after
    _wait("the silent live-session subflow crashed too", lambda: _children(stack, run_id)["live-session"]["state_type"]
          == "CRASHED", timeout=30)
    assert survivor.process.poll() is None, "the other worker went down too"

    # The dead run left its stage RUNNING in PostgreSQL, where a re-run resumes from.
    db = init_db(stack.autotrader_database_url)
    try:
        stages = stage_log(db, date.fromisoformat(KILLED_DAY))
    finally:
        db.dispose()
    assert {stage: s["status"] for stage, s in stages.items()} == {"pre_open": "COMPLETED", "live_session": "RUNNING"}
    print(f"killed run crashed by the zombie automation and alerted {crashed_after:.0f} s after the kill")
