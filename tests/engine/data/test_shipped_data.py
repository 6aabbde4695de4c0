"""The shipped data set: layout, size, price basis of daily vs 5-minute bars, instrument table."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from engine.data.instruments import load_instrument_table, load_instruments
from engine.storage.bars import BarStore


@pytest.fixture(scope="module")
def table(shipped_data_dir: Path) -> pd.DataFrame:
    return load_instrument_table(shipped_data_dir)


@pytest.fixture(scope="module")
def store(shipped_data_dir: Path) -> BarStore:
    return BarStore(shipped_data_dir / "bars")


def test_size_and_layout(shipped_data_dir: Path, store: BarStore) -> None:
    total = sum(p.stat().st_size for p in shipped_data_dir.rglob("*") if p.is_file())
    assert total < 20 * 1024 * 1024
    assert len(store.symbols("5min")) == 181
    assert store.symbols("5min") == store.symbols("1d")
    assert (shipped_data_dir / "README.md").exists()


def test_june_5min_bars_are_complete_and_consistent(store: BarStore) -> None:
    for symbol in ("RELIANCE", "CANBK", "ZYDUSLIFE"):
        bars = store.read(symbol, "5min")
        assert len(bars) == 19 * 75
        assert bars["ts"].iloc[0] == pd.Timestamp("2024-06-03 09:15", tz="Asia/Kolkata")
        assert bars["ts"].iloc[-1] == pd.Timestamp("2024-06-28 15:25", tz="Asia/Kolkata")
        assert (bars["high"] >= bars[["open", "close", "low"]].max(axis=1)).all()
        assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()


def test_open_outside_range_repair_is_counted(table: pd.DataFrame) -> None:
    assert table["repaired_5min_bars"].sum() == 27


def test_daily_and_5min_are_on_the_same_price_basis(store: BarStore) -> None:
    """June-2024 daily close vs the day's last 5-minute close, every symbol: the typical day within 1%
    (NSE's official close is a 30-minute VWAP, so single days differ a little more: 2024-06-04)."""
    for symbol in store.symbols("1d"):
        daily = store.read(symbol, "1d", start=date(2024, 6, 3), end=date(2024, 6, 29))
        five = store.read(symbol, "5min")
        last_5min_close = five.groupby(five["ts"].dt.date)["close"].last()
        assert len(daily) == 19, symbol
        ratio = daily["close"].to_numpy() / last_5min_close.to_numpy()
        assert abs(float(pd.Series(ratio).median()) - 1) < 0.01, symbol
        assert abs(ratio - 1).max() < 0.025, symbol


def test_price_factors_of_known_corporate_actions(table: pd.DataFrame) -> None:
    factors = table.set_index("symbol")["price_factor"]
    assert factors["RELIANCE"] == 2.0  # 1:1 bonus, Oct 2024 (adjusted set)
    assert factors["BAJFINANCE"] == 10.0  # 4:1 bonus + 1:2 split, 2025
    assert factors["CANBK"] == 0.2  # 1:5 split, May 2024 (unadjusted set, across the Apr-May hole)
    assert factors["INFY"] == 1.0


def test_history_before_a_split_is_back_adjusted(store: BarStore) -> None:
    irctc = store.read("IRCTC", "1d", start=date(2021, 10, 26), end=date(2021, 10, 30)).set_index("ts")["close"]
    assert irctc.iloc[0] == pytest.approx(4189.5 * 0.2)  # 1:5 split effective 2021-10-28
    assert 0.8 < irctc.iloc[2] / irctc.iloc[1] < 1.25


def test_history_flags(table: pd.DataFrame) -> None:
    rows = table.set_index("symbol")
    assert bool(rows.loc["RELIANCE", "history_complete"])
    assert rows.loc["RELIANCE", "history_start"] == date(2020, 10, 1)
    assert rows.loc["RELIANCE", "history_end"] == date(2025, 9, 30)
    assert not bool(rows.loc["ABB", "history_complete"])
    assert "2024-04-01..2024-05-31" in rows.loc["ABB", "history_note"]
    assert not bool(rows.loc["LTF", "history_complete"])
    assert table["history_complete"].sum() == 48


def test_instrument_identity(table: pd.DataFrame, shipped_data_dir: Path) -> None:
    rows = table.set_index("symbol")
    assert rows.loc["RELIANCE", "instrument_key"] == "NSE_EQ|INE002A01018"
    assert rows.loc["RELIANCE", "kite_token"] == 738561
    assert rows.loc["RELIANCE", "tick_size"] == 0.05
    assert (table["lot_size"] == 1).all()
    assert table["instrument_key"].is_unique and table["symbol"].is_unique
    assert rows.loc["RELIANCE", "market_cap_cr"] == pytest.approx(2_010_560.22, rel=1e-6)
    close = 2971.70  # 2024-03-28 close, unadjusted = June-2024 basis
    assert rows.loc["RELIANCE", "shares_outstanding"] == pytest.approx(2_010_560.22e7 / close, rel=1e-3)
    instruments = load_instruments(shipped_data_dir)
    assert len(instruments) == 181
    reliance = next(i for i in instruments if i.symbol == "RELIANCE")
    assert reliance.kite_token == 738561 and reliance.round_price(2950.03) == 2950.05
