"""`autotrader data import` on hostile CSVs: symbols that climb out of the store, volumes beyond int64, dates
outside any plausible history and mixed UTC offsets are rejected row by row with a reason, never a traceback."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.calendar import NseCalendar
from engine.data.importer import MAX_SYMBOL_LENGTH, ImportReport, import_path
from engine.storage.bars import BarPathError, BarStore

TODAY = date(2024, 12, 2)
DAILY = "symbol,date,open,high,low,close,volume\n"


@pytest.fixture(scope="module")
def calendar() -> NseCalendar:
    return NseCalendar.load()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _rejected(report: ImportReport, reason: str) -> list[tuple[int | None, str, str]]:
    return [(r.line, r.symbol, r.date) for r in report.rejected if r.reason == reason]


def _parquet_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.parquet"))


def test_a_traversal_symbol_is_rejected_and_nothing_lands_outside_the_store(
    tmp_path: Path, calendar: NseCalendar
) -> None:
    source = _write(tmp_path / "in" / "bars.csv", DAILY + "A/../../../../ESCAPED,2024-11-18,10,11,9,10,100\n"
                    "SBIN,2024-11-18,10,11,9,10,100\n")
    store_root = tmp_path / "deep" / "a" / "b" / "store"
    report = import_path(source, BarStore(store_root), calendar, today=TODAY)
    assert _rejected(report, "invalid_symbol") == [(2, "A/../../../../ESCAPED", "2024-11-18")]
    assert report.loaded == {"SBIN": 1}
    assert _parquet_files(tmp_path) == [store_root / "timeframe=1d" / "symbol=SBIN" / "part-0.parquet"]


@pytest.mark.parametrize("symbol", ["M&M", "BAJAJ-AUTO", "3MINDIA", "NAM-INDIA", "sbin", "A" * MAX_SYMBOL_LENGTH])
def test_nse_symbols_are_accepted(tmp_path: Path, calendar: NseCalendar, symbol: str) -> None:
    source = _write(tmp_path / "bars.csv", DAILY + f"{symbol},2024-11-18,10,11,9,10,100\n")
    report = import_path(source, BarStore(tmp_path / "store"), calendar, today=TODAY)
    assert report.loaded == {symbol.upper(): 1}
    assert report.rejected == []


@pytest.mark.parametrize(
    "symbol",
    ["..", "A/B", "A\\B", "-SBIN", "&SBIN", "SB IN", "SBIN.NS", "SBIN_EQ", "ÄBC", "SB\tIN",
     "X" * (MAX_SYMBOL_LENGTH + 1)],
)
def test_symbols_outside_the_nse_alphabet_are_rejected_with_a_reason(
    tmp_path: Path, calendar: NseCalendar, symbol: str
) -> None:
    source = _write(tmp_path / "bars.csv", DAILY + f'"{symbol}",2024-11-18,10,11,9,10,100\n')
    report = import_path(source, BarStore(tmp_path / "store"), calendar, today=TODAY)
    assert [(r.reason, r.line) for r in report.rejected] == [("invalid_symbol", 2)]
    assert "A-Z, 0-9, & and -" in report.rejected[0].detail
    assert report.loaded == {}
    assert _parquet_files(tmp_path) == []


def test_a_file_name_that_is_not_a_symbol_rejects_its_rows(tmp_path: Path, calendar: NseCalendar) -> None:
    source = _write(tmp_path / "my bars.csv", "date,open,high,low,close,volume\n2024-11-18,10,11,9,10,100\n")
    report = import_path(source, BarStore(tmp_path / "store"), calendar, today=TODAY)
    assert _rejected(report, "invalid_symbol") == [(2, "MY BARS", "2024-11-18")]


def test_the_bar_store_refuses_a_path_outside_its_root(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "store")
    bars = pd.DataFrame({"ts": [pd.Timestamp("2024-11-18", tz="Asia/Kolkata")], "open": [10.0], "high": [11.0],
                         "low": [9.0], "close": [10.0], "volume": [100]})
    for symbol in ("A/../../../../ESCAPED", "../x", "A/B"):
        with pytest.raises(BarPathError, match="outside the bar store"):
            store.write(symbol, "1d", bars)
        with pytest.raises(BarPathError):
            store.read(symbol, "1d")
    assert _parquet_files(tmp_path) == []
    assert store.write("SBIN", "1d", bars) == 1  # an ordinary symbol still works


def test_volumes_beyond_int64_negative_or_non_finite_are_rejected(tmp_path: Path, calendar: NseCalendar) -> None:
    source = _write(
        tmp_path / "VOL.csv",
        "date,open,high,low,close,volume\n"
        "2024-11-14,10,11,9,10,10000000000000000000\n"  # 1e19: wrapped to a negative int64 before
        "2024-11-18,10,11,9,10,9223372036854775808\n"  # 2**63
        "2024-11-19,10,11,9,10,1e300\n"
        "2024-11-21,10,11,9,10,-5\n"
        "2024-11-22,10,11,9,10,NaN\n"
        "2024-11-25,10,11,9,10,123456789012\n",
    )
    store = BarStore(tmp_path / "store")
    report = import_path(source, store, calendar, today=TODAY)
    assert [line for line, _, _ in _rejected(report, "volume_out_of_range")] == [2, 3, 4, 5]
    assert "int64" in report.rejected[0].detail and "10000000000000000000" in report.rejected[0].detail
    assert _rejected(report, "unparseable") == [(6, "VOL", "2024-11-22")]
    bars = store.read("VOL", "1d")
    assert bars["volume"].tolist() == [123_456_789_012]
    assert (bars["volume"] >= 0).all()


def test_dates_before_1990_or_after_today_are_rejected(tmp_path: Path, calendar: NseCalendar) -> None:
    source = _write(
        tmp_path / "OLD.csv",
        "date,open,high,low,close,volume\n"
        "0001-01-01,10,11,9,10,100\n"
        "1989-12-29,10,11,9,10,100\n"
        "1990-01-02,10,11,9,10,100\n"
        "2024-11-29,10,11,9,10,100\n"
        "2025-01-01,10,11,9,10,100\n"  # a month after TODAY
        "9999-12-31,10,11,9,10,100\n",
    )
    store = BarStore(tmp_path / "store")
    report = import_path(source, store, calendar, today=TODAY)
    assert [line for line, _, _ in _rejected(report, "date_out_of_range")] == [2, 3, 6, 7]
    assert "1990-01-01" in report.rejected[0].detail and "2024-12-04" in report.rejected[0].detail
    assert [ts.date() for ts in store.read("OLD", "1d")["ts"]] == [date(1990, 1, 2), date(2024, 11, 29)]


def test_the_upper_date_bound_follows_the_injected_today(tmp_path: Path, calendar: NseCalendar) -> None:
    source = _write(tmp_path / "NEW.csv", "date,open,high,low,close,volume\n2025-01-01,10,11,9,10,100\n")
    assert _rejected(import_path(source, BarStore(tmp_path / "a"), calendar, today=TODAY), "date_out_of_range")
    later = import_path(source, BarStore(tmp_path / "b"), calendar, today=date(2025, 1, 1))
    assert later.rejected == [] and later.loaded == {"NEW": 1}


def test_a_year_one_timestamp_with_an_offset_is_rejected_not_a_traceback(tmp_path: Path, calendar: NseCalendar) -> None:
    source = _write(
        tmp_path / "TS.csv",
        "timestamp,open,high,low,close,volume\n"
        "0001-01-01T09:15:00+05:30,10,11,9,10,100\n"
        "0001-01-01 09:20:00,10,11,9,10,100\n"
        "2024-06-03T09:15:00+05:30,10,11,9,10,100\n"
        "2024-06-03T09:20:00+05:30,10,11,9,10,100\n",
    )
    report = import_path(source, BarStore(tmp_path / "store"), calendar, today=TODAY)
    assert [line for line, _, _ in _rejected(report, "date_out_of_range")] == [2, 3]
    assert report.loaded == {"TS": 2}


def test_rows_with_a_utc_offset_other_than_the_files_are_rejected(tmp_path: Path, calendar: NseCalendar) -> None:
    source = _write(
        tmp_path / "MIX.csv",
        "timestamp,open,high,low,close,volume\n"
        "2024-06-03T09:15:00+05:30,10,11,9,10,100\n"
        "2024-06-03T03:55:00+00:00,10,11,9,10,100\n"  # = 09:25 IST, but in another offset
        "2024-06-03T09:20:00+0530,10,11,9,10,100\n"
        "2024-06-03T04:00:00Z,10,11,9,10,100\n"
        "2024-06-03T09:25:00+05:30,10,11,9,10,100\n",
    )
    store = BarStore(tmp_path / "store")
    report = import_path(source, store, calendar, today=TODAY)
    assert [line for line, _, _ in _rejected(report, "mixed_utc_offsets")] == [3, 5]
    assert "+00:00" in report.rejected[0].detail and "+05:30" in report.rejected[0].detail
    assert [ts.strftime("%H:%M") for ts in store.read("MIX", "5min")["ts"]] == ["09:15", "09:20", "09:25"]


def test_one_utc_offset_other_than_ist_is_converted(tmp_path: Path, calendar: NseCalendar) -> None:
    source = _write(
        tmp_path / "UTC.csv",
        "timestamp,open,high,low,close,volume\n2024-06-03T03:45:00Z,10,11,9,10,100\n"
        "2024-06-03T03:50:00+00:00,10,11,9,10,100\n",
    )
    store = BarStore(tmp_path / "store")
    report = import_path(source, store, calendar, today=TODAY)
    assert report.rejected == []
    assert [ts.strftime("%H:%M") for ts in store.read("UTC", "5min")["ts"]] == ["09:15", "09:20"]


def test_cli_reports_every_hostile_row_without_a_traceback(tmp_path: Path) -> None:
    source = _write(
        tmp_path / "in" / "hostile.csv",
        DAILY
        + "A/../../../../ESCAPED,2024-11-18,10,11,9,10,100\n"
        + "SBIN,2024-11-18,10,11,9,10,10000000000000000000\n"
        + "SBIN,0001-01-01,10,11,9,10,100\n"
        + "SBIN,2024-11-19,10,11,9,10,100\n",
    )
    _write(
        tmp_path / "in" / "MIX.csv",
        "timestamp,open,high,low,close,volume\n2024-06-03T09:15:00+05:30,10,11,9,10,100\n"
        "2024-06-03T09:20:00+05:30,10,11,9,10,100\n2024-06-03T03:55:00+00:00,10,11,9,10,100\n",
    )
    report_csv = tmp_path / "rejected.csv"
    store = tmp_path / "store"
    result = CliRunner().invoke(
        app, ["data", "import", str(source.parent), "--store", str(store), "--report", str(report_csv), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    summary = json.loads(result.stdout)
    assert summary["reasons"] == {
        "date_out_of_range": 1, "invalid_symbol": 1, "mixed_utc_offsets": 1, "volume_out_of_range": 1
    }
    assert summary["symbols"] == {"MIX": 2, "SBIN": 1}
    assert all(path.is_relative_to(store) for path in _parquet_files(tmp_path))
    assert "ESCAPED" in report_csv.read_text()  # the rejected symbol is in the report, not on disk
