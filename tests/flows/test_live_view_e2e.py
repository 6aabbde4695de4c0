"""The live view end to end on the REAL Prefect server and process worker: the `live-session` deployment
replays a day PACED (about 15 s of wall time; on a fresh database the session builds the universe and the
indicator metadata at open), and while the run is RUNNING the test reads its artifacts with the Prefect
client: the progress artifact rises in place and the positions table changes. The final versions agree
with the day's setups, positions and trades in the database."""

from __future__ import annotations

import itertools
import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from sqlmodel import select

from engine.session.view import POSITION_COLUMNS, SETUP_COLUMNS
from engine.storage import init_db, session_scope
from engine.storage.tables import PositionRow, RiskLedgerRow, SetupRow, TradeRow
from tasks.artifacts import live_view_keys
from tests.flows.prefect_processes import TERMINAL, PrefectServer, api_call, run_deployment

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

DAY = date(2024, 6, 4)
SPEED = 1500.0  # 09:13 -> 15:30 of the session clock in about 15 s of wall time
# An entry window from the morning, so positions are held (and re-marked) while the view updates.
ENTRY_WINDOWS = '["09:30-15:20"]'


def _live_view(client: SyncPrefectClient, run_id: str) -> dict[str, Any] | None:
    """The latest version of each live-view artifact of the run (None until all four exist)."""
    of_the_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    artifacts = client.read_artifacts(artifact_filter=of_the_run)
    latest: dict[str, Any] = {}
    for artifact in sorted(artifacts, key=lambda a: a.created or 0):
        latest[str(artifact.key)] = artifact.data
    keys = live_view_keys(DAY)
    if not set(keys.values()) <= set(latest):
        return None
    return {"progress": float(latest[keys["progress"]]), "positions": json.loads(latest[keys["positions"]]),
            "setups": json.loads(latest[keys["setups"]]), "pnl": str(latest[keys["pnl"]])}


def test_the_live_view_artifacts_update_in_place_during_a_paced_replay(deployed: PrefectServer, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'live-view.db'}"
    env = {"AUTOTRADER_BROKER": "paper", "AUTOTRADER_FEED__SOURCE": "replay", "AUTOTRADER_DATABASE_URL": database_url,
           "AUTOTRADER_ENTRY_WINDOWS": ENTRY_WINDOWS}
    run_id = run_deployment(deployed, "live-session", "live-session", env, day=DAY.isoformat(), replay=True,
                            speed=SPEED)

    reads: list[dict[str, Any]] = []  # each a different view, read while the run is RUNNING
    deadline = time.monotonic() + 120
    with SyncPrefectClient(deployed.api_url) as client:
        while (state := api_call(deployed, "GET", f"flow_runs/{run_id}")["state_type"]) not in TERMINAL:
            assert time.monotonic() < deadline, f"the run is still {state}"
            if state == "RUNNING" and (view := _live_view(client, run_id)) is not None and view not in reads[-1:]:
                reads.append(view)
            time.sleep(0.5)
        final = _live_view(client, run_id)
    assert state == "COMPLETED", "\n".join(worker.log()[-3000:] for worker in deployed.workers)

    assert len(reads) >= 2, reads
    progress = [view["progress"] for view in reads]
    assert progress == sorted(progress) and progress[-1] > progress[0], progress
    tables = [view["positions"] for view in reads]
    assert any(a != b for a, b in itertools.pairwise(tables)), "the positions table never changed"
    assert all(list(row) == list(POSITION_COLUMNS) for table in tables for row in table)
    assert any(row["symbol"] and row["ltp"] for table in tables for row in table), "no position marked mid-run"

    # The final versions are the day as the database holds it.
    assert final is not None and final["progress"] == 100.0
    db = init_db(database_url)
    with session_scope(db) as session:
        held = session.exec(select(PositionRow).where(PositionRow.status == "OPEN")).all()
        trades = session.exec(select(TradeRow).where(TradeRow.trading_day == DAY)).all()
        setups = session.exec(select(SetupRow).where(SetupRow.trading_day == DAY)).all()
        ledger = session.get(RiskLedgerRow, DAY)
    db.dispose()
    assert held or trades, "nothing was traded: the live view has nothing to show"
    assert sorted((r["symbol"], r["qty"], r["avg"]) for r in final["positions"] if r["stop"] is not None) == sorted(
        (p.symbol, p.quantity, p.average_price) for p in held)
    assert sorted((r["symbol"], r["qty"], r["avg"], r["ltp"]) for r in final["positions"] if r["stop"] is None) == \
        sorted((t.symbol, t.quantity, t.entry_price, t.exit_price) for t in trades)
    assert sorted((r["symbol"], r["status"]) for r in final["setups"]) == sorted((s.symbol, s.status) for s in setups)
    assert all(list(row) == list(SETUP_COLUMNS) for row in final["setups"])
    assert f"realised net P&L: **₹{round(sum(t.net_pnl for t in trades), 2):,.2f}** ({len(trades)} closed trades)" \
        in final["pnl"]
    assert ledger is not None
    assert f"kill switch: {f'**ON**: {ledger.kill_reason}' if ledger.kill_switch else 'off'}" in final["pnl"]
