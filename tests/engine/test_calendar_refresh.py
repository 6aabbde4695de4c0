"""Pre-open refresh of NSE holidays from Upstox's market-holidays API (the real SDK against the Upstox
sandbox), the cache beside the database, the provisional calendar past it, and the look-ahead warning."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.brokers.upstox.holidays import HolidayFormatError, UpstoxHolidays, nse_calendar_data
from engine.brokers.upstox.sandbox import UpstoxSandbox
from engine.brokers.upstox.sandbox_holidays import holiday_entry, session_entry
from engine.calendar import holidays_cache_file, load_calendar
from engine.clock import SteppedClock
from engine.models import IST
from engine.session import stages
from engine.session.day import CALENDAR_WARNING, refresh_calendar

PRE_OPEN = time(8, 30)
StartUpstox = Callable[[date], UpstoxSandbox]
runner = CliRunner()


def _clock(day: date) -> SteppedClock:
    return SteppedClock(datetime.combine(day, PRE_OPEN, tzinfo=IST))


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A day that uses Upstox (live feed), with its database in tmp_path."""
    url = f"sqlite:///{tmp_path / 'autotrader.db'}"
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", url)
    monkeypatch.setenv("AUTOTRADER_BROKER", "paper")
    monkeypatch.setenv("AUTOTRADER_FEED__SOURCE", "upstox")
    monkeypatch.delenv("AUTOTRADER_CALENDAR_FILE", raising=False)
    return url


@pytest.fixture
def upstox_at(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StartUpstox]:
    """Starts an Upstox sandbox whose clock is on a given day (its year list is that year's) and
    points UPSTOX_API_URL at it; stops it after the test."""
    started: list[UpstoxSandbox] = []

    def start(day: date) -> UpstoxSandbox:
        server = UpstoxSandbox(clock=_clock(day)).start()
        started.append(server)
        for name in ("UPSTOX_API_URL", "UPSTOX_ORDER_URL"):
            monkeypatch.setenv(name, server.url)
        monkeypatch.setenv("UPSTOX_ACCESS_TOKEN", server.access_token)
        return server

    yield start
    for server in started:
        server.stop()


def _pre_open(day: date) -> dict[str, Any]:
    return refresh_calendar(stages.open_trading_day(day, _clock(day)))


def _cli(day: str) -> dict[str, Any]:
    result = runner.invoke(app, ["calendar", day, "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def _publish_2027(sandbox: UpstoxSandbox) -> None:
    book = sandbox.holidays
    book.put(holiday_entry(date(2027, 1, 26), "Republic Day"))
    book.put(holiday_entry(date(2027, 3, 22), "Holi"))
    book.put(session_entry(date(2027, 1, 31), "Union Budget, Sunday", [(time(9, 15), time(15, 30))]))


# ---------------------------------------------------------------- the refresh, end to end


def test_a_refreshed_year_list_is_used_marks_days_known_and_survives_a_restart(
    upstox_at: StartUpstox, database_url: str
) -> None:
    sandbox = upstox_at(date(2027, 1, 4))
    _publish_2027(sandbox)
    assert _cli("2027-03-22")["provisional"] is True  # before: a Monday past every source

    result = _pre_open(date(2027, 1, 4))

    assert result["fetched"] == 3 and result["not_refreshed"] is None
    assert (result["known_days_ahead"], result["provisional_from"], result["warning"]) == (30, None, None)
    assert sandbox.calls("GET", "/v2/market/holidays") == 1
    cache = holidays_cache_file(database_url)
    assert cache.parent == Path(database_url.removeprefix("sqlite:///")).parent
    assert json.loads(cache.read_text())["covered"] == [["2027-01-01", "2027-12-31"]]
    # a new process (the CLI) reads the cache: known holidays, and known ordinary days
    holi = _cli("2027-03-22")
    assert (holi["trading_day"], holi["holiday"], holi["provisional"]) == (False, "Holi", False)
    assert {k: _cli("2027-06-01")[k] for k in ("trading_day", "provisional")} == {"trading_day": True,
                                                                                  "provisional": False}
    assert _cli("2028-01-03")["provisional"] is True


def test_a_weekend_special_session_from_the_source_is_a_trading_day(
    upstox_at: StartUpstox, database_url: str
) -> None:
    sandbox = upstox_at(date(2027, 1, 4))
    sunday = date(2027, 1, 31)
    _publish_2027(sandbox)
    before = stages.open_trading_day(sunday, _clock(sunday))
    assert before.skip_reason == "2027-01-31 is not an NSE trading day (Sunday)"

    _pre_open(date(2027, 1, 4))

    context = stages.open_trading_day(sunday, _clock(sunday))  # what the Sunday's flows see
    assert context.skip_reason is None and context.session is not None
    assert (context.session.kind, context.session.open_hhmm, context.session.close_hhmm) == ("special", "09:15",
                                                                                             "15:30")
    payload = _cli("2027-01-31")
    assert (payload["trading_day"], payload["kind"], payload["note"], payload["provisional"]) == (
        True, "special", "Union Budget, Sunday", False)


def test_days_past_the_year_list_are_asked_date_by_date(upstox_at: StartUpstox, database_url: str) -> None:
    sandbox = upstox_at(date(2026, 12, 4))
    sandbox.holidays.put(holiday_entry(date(2027, 1, 1), "New Year special closure"))

    result = _pre_open(date(2026, 12, 4))  # the year list is 2026's: 2027-01-01..03 asked one by one

    assert sandbox.calls("GET", "/v2/market/holidays") == 1
    assert [sandbox.calls("GET", f"/v2/market/holidays/2027-01-0{n}") for n in (1, 2, 3)] == [1, 1, 1]
    assert result["fetched"] == 18 + 1  # 2026's 16 holidays and 2 special sessions, then the one 2027 answer
    calendar = load_calendar(None, holidays_cache_file(database_url))
    assert calendar.holiday_name(date(2027, 1, 1)) == "New Year special closure"
    assert not calendar.is_provisional(date(2027, 1, 1))
    assert calendar.is_provisional(date(2027, 1, 2))  # an empty answer proves nothing
    assert (result["known_days_ahead"], result["provisional_from"]) == (28, "2027-01-02")


def test_the_shipped_facts_hold_after_a_refresh_of_their_year(upstox_at: StartUpstox, database_url: str) -> None:
    sandbox = upstox_at(date(2024, 6, 3))
    assert _pre_open(date(2024, 6, 3))["fetched"] == 16 + 4  # 2024 of the shipped calendar
    assert sandbox.calls("GET", "/v2/market/holidays") == 1
    calendar = load_calendar(None, holidays_cache_file(database_url))
    assert calendar.session(date(2024, 11, 20)) is None
    assert calendar.holiday_name(date(2024, 11, 20)) == "Assembly Elections in Maharashtra"
    muhurat = calendar.session(date(2024, 11, 1))
    assert muhurat is not None and muhurat.kind == "muhurat"
    assert (muhurat.open_hhmm, muhurat.close_hhmm, muhurat.pre_open_start) == (
        "18:00", "19:00", datetime(2024, 11, 1, 17, 45, tzinfo=IST))
    saturday = calendar.session(date(2024, 1, 20))
    assert saturday is not None and (saturday.kind, saturday.open_hhmm, saturday.close_hhmm) == (
        "special", "09:15", "15:30")
    drill = calendar.session(date(2024, 3, 2))  # a split session comes back as two NSE timings
    assert drill is not None and drill.breaks == (
        (datetime(2024, 3, 2, 10, 0, tzinfo=IST), datetime(2024, 3, 2, 11, 30, tzinfo=IST)),)
    assert not calendar.is_trading_day(date(2026, 1, 26))
    assert calendar.trading_days(date(2024, 6, 1), date(2024, 6, 30)) == load_calendar().trading_days(
        date(2024, 6, 1), date(2024, 6, 30))


# ---------------------------------------------------------------- the look-ahead warning and failures


def test_fewer_than_30_known_days_ahead_warns_with_a_stable_prefix(
    upstox_at: StartUpstox, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = upstox_at(date(2026, 12, 4))
    with caplog.at_level(logging.WARNING, logger="engine.session.day"):
        result = _pre_open(date(2026, 12, 4))
    assert result["not_refreshed"] is None and sandbox.calls("GET", "/v2/market/holidays") == 1
    assert (result["known_days_ahead"], result["provisional_from"]) == (27, "2027-01-01")
    assert result["warning"].startswith(f"{CALENDAR_WARNING}: only 27 of the 30 days after 2026-12-04 are known")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [result["warning"]]


def test_a_failed_fetch_does_not_fail_the_day_while_the_cache_covers_30_days(
    upstox_at: StartUpstox, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = upstox_at(date(2027, 1, 4))
    _publish_2027(sandbox)
    assert _pre_open(date(2027, 1, 4))["warning"] is None
    sandbox.inject_fault("GET", "/v2/market/holidays", 500)
    with caplog.at_level(logging.INFO, logger="engine.session.day"):
        result = _pre_open(date(2027, 1, 5))
    assert result["fetched"] is None and "fetching holidays from Upstox failed" in result["not_refreshed"]
    assert (result["warning"], result["known_days_ahead"]) == (None, 30)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert load_calendar(None, holidays_cache_file(database_url)).holiday_name(date(2027, 1, 26)) == "Republic Day"

    sandbox.stop()  # the network is gone: still no exception
    assert _pre_open(date(2027, 1, 6))["warning"] is None


def test_a_failed_fetch_without_coverage_warns_and_never_raises(
    upstox_at: StartUpstox, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = upstox_at(date(2026, 12, 4))
    monkeypatch.setenv("UPSTOX_ACCESS_TOKEN", "")  # the adapter refuses to start without a token
    result = _pre_open(date(2026, 12, 4))
    assert result["fetched"] is None and "UPSTOX_ACCESS_TOKEN" in result["not_refreshed"]
    assert result["warning"].startswith(CALENDAR_WARNING) and "UPSTOX_ACCESS_TOKEN is missing" in result["warning"]
    assert sandbox.calls("GET", "/v2/market/holidays") == 0


def test_a_replayed_day_asks_no_broker(
    upstox_at: StartUpstox, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = upstox_at(date(2024, 6, 4))
    monkeypatch.setenv("AUTOTRADER_FEED__SOURCE", "replay")
    result = _pre_open(date(2024, 6, 4))
    assert result == {"fetched": None, "not_refreshed": "no Upstox connection (broker paper, feed replay)",
                      "known_days_ahead": 30, "provisional_from": None, "warning": None}
    assert sandbox.request_log == []
    assert not holidays_cache_file(database_url).exists()


def test_a_corrupt_cache_is_ignored_then_rewritten(upstox_at: StartUpstox, database_url: str) -> None:
    sandbox = upstox_at(date(2027, 1, 4))
    cache = holidays_cache_file(database_url)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("{not json")
    assert load_calendar(None, cache).is_provisional(date(2027, 6, 1))  # ignored, not fatal
    _publish_2027(sandbox)
    assert _pre_open(date(2027, 1, 4))["fetched"] == 3
    assert not load_calendar(None, cache).is_provisional(date(2027, 6, 1))


def test_the_user_calendar_file_keeps_priority_over_the_broker(
    upstox_at: StartUpstox, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = upstox_at(date(2027, 1, 4))
    _publish_2027(sandbox)
    _pre_open(date(2027, 1, 4))
    mine = tmp_path / "mine.toml"
    mine.write_text('[holidays]\n"2027-01-31" = "My own closure"\n'
                    '[[sessions]]\ndate = "2027-03-22"\nkind = "special"\nopen = "10:00"\nclose = "12:00"\n')
    monkeypatch.setenv("AUTOTRADER_CALENDAR_FILE", str(mine))
    assert (_cli("2027-01-31")["trading_day"], _cli("2027-01-31")["holiday"]) == (False, "My own closure")
    assert (_cli("2027-03-22")["trading_day"], _cli("2027-03-22")["session_open"]) == (True, "10:00")


# ---------------------------------------------------------------- the SDK's shapes


def test_upstox_shapes_map_to_nse_days(upstox_at: StartUpstox) -> None:
    sandbox = upstox_at(date(2026, 12, 4))
    new_year = {"date": "2024-01-01", "description": "New Year Day", "holiday_type": "TRADING_HOLIDAY",
                "closed_exchanges": [], "open_exchanges": [
                    {"exchange": "MCX", "start_time": 1704079800000, "end_time": 1704108600000},
                    {"exchange": "NSE", "start_time": 1704080700000, "end_time": 1704103200000}]}
    settlement = {"date": "2024-02-19", "description": "Shivaji Jayanti", "holiday_type": "SETTLEMENT_HOLIDAY",
                  "closed_exchanges": [], "open_exchanges": []}
    mcx_only = {"date": "2024-02-20", "description": "MCX evening", "holiday_type": "TRADING_HOLIDAY",
                "closed_exchanges": ["MCX"], "open_exchanges": []}
    data = nse_calendar_data([new_year, settlement, mcx_only])
    assert data.holidays == {}
    assert data.sessions[date(2024, 1, 1)].kind == "normal"  # Upstox's "holiday" on which NSE trades
    assert data.covered == [(date(2024, 1, 1), date(2024, 12, 31))]
    with pytest.raises(HolidayFormatError, match="not epoch milliseconds"):
        nse_calendar_data([{**new_year, "open_exchanges": [{"exchange": "NSE", "start_time": "09:15",
                                                             "end_time": 1704103200000}]}])
    with pytest.raises(HolidayFormatError, match="'2024-13-01' is not YYYY-MM-DD"):
        nse_calendar_data([{**settlement, "date": "2024-13-01"}])
    # the sandbox answers in the SDK's shape: the real SDK reads it through the same client
    with UpstoxHolidays(sandbox.config(access_token="unused")) as upstox:
        entry = upstox.on(date(2026, 11, 8))[0]
    assert set(entry) == {"date", "description", "holiday_type", "closed_exchanges", "open_exchanges"}
    assert entry["open_exchanges"][0] == {"exchange": "NSE", "start_time": 1794141900000, "end_time": 1794145500000}
