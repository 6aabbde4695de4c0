"""Instrument table helpers: loading, universe filter, market-cap refresh, database sync."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import select

from engine.data.instruments import (
    INSTRUMENT_COLUMNS,
    InstrumentTableError,
    filter_universe,
    load_instrument_table,
    load_instruments,
    refresh_market_caps,
    sync_instruments,
    write_instrument_table,
)
from engine.storage import init_db, session_scope
from engine.storage.tables import InstrumentRow


def _table() -> pd.DataFrame:
    rows = [
        ("NSE_EQ|INE002A01018", "RELIANCE", 2_000_000.0, 6.766e9, True, 738561),
        ("NSE_EQ|INE040A01034", "HDFCBANK", 1_100_000.0, 7.6e9, True, 341249),
        ("NSE_EQ|INE117A01022", "ABB", 150_000.0, 2.1e8, False, 3329),
        ("NSE_EQ|INE358A01014", "ABBOTINDIA", None, None, False, None),
        ("NSE_EQ|INE000X00001", "SMALLCO", 5_000.0, 1e8, True, None),
    ]
    frame = pd.DataFrame(
        [
            {
                "instrument_key": key, "symbol": symbol, "isin": key.split("|")[1], "name": symbol.title(),
                "tick_size": 0.05, "lot_size": 1, "kite_token": token, "exchange_token": "1",
                "market_cap_cr": cap, "shares_outstanding": shares, "price_factor": 1.0,
                "history_complete": complete, "history_start": date(2020, 10, 1), "history_end": date(2024, 6, 28),
                "history_source": "test", "repaired_5min_bars": 0, "history_note": "", "master_note": "",
            }
            for key, symbol, cap, shares, complete, token in rows
        ]
    )
    return frame[INSTRUMENT_COLUMNS]


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    write_instrument_table(_table(), tmp_path)
    return tmp_path


def test_load_round_trip(data_dir: Path) -> None:
    table = load_instrument_table(data_dir)
    assert table["symbol"].tolist() == ["ABB", "ABBOTINDIA", "HDFCBANK", "RELIANCE", "SMALLCO"]
    instruments = {i.symbol: i for i in load_instruments(data_dir)}
    assert instruments["RELIANCE"].kite_token == 738561
    assert instruments["ABBOTINDIA"].kite_token is None
    assert instruments["RELIANCE"].instrument_key == "NSE_EQ|INE002A01018"


def test_missing_table_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InstrumentTableError, match="autotrader data build"):
        load_instrument_table(tmp_path)


def test_filter_universe_by_cap_history_and_size(data_dir: Path) -> None:
    table = load_instrument_table(data_dir)
    assert filter_universe(table, 20_000, 250, True)["symbol"].tolist() == ["RELIANCE", "HDFCBANK"]
    assert filter_universe(table, 20_000, 250, False)["symbol"].tolist() == ["RELIANCE", "HDFCBANK", "ABB"]
    assert filter_universe(table, 0, 1, True)["symbol"].tolist() == ["RELIANCE"]
    assert "ABBOTINDIA" not in filter_universe(table, 0, 250, False)["symbol"].tolist()  # unknown cap


def test_refresh_market_caps_from_closes(data_dir: Path) -> None:
    table = load_instrument_table(data_dir)
    refreshed = refresh_market_caps(table, {"RELIANCE": 3000.0, "ABBOTINDIA": 26000.0}).set_index("symbol")
    assert refreshed.loc["RELIANCE", "market_cap_cr"] == pytest.approx(6.766e9 * 3000 / 1e7)
    assert refreshed.loc["HDFCBANK", "market_cap_cr"] == 1_100_000.0  # no close: unchanged
    assert pd.isna(refreshed.loc["ABBOTINDIA", "market_cap_cr"])  # no shares: unchanged
    assert table.set_index("symbol").loc["RELIANCE", "market_cap_cr"] == 2_000_000.0  # input untouched


def test_sync_instruments_upserts(tmp_path: Path, data_dir: Path) -> None:
    engine = init_db(f"sqlite:///{tmp_path / 'db.sqlite'}")
    table = load_instrument_table(data_dir)
    assert sync_instruments(engine, table, updated_on=date(2024, 6, 3)) == 5
    changed = refresh_market_caps(table, {"RELIANCE": 3000.0})
    changed.loc[changed["symbol"] == "ABB", "instrument_key"] = "NSE_EQ|INE117A01099"  # new ISIN
    assert sync_instruments(engine, changed, updated_on=date(2024, 6, 4)) == 5
    with session_scope(engine) as session:
        rows = {r.symbol: r for r in session.exec(select(InstrumentRow)).all()}
    assert len(rows) == 5
    assert rows["RELIANCE"].market_cap_cr == pytest.approx(6.766e9 * 3000 / 1e7)
    assert rows["RELIANCE"].updated_on == date(2024, 6, 4)
    assert rows["ABB"].instrument_key == "NSE_EQ|INE117A01099"
    assert rows["ABBOTINDIA"].kite_token is None and rows["ABBOTINDIA"].market_cap_cr is None
    assert rows["HDFCBANK"].history_complete is True and rows["ABB"].history_complete is False
