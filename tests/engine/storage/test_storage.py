"""Storage on SQLite (WAL) and PostgreSQL through the same code; Parquet bar store."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text
from sqlmodel import select

from engine.models import IST
from engine.storage import BarStore, init_db, schema_version, session_scope
from engine.storage.db import MIGRATIONS
from engine.storage.tables import InstrumentRow, OrderRow


def test_sqlite_file_uses_wal(tmp_path: Path) -> None:
    engine = init_db(f"sqlite:///{tmp_path / 'db' / 'autotrader.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert (tmp_path / "db" / "autotrader.db").exists()


def test_migrations_are_idempotent(database_url: str) -> None:
    first = init_db(database_url)
    assert schema_version(first) == len(MIGRATIONS)
    first.dispose()
    second = init_db(database_url)
    assert schema_version(second) == len(MIGRATIONS)
    with second.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM schema_version")).scalar() == len(MIGRATIONS)
    second.dispose()


def test_rows_round_trip(database_url: str) -> None:
    engine = init_db(database_url)
    now = datetime(2024, 6, 3, 9, 45, tzinfo=UTC)
    with session_scope(engine) as session:
        session.add(InstrumentRow(instrument_key="NSE_EQ|INE002A01018", symbol="RELIANCE", isin="INE002A01018",
                                  tick_size=0.05, kite_token=738561, market_cap_cr=2010560.2,
                                  updated_on=date(2024, 6, 3)))
        session.add(OrderRow(client_order_id="AT-1", trading_day=date(2024, 6, 3), broker="paper",
                             instrument_key="NSE_EQ|INE002A01018", symbol="RELIANCE", side="BUY", quantity=10,
                             order_type="LIMIT", price=2950.05, created_at=now, updated_at=now))
    with session_scope(engine) as session:
        instrument = session.exec(select(InstrumentRow)).one()
        order = session.exec(select(OrderRow)).one()
    assert (instrument.symbol, instrument.kite_token, instrument.updated_on) == ("RELIANCE", 738561, date(2024, 6, 3))
    assert order.price == pytest.approx(2950.05)
    assert order.status == "PENDING"
    engine.dispose()


def test_failed_session_rolls_back(database_url: str) -> None:
    engine = init_db(database_url)
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        session.add(InstrumentRow(instrument_key="NSE_EQ|X", symbol="X", isin="X"))
        session.flush()
        raise RuntimeError("boom")
    with session_scope(engine) as session:
        assert session.exec(select(InstrumentRow)).all() == []
    engine.dispose()


def _bars(day: str, closes: list[float]) -> pd.DataFrame:
    ts = pd.date_range(f"{day} 09:15", periods=len(closes), freq="5min", tz=IST)
    return pd.DataFrame({"ts": ts, "open": closes, "high": [c + 1 for c in closes], "low": [c - 1 for c in closes],
                         "close": closes, "volume": [100] * len(closes)})


def test_bar_store_round_trip_and_merge(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    assert store.write("SBIN", "5min", _bars("2024-06-03", [800.0, 801.0, 802.0])) == 3
    assert store.write("SBIN", "5min", _bars("2024-06-03", [810.0])) == 3  # replaces 09:15
    assert store.write("SBIN", "5min", _bars("2024-06-04", [790.0, 791.0])) == 5
    frame = store.read("SBIN", "5min")
    assert frame["close"].tolist() == [810.0, 801.0, 802.0, 790.0, 791.0]
    assert str(frame["ts"].dt.tz) == "Asia/Kolkata"
    assert frame["ts"].is_monotonic_increasing
    assert store.symbols("5min") == ["SBIN"]
    june4 = store.read_bars("SBIN", "5min", start=date(2024, 6, 4))
    assert [b.close for b in june4] == [790.0, 791.0]
    assert june4[0].ts == datetime(2024, 6, 4, 9, 15, tzinfo=IST)
    assert (tmp_path / "timeframe=5min" / "symbol=SBIN" / "part-0.parquet").exists()


def test_bar_store_missing_symbol_is_empty(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    assert store.read("NOPE", "1d").empty
    assert store.symbols("1d") == []


def test_bar_store_last_ts_reads_the_latest_bar_start(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    store.write("SBIN", "5min", _bars("2024-06-04", [790.0, 791.0]))
    store.write("SBIN", "5min", _bars("2024-06-03", [800.0]))
    assert store.last_ts("SBIN", "5min") == datetime(2024, 6, 4, 9, 20, tzinfo=IST)
    assert store.last_ts("NOPE", "5min") is None
    store.write("EMPTY", "1d", store.read("NOPE", "1d"))
    assert store.last_ts("EMPTY", "1d") is None


def test_instrument_sync_on_both_backends(database_url: str) -> None:
    from engine.data.instruments import refresh_market_caps, sync_instruments
    from tests.engine.data.test_instruments import _table

    engine = init_db(database_url)
    table = _table()
    assert sync_instruments(engine, table, updated_on=date(2024, 6, 3)) == 5
    assert sync_instruments(engine, refresh_market_caps(table, {"RELIANCE": 3000.0})) == 5
    with session_scope(engine) as session:
        rows = {r.symbol: r for r in session.exec(select(InstrumentRow)).all()}
    assert len(rows) == 5
    assert rows["RELIANCE"].market_cap_cr == pytest.approx(6.766e9 * 3000 / 1e7)
    assert rows["ABBOTINDIA"].kite_token is None
    engine.dispose()
