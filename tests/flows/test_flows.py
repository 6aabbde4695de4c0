"""The trading-day flows on Prefect's test harness: holidays complete as Skipped, a replayed day
runs all three stages, checkpoints them and publishes its artifacts, and a re-run of the live
session resumes without entering twice."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from sqlmodel import select

from engine.session.stages import stage_log
from engine.storage import init_db, session_scope
from engine.storage.tables import GttRow, OrderRow, PositionRow, SetupRow
from flows.live_session import live_session
from flows.post_close import post_close
from flows.pre_open import pre_open
from flows.trading_day import trading_day

DAY = "2024-06-04"


@pytest.fixture(autouse=True)
def _harness(prefect_harness: None) -> Iterator[None]:
    yield


@pytest.fixture
def small_universe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_UNIVERSE__MAX_INSTRUMENTS", "12")


async def _run(flow: Any, **parameters: Any) -> Any:
    result = flow(**parameters, return_state=True)
    return await result if hasattr(result, "__await__") else result


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        ("2024-11-20", "2024-11-20 is an NSE holiday: Assembly Elections in Maharashtra"),
        ("2024-06-08", "2024-06-08 is not an NSE trading day (Saturday)"),
    ],
)
async def test_every_stage_completes_as_skipped_with_the_reason_when_the_exchange_is_closed(
    tmp_path: Path, day: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = f"sqlite:///{tmp_path / 'closed.db'}"
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", database_url)  # the database is never a flow parameter
    for flow in (pre_open, live_session, post_close, trading_day):
        state = await _run(flow, day=day)
        assert state.is_completed(), flow.name
        assert state.name == "Skipped", flow.name
        assert state.message == reason
        assert await _run_name(state) == f"{flow.name} {day}"  # the Runs list reads as a calendar
    assert stage_log(init_db(database_url), date.fromisoformat(day)) == {}


async def _run_name(state: Any) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return str((await client.read_flow_run(state.state_details.flow_run_id)).name)


async def test_a_bad_day_fails_the_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", f"sqlite:///{tmp_path / 'bad.db'}")
    state = await _run(pre_open, day="2024-13-01")
    assert state.is_failed()
    assert "not an ISO date" in str(state.message) or "2024-13-01" in str(state.message)


def _entries(db: Any) -> list[tuple[str, str, int]]:
    with session_scope(db) as session:
        rows = session.exec(select(OrderRow).where(OrderRow.purpose == "ENTRY")).all()
        return sorted((r.client_order_id, r.symbol, r.quantity) for r in rows)


async def test_trading_day_runs_the_stages_checkpoints_them_and_publishes_artifacts_and_reruns_safely(
    tmp_path: Path, small_universe: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = f"sqlite:///{tmp_path / 'day.db'}"
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", database_url)
    state = await _run(trading_day, day=DAY, replay=True)  # lockstep
    assert state.is_completed() and state.name == "Completed", state.message
    result = await state.result()
    assert result["pre_open"]["universe"] == 12
    streamed = result["live_session"]["stream"]
    assert streamed["ticks"] > 1000 and streamed["stopped_early"] is None

    db = init_db(database_url)
    stages = stage_log(db, date.fromisoformat(DAY))
    assert {name: s["status"] for name, s in stages.items()} == {
        "pre_open": "COMPLETED", "live_session": "COMPLETED", "post_close": "COMPLETED",
    }
    assert result["live_session"]["entries"]["entry_calls"] == 15  # 15:10..15:24, once a simulated minute
    with session_scope(db) as session:
        setups = session.exec(select(SetupRow)).all()
        positions = session.exec(select(PositionRow).where(PositionRow.status == "OPEN")).all()
        active_gtts = {g.exit_id for g in session.exec(select(GttRow).where(GttRow.status == "ACTIVE")).all()}
    assert setups, "a replayed day of 12 large caps found no setup"
    entries = _entries(db)
    assert entries, "no entry in the window"
    assert all(p.exit_id in active_gtts for p in positions), "an open position without an active GTT exit"

    async with get_client() as client:
        artifacts = await client.read_artifacts()
    keys = {a.key for a in artifacts}
    assert {f"{n}-{DAY}" for n in ("setups", "orders", "positions", "trades", "pnl", "pnl-chart")} <= keys
    pnl = next(a for a in artifacts if a.key == f"pnl-{DAY}")
    assert f"setups: **{len(setups)}**" in str(pnl.data)
    orders_table = next(a for a in artifacts if a.key == f"orders-{DAY}")
    assert all(cid in str(orders_table.data) for cid, _, _ in entries)
    chart = tmp_path / "reports" / DAY / "pnl.png"
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    # Re-running the live session resumes from the database: no second entry, and (lockstep) the
    # very same stream and the very same decisions.
    rerun = await _run(live_session, day=DAY, replay=True)
    assert rerun.is_completed(), rerun.message
    assert _entries(db) == entries
    again = await rerun.result()
    assert again["stream"]["ticks"] == streamed["ticks"]
    assert again["entries"]["entry_calls"] == 15 and again["entries"]["approved"] == 0


def test_credentials_come_from_prefect_secret_blocks_when_the_environment_lacks_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.blocks.system import Secret

    from tasks.day import load_secret_blocks

    Secret(value="kite-key-from-block").save("kite-api-key", overwrite=True)
    monkeypatch.delenv("KITE_API_KEY", raising=False)
    monkeypatch.setenv("KITE_ACCESS_TOKEN", "from-env")
    monkeypatch.delenv("UPSTOX_ACCESS_TOKEN", raising=False)
    assert load_secret_blocks() == ["KITE_API_KEY"]
    assert os.environ["KITE_API_KEY"] == "kite-key-from-block"
    assert os.environ["KITE_ACCESS_TOKEN"] == "from-env"  # the environment wins


def test_open_trading_day_redacts_credentials_from_secret_blocks_in_every_log_record(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import logging

    from prefect.blocks.system import Secret

    from tasks.day import open_trading_day

    Secret(value="upstox-token-from-block").save("upstox-access-token", overwrite=True)
    monkeypatch.delenv("UPSTOX_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("KITE_API_KEY", "kite-key-from-env")
    monkeypatch.setenv("KITE_ACCESS_TOKEN", "kite-token-from-env")
    factory = logging.getLogRecordFactory()
    try:
        open_trading_day.fn("2024-06-04", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
        record = logging.getLogger("engine.test").makeRecord(
            "engine.test", logging.INFO, __file__, 1, "%s %s", ("upstox-token-from-block", "kite-token-from-env"), None
        )
        assert record.getMessage() == "*** ***"
    finally:
        logging.setLogRecordFactory(factory)
