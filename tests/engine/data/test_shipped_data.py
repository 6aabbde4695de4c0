"""The shipped data set: layout, size, price basis of daily vs 5-minute bars, instrument table."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from engine.data.build import FIVE_MIN_DIR, FULL_YEAR_DIR, read_symbol_5min
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


FULL_YEAR = ["AXISBANK", "BAJFINANCE", "BHARTIARTL", "HDFCBANK", "ICICIBANK", "INFY", "ITC", "KOTAKBANK", "LT",
             "RELIANCE", "SBIN", "SUNPHARMA", "TATAMOTORS", "TATASTEEL", "TCS"]
JUNE_START = date(2024, 6, 3)


def test_june_5min_bars_are_complete_and_consistent(store: BarStore) -> None:
    for symbol in ("RELIANCE", "CANBK", "ZYDUSLIFE"):
        bars = store.read(symbol, "5min", start=JUNE_START)
        assert len(bars) == 19 * 75
        assert bars["ts"].iloc[0] == pd.Timestamp("2024-06-03 09:15", tz="Asia/Kolkata")
        assert bars["ts"].iloc[-1] == pd.Timestamp("2024-06-28 15:25", tz="Asia/Kolkata")
        assert (bars["high"] >= bars[["open", "close", "low"]].max(axis=1)).all()
        assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()


def test_a_year_of_5min_bars_for_15_symbols_and_june_for_the_rest(store: BarStore) -> None:
    """2023-07-03 .. 2024-06-28, 247 days, with NSE's special sessions as they were traded."""
    for symbol in store.symbols("5min"):
        first_day = store.read(symbol, "5min", end=date(2024, 6, 4))["ts"].iloc[0].date()
        assert first_day == (date(2023, 7, 3) if symbol in FULL_YEAR else JUNE_START), symbol
    for symbol in FULL_YEAR:
        bars = store.read(symbol, "5min")
        per_day = bars.groupby(bars["ts"].dt.date)["ts"]
        assert per_day.ngroups == 247 and len(bars) == (18_345 if symbol == "RELIANCE" else 18_354), symbol
        assert per_day.size()[date(2023, 11, 12)] == 12  # Muhurat, 18:15 .. 19:10
        assert per_day.size()[date(2024, 3, 2)] == 21  # Saturday DR drill: 09:15-10:00 and 11:30-12:30
        assert (bars["high"] >= bars[["open", "close", "low"]].max(axis=1)).all()
        assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    jio_demerger = store.read("RELIANCE", "5min", start=date(2023, 7, 20), end=date(2023, 7, 21))
    assert len(jio_demerger) == 66 and jio_demerger["ts"].iloc[0].time() == time(10, 0)


def test_open_outside_range_repair_is_counted(table: pd.DataFrame) -> None:
    assert table["repaired_5min_bars"].sum() == 27


def test_daily_and_5min_are_on_the_same_price_basis(store: BarStore) -> None:
    """Every day of a symbol's 5-minute bars (the year for 15 symbols) has a daily bar whose close is the
    day's last 5-minute close within 2.5% (NSE's official close is a 30-minute VWAP, so single days differ:
    2024-06-04), the typical day within 0.2% — TATASTEEL within 1% (see the next test)."""
    for symbol in store.symbols("1d"):
        five = store.read(symbol, "5min")
        last_5min_close = five.groupby(five["ts"].dt.date)["close"].last()
        daily = store.read(symbol, "1d", start=last_5min_close.index[0], end=date(2024, 6, 29))
        assert list(daily["ts"].dt.date) == list(last_5min_close.index), symbol
        ratio = daily["close"].to_numpy() / last_5min_close.to_numpy()
        assert abs(float(pd.Series(ratio).median()) - 1) < (0.01 if symbol == "TATASTEEL" else 0.002), symbol
        assert abs(ratio - 1).max() < 0.025, symbol


def test_tatasteel_5min_vendor_prices_are_the_traded_ones_less_the_fy24_dividend(
    store: BarStore, table: pd.DataFrame
) -> None:
    """The 5-minute vendor subtracted the Rs 3.60 dividend (ex-date 2024-06-21) from every earlier bar; the
    daily bars keep one factor fitted on June 2024 (so the replay days stay as shipped), which leaves
    daily close / last 5-minute close between 0.977 and 1.017 over the year."""
    factor = float(table.set_index("symbol").loc["TATASTEEL", "price_factor"])
    five = store.read("TATASTEEL", "5min")
    first_open = five.groupby(five["ts"].dt.date)["open"].first()
    daily = store.read("TATASTEEL", "1d", start=date(2023, 7, 3), end=date(2024, 6, 29))
    offset = pd.Series(daily["open"].to_numpy() / factor - first_open.to_numpy(), index=first_open.index).round(2)
    assert (offset[offset.index < date(2024, 6, 21)] == 3.60).mean() > 0.9
    assert (offset[offset.index >= date(2024, 6, 21)] == 0).all()


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


def test_the_build_takes_the_year_only_if_its_june_rows_are_the_june_files(tmp_path: Path) -> None:
    june_dir, year_dir = tmp_path / FIVE_MIN_DIR, tmp_path / FULL_YEAR_DIR
    june_dir.mkdir(parents=True)
    year_dir.mkdir(parents=True)
    header = "date,open,high,low,close,volume\n"
    june_row = "2024-06-03 09:15:00+05:30,10,11,9,10.5,100\n"
    (june_dir / "ONLYJUNE.csv").write_text(header + june_row)
    (june_dir / "YEAR.csv").write_text(header + june_row)
    (year_dir / "YEAR.csv").write_text(header + "2023-07-03 09:15:00+05:30,8,9,7,8.5,50\n" + june_row)
    assert len(read_symbol_5min(tmp_path, "ONLYJUNE")) == 1
    assert list(read_symbol_5min(tmp_path, "YEAR")["open"]) == [8, 10]
    (year_dir / "YEAR.csv").write_text(header + june_row.replace("10.5", "10.4"))
    with pytest.raises(ValueError, match=r"YEAR: .*full_year differs from .* on the June-2024 days"):
        read_symbol_5min(tmp_path, "YEAR")


def test_shipped_bars_are_written_compact(store: BarStore) -> None:
    """zstd level 19, delta-coded times, byte-split prices: what keeps the year inside 20 MB."""
    row_group = pq.ParquetFile(store.path("RELIANCE", "5min")).metadata.row_group(0)
    columns = {row_group.column(i).path_in_schema: row_group.column(i) for i in range(row_group.num_columns)}
    assert "DELTA_BINARY_PACKED" in columns["ts"].encodings and "BYTE_STREAM_SPLIT" in columns["close"].encodings
    assert {column.compression for column in columns.values()} == {"ZSTD"}
