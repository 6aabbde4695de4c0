"""Whole replayed days with AUTOTRADER_BROKER=zerodha-sandbox against the loopback Kite server: the real
live session (replay feed, strategy, risk, portfolio) on the real Zerodha adapter and `kiteconnect`
client, the sandbox's book carried from one day (process) to the next through its state file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from engine.brokers.zerodha.sandbox import SandboxZerodhaBroker
from engine.clock import LiveClock
from engine.storage.db import init_db, session_scope
from engine.storage.tables import GttRow, OrderRow, PositionRow

pytestmark = pytest.mark.e2e


async def _run_day(day: str, database_url: str) -> tuple[dict[str, object], list[str], SandboxZerodhaBroker]:
    from engine.session.live import LiveSession
    from engine.session.stages import open_trading_day

    # A wide entry window: at replay speed the default 15-minute window lasts a fraction of a
    # second of wall time, too little on a loaded machine to be sure entries happen.
    context = open_trading_day(day, LiveClock(), database_url=database_url, entry_windows=["10:00-15:20"],
                               universe={"max_instruments": 40, "min_market_cap_cr": 0})
    live = await LiveSession.open(context, replay=True, speed=3000.0)
    broker = live.broker
    assert isinstance(broker, SandboxZerodhaBroker)
    try:
        window = asyncio.ensure_future(live.run_entry_window())
        summary = await live.stream_until_close()
        await window
        kinds = (await live.orders.reconcile()).kinds()
    finally:
        await live.close()
    return summary, kinds, broker


async def test_two_replayed_days_against_the_loopback_kite_server(
    shipped_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTRADER_BROKER", "zerodha-sandbox")
    database_url = f"sqlite:///{tmp_path / 'days.db'}"
    first, kinds, broker = await _run_day("2024-06-06", database_url)
    assert kinds == []
    book = broker.sandbox.orders()
    entries = first["entries"]
    assert isinstance(entries, int) and entries > 0
    db = init_db(database_url)
    with session_scope(db) as session:
        journaled = session.exec(select(OrderRow).where(OrderRow.purpose == "ENTRY")).all()
        positions = session.exec(select(PositionRow).where(PositionRow.status == "OPEN")).all()
        active_gtts = session.exec(select(GttRow).where(GttRow.status == "ACTIVE")).all()
    assert len(journaled) == entries
    for order in journaled:  # every intended order exactly once at the broker
        assert [o["order_id"] for o in book if o["tag"] == order.client_order_id] == [order.broker_order_id]
    assert {g.exit_id for g in active_gtts} == {p.exit_id for p in positions}
    assert {str(g["id"]) for g in broker.sandbox.gtts() if g["status"] == "active"} == {g.exit_id for g in active_gtts}

    second, kinds, broker = await _run_day("2024-06-07", database_url)
    assert kinds == []  # the carried positions and their GTTs are where the journal says
    held = {h["tradingsymbol"]: h["quantity"] for h in broker.sandbox.holdings()}
    closed = {trade["symbol"] for trade in second["trades"]}  # type: ignore[attr-defined]
    for position in positions:  # day one's positions: in holdings now, or closed by an exit
        assert position.symbol in closed or held[position.symbol] == position.quantity
    db.dispose()
