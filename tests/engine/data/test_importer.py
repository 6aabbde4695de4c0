"""`autotrader data import`: bad rows are rejected with reasons, duplicates resolved by the PrevClose chain."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.calendar import NseCalendar
from engine.data.importer import ImportReport, gap_days, import_path
from engine.storage.bars import BarStore

RESOURCES = Path(__file__).parent / "resources"
TODAY = date(2024, 12, 2)  # the importer's clock: later dates are rejected


@pytest.fixture(scope="module")
def calendar() -> NseCalendar:
    return NseCalendar.load()


def _by_reason(report: ImportReport, reason: str) -> list[str]:
    return sorted(r.date for r in report.rejected if r.reason == reason)


def test_raw_nse_file_duplicates_follow_the_prevclose_chain(tmp_path: Path, calendar: NseCalendar) -> None:
    store = BarStore(tmp_path)
    report = import_path(RESOURCES / "SBIN_raw_excerpt.csv", store, calendar, today=TODAY)
    bars = store.read("SBIN", "1d").set_index(store.read("SBIN", "1d")["ts"].dt.date)
    assert bars.loc[date(2024, 3, 28), "volume"] == 21_705_116  # not the 16-share T+0 row
    assert bars.loc[date(2022, 11, 14), "close"] == 592.55  # PrevClose 601.30 = 2022-11-11 close
    assert bars.loc[date(2022, 11, 3), "close"] == 584.90  # PrevClose 573.85 = 2022-11-02 close
    assert bars.loc[date(2000, 4, 11), "close"] == 220.75  # chain: PrevClose 221.30 = 04-10 close
    assert _by_reason(report, "duplicate_date") == [
        "2000-04-03", "2000-04-04", "2000-04-05", "2000-04-10", "2000-04-11", "2022-11-03", "2022-11-14", "2024-03-28"
    ]
    assert _by_reason(report, "non_positive_price") == ["2000-04-03", "2000-04-27"]
    assert report.rows_read == 46
    assert report.rows_loaded == 46 - 8 - 2
    assert report.timeframes == {"SBIN": "1d"}
    assert bars.index.is_monotonic_increasing


def test_ohlc_inconsistent_1990s_rows_are_rejected(tmp_path: Path, calendar: NseCalendar) -> None:
    report = import_path(RESOURCES / "ITC_raw_1996_excerpt.csv", BarStore(tmp_path), calendar, today=TODAY)
    assert _by_reason(report, "ohlc_inconsistent") == ["1996-03-08", "1996-03-11", "1996-03-12", "1996-03-13",
                                                       "1996-03-22"]
    detail = next(r.detail for r in report.rejected if r.date == "1996-03-22")
    assert detail == "O=235.45 H=234.0 L=216.0 C=222.1"
    assert report.rows_loaded == 6
    assert report.gaps == []  # 1996 is outside the calendar: gaps not checked


def test_plain_daily_file_every_kind_of_rejection(tmp_path: Path, calendar: NseCalendar) -> None:
    store = BarStore(tmp_path)
    report = import_path(RESOURCES / "plain" / "INFY.csv", store, calendar, today=TODAY)
    assert _by_reason(report, "unparseable") == ["2024-11-21", "2024-13-28"]
    assert _by_reason(report, "not_a_trading_day") == ["2024-11-20"]
    assert _by_reason(report, "ohlc_inconsistent") == ["2024-11-25"]
    assert _by_reason(report, "non_positive_price") == ["2024-11-26"]
    assert _by_reason(report, "duplicate_date") == ["2024-11-29"]
    assert gap_days(report, "INFY") == [date(2024, 11, 21), date(2024, 11, 25), date(2024, 11, 26), date(2024, 11, 28)]
    lines = {r.date: r.line for r in report.rejected if r.line is not None}
    assert lines["2024-11-21"] == 6
    bars = store.read("INFY", "1d")
    assert [ts.day for ts in bars["ts"]] == [14, 18, 19, 22, 27, 29]
    assert bars["close"].iloc[-1] == 1921.0  # larger-volume row of the duplicate date


def test_non_finite_numbers_are_rejected_not_stored(tmp_path: Path, calendar: NseCalendar) -> None:
    source = tmp_path / "TCS.csv"
    source.write_text(
        "date,open,high,low,close,volume\n"
        "2024-11-18,10,11,9,10,100\n"
        "2024-11-19,10,inf,9,10,100\n"
        "2024-11-21,10,11,9,10,Infinity\n"
    )
    store = BarStore(tmp_path / "bars")
    report = import_path(source, store, calendar, today=TODAY)
    assert _by_reason(report, "unparseable") == ["2024-11-19", "2024-11-21"]
    assert [ts.day for ts in store.read("TCS", "1d")["ts"]] == [18]


def test_empty_or_headerless_file_is_reported_not_a_crash(tmp_path: Path, calendar: NseCalendar) -> None:
    folder = tmp_path / "csvs"
    folder.mkdir()
    (folder / "EMPTY.csv").write_text("")
    (folder / "WIPRO.csv").write_text("date,open,high,low,close,volume\n2024-11-18,10,11,9,10,100\n")
    report = import_path(folder, BarStore(tmp_path / "bars"), calendar, today=TODAY)
    assert list(report.failed_files) == ["EMPTY.csv"]
    assert report.loaded == {"WIPRO": 1}


def test_plain_5min_file_is_detected(tmp_path: Path, calendar: NseCalendar) -> None:
    source = tmp_path / "TCS.csv"  # the file name is the symbol: TCS_5MIN would not be one (no "_" at NSE)
    shutil.copy(RESOURCES / "plain" / "TCS_5min.csv", source)
    store = BarStore(tmp_path / "bars")
    report = import_path(source, store, calendar, today=TODAY)
    assert report.timeframes == {"TCS": "5min"}
    assert len(store.read("TCS", "5min")) == 12
    assert report.rejected == []


def test_missing_5min_bars_are_reported_as_gaps(tmp_path: Path, calendar: NseCalendar) -> None:
    source = tmp_path / "TCS.csv"
    lines = (RESOURCES / "plain" / "TCS_5min.csv").read_text().splitlines()
    source.write_text("\n".join(lines[:4] + lines[6:]) + "\n")  # drop the 09:30 and 09:35 bars
    report = import_path(source, BarStore(tmp_path / "bars"), calendar, today=TODAY)
    assert [r.date for r in report.gaps] == ["2024-06-03T09:30:00+05:30", "2024-06-03T09:35:00+05:30"]


def test_folder_import_reports_unsupported_files_and_merges(tmp_path: Path, calendar: NseCalendar) -> None:
    folder = tmp_path / "in"
    shutil.copytree(RESOURCES / "plain", folder)
    store = BarStore(tmp_path / "bars")
    first = import_path(folder, store, calendar, today=TODAY)
    assert "not_bars.csv" in first.failed_files
    assert "unsupported columns" in first.failed_files["not_bars.csv"]
    assert set(first.loaded) == {"INFY"}
    named_by_file = [r for r in first.rejected if r.file == "TCS_5min.csv"]
    assert len(named_by_file) == 12
    assert {(r.reason, r.symbol) for r in named_by_file} == {("invalid_symbol", "TCS_5MIN")}
    again = import_path(folder / "INFY.csv", store, calendar, today=TODAY)
    assert again.rows_loaded == 6
    assert len(store.read("INFY", "1d")) == 6  # merged, not duplicated


def test_cli_json_summary_and_rejects_csv(tmp_path: Path) -> None:
    report_csv = tmp_path / "rejected.csv"
    result = CliRunner().invoke(
        app,
        ["data", "import", str(RESOURCES / "plain" / "INFY.csv"), "--store", str(tmp_path / "bars"),
         "--report", str(report_csv), "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows_loaded"] == 6
    assert summary["rows_rejected"] == 6
    assert summary["gaps"] == 4
    assert summary["reasons"]["unparseable"] == 2
    with report_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10
    assert {"file", "line", "symbol", "date", "reason", "detail"} == set(rows[0])


def test_cli_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "import", str(tmp_path / "nope"), "--store", str(tmp_path)])
    assert result.exit_code == 2
    assert "nope does not exist" in " ".join(result.output.split())


def test_cli_nothing_importable_is_an_error_with_exit_code_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["data", "import", str(RESOURCES / "plain" / "not_bars.csv"), "--store", str(tmp_path / "bars"),
         "--report", str(tmp_path / "rejected.csv"), "--json"],
    )
    assert result.exit_code == 2
    assert "no file could be imported" in result.output and "not_bars.csv" in result.output
    assert json.loads(result.stdout)["failed_files"]  # the summary is still printed, as JSON only
