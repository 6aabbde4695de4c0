"""NSE calendar: the shipped list, special sessions, overrides and the `autotrader calendar` command."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.calendar import CalendarError, NseCalendar
from engine.models import IST
from engine.storage.bars import BarStore


@pytest.fixture(scope="module")
def calendar() -> NseCalendar:
    return NseCalendar.load()


def test_election_holiday_2024_11_20_is_closed(calendar: NseCalendar) -> None:
    assert not calendar.is_trading_day(date(2024, 11, 20))
    assert calendar.session(date(2024, 11, 20)) is None
    assert calendar.holiday_name(date(2024, 11, 20)) == "Assembly Elections in Maharashtra"


def test_holidays_pandas_market_calendars_misses(calendar: NseCalendar) -> None:
    assert not calendar.is_trading_day(date(2024, 1, 22))  # Ram Mandir consecration, announced late
    assert not calendar.is_trading_day(date(2026, 1, 26))  # Republic Day
    assert not calendar.is_trading_day(date(2026, 1, 15))  # Maharashtra municipal elections


def test_muhurat_2024_has_its_own_evening_session(calendar: NseCalendar) -> None:
    session = calendar.session(date(2024, 11, 1))
    assert session is not None
    assert session.kind == "muhurat"
    assert session.open == datetime(2024, 11, 1, 18, 0, tzinfo=IST)
    assert session.close == datetime(2024, 11, 1, 19, 0, tzinfo=IST)
    assert session.pre_open_start == datetime(2024, 11, 1, 17, 45, tzinfo=IST)
    assert not session.is_open_at(datetime(2024, 11, 1, 10, 0, tzinfo=IST))
    assert session.is_open_at(datetime(2024, 11, 1, 18, 30, tzinfo=IST))


@pytest.mark.parametrize(
    ("day", "open_hhmm", "close_hhmm"),
    [(date(2023, 11, 12), "18:15", "19:15"), (date(2025, 10, 21), "13:45", "14:45")],
)
def test_other_muhurat_sessions(calendar: NseCalendar, day: date, open_hhmm: str, close_hhmm: str) -> None:
    session = calendar.session(day)
    assert session is not None and session.kind == "muhurat"
    assert (session.open_hhmm, session.close_hhmm) == (open_hhmm, close_hhmm)


def test_saturday_full_session_2024_01_20(calendar: NseCalendar) -> None:
    session = calendar.session(date(2024, 1, 20))
    assert session is not None
    assert session.kind == "special"
    assert (session.open_hhmm, session.close_hhmm) == ("09:15", "15:30")
    assert session.breaks == ()


def test_dr_drill_saturday_is_split_in_two(calendar: NseCalendar) -> None:
    session = calendar.session(date(2024, 3, 2))
    assert session is not None
    assert (session.open_hhmm, session.close_hhmm) == ("09:15", "12:30")
    assert session.is_open_at(datetime(2024, 3, 2, 9, 55, tzinfo=IST))
    assert not session.is_open_at(datetime(2024, 3, 2, 10, 30, tzinfo=IST))
    assert session.is_open_at(datetime(2024, 3, 2, 11, 30, tzinfo=IST))


def test_normal_day_2025_09_30(calendar: NseCalendar) -> None:
    session = calendar.session(date(2025, 9, 30))
    assert session is not None
    assert session.kind == "normal"
    assert session.pre_open_start == datetime(2025, 9, 30, 9, 0, tzinfo=IST)
    assert session.pre_open_end == datetime(2025, 9, 30, 9, 8, tzinfo=IST)
    assert session.open == datetime(2025, 9, 30, 9, 15, tzinfo=IST)
    assert session.close == datetime(2025, 9, 30, 15, 30, tzinfo=IST)


def test_ordinary_weekend_is_closed(calendar: NseCalendar) -> None:
    assert not calendar.is_trading_day(date(2024, 6, 8))


def test_next_and_previous_trading_day_skip_holidays(calendar: NseCalendar) -> None:
    assert calendar.next_trading_day(date(2024, 11, 19)) == date(2024, 11, 21)
    assert calendar.previous_trading_day(date(2024, 11, 21)) == date(2024, 11, 19)
    assert calendar.next_trading_day(date(2024, 1, 19)) == date(2024, 1, 20)  # Saturday session
    assert calendar.next_trading_day(date(2024, 1, 20)) == date(2024, 1, 23)  # 22nd closed


def test_trading_days_june_2024_matches_the_replay_days(calendar: NseCalendar) -> None:
    days = calendar.trading_days(date(2024, 6, 1), date(2024, 6, 30))
    assert len(days) == 19
    assert date(2024, 6, 17) not in days  # Bakri Id


def test_past_every_source_the_answer_is_provisional_weekdays_and_fixed_holidays(calendar: NseCalendar) -> None:
    assert not calendar.is_provisional(date(2026, 12, 31)) and calendar.is_provisional(date(2027, 1, 1))
    assert calendar.is_provisional(date(2017, 12, 29))  # before the shipped years too
    assert calendar.is_trading_day(date(2030, 1, 1))  # a Tuesday
    assert not calendar.is_trading_day(date(2027, 1, 2))  # a Saturday
    fixed = [date(2027, 1, 26), date(2027, 5, 1), date(2028, 8, 15), date(2028, 10, 2), date(2028, 12, 25)]
    assert [calendar.holiday_name(day) for day in fixed] == [
        "Republic Day", "Maharashtra Day", "Independence Day", "Mahatma Gandhi Jayanti", "Christmas"]
    assert not any(calendar.is_trading_day(day) for day in fixed)
    assert calendar.next_trading_day(date(2027, 1, 25)) == date(2027, 1, 27)
    assert calendar.first_provisional_day(date(2026, 12, 4), 30) == date(2027, 1, 1)
    assert calendar.first_provisional_day(date(2026, 11, 1), 30) is None


def test_user_file_overrides_and_extends(tmp_path: Path) -> None:
    override = tmp_path / "mine.toml"
    override.write_text(
        'last_day = "2027-12-31"\n'
        '[holidays]\n"2025-09-30" = "Invented closure"\n'
        '[[sessions]]\ndate = "2024-11-20"\nkind = "special"\nopen = "10:00"\nclose = "12:00"\n'
    )
    calendar = NseCalendar.load(override)
    assert not calendar.is_trading_day(date(2025, 9, 30))
    session = calendar.session(date(2024, 11, 20))
    assert session is not None and session.open_hhmm == "10:00"
    assert calendar.is_trading_day(date(2027, 3, 1))


def test_malformed_user_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sessions]]\ndate = "2024-11-20"\nopen = "19:00"\nclose = "18:00"\n')
    with pytest.raises(CalendarError, match="open 19:00:00 must be before close"):
        NseCalendar.load(bad)


def test_every_shipped_daily_bar_is_on_a_trading_day(calendar: NseCalendar, shipped_data_dir: Path) -> None:
    store = BarStore(shipped_data_dir / "bars")
    symbols = store.symbols("1d")
    assert len(symbols) == 181
    off_days = {
        symbol: [d for d in {ts.date() for ts in store.read(symbol, "1d")["ts"]} if not calendar.is_trading_day(d)]
        for symbol in symbols
    }
    assert {s: d for s, d in off_days.items() if d} == {}


runner = CliRunner()


def _json(day: str) -> dict[str, object]:
    result = runner.invoke(app, ["calendar", day, "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, object] = json.loads(result.stdout)
    return payload


def test_cli_closed_day_json() -> None:
    payload = _json("2024-11-20")
    assert {k: payload[k] for k in ("date", "trading_day", "session_open", "session_close")} == {
        "date": "2024-11-20",
        "trading_day": False,
        "session_open": None,
        "session_close": None,
    }


@pytest.mark.parametrize(
    ("day", "open_hhmm", "close_hhmm"),
    [("2025-09-30", "09:15", "15:30"), ("2024-11-01", "18:00", "19:00"), ("2024-01-20", "09:15", "15:30")],
)
def test_cli_trading_day_json(day: str, open_hhmm: str, close_hhmm: str) -> None:
    payload = _json(day)
    assert payload["trading_day"] is True
    assert (payload["session_open"], payload["session_close"]) == (open_hhmm, close_hhmm)


def test_cli_2027_01_04_past_the_shipped_calendar_is_a_provisional_normal_day() -> None:
    assert _json("2027-01-04") == {
        "date": "2027-01-04", "trading_day": True, "session_open": "09:15", "session_close": "15:30",
        "kind": "normal", "pre_open_start": "09:00", "pre_open_end": "09:08", "breaks": [], "holiday": None,
        "note": "", "timezone": "Asia/Kolkata", "provisional": True,
    }


def test_cli_2027_01_26_is_a_provisional_holiday() -> None:
    payload = _json("2027-01-26")
    assert {k: payload[k] for k in ("trading_day", "holiday", "provisional")} == {
        "trading_day": False, "holiday": "Republic Day", "provisional": True}
    result = runner.invoke(app, ["calendar", "2027-01-26"])
    assert result.exit_code == 0
    assert "closed (Republic Day) (provisional)" in result.stdout


def test_cli_known_days_are_not_provisional() -> None:
    assert [_json(day)["provisional"] for day in ("2024-11-20", "2024-11-01", "2026-12-31")] == [False] * 3


def test_cli_2026_01_26_closed_and_readable_output() -> None:
    assert _json("2026-01-26")["trading_day"] is False
    result = runner.invoke(app, ["calendar", "2026-01-26"])
    assert result.exit_code == 0
    assert "closed" in result.stdout and "Republic Day" in result.stdout


def test_cli_malformed_date_is_a_helpful_error() -> None:
    result = runner.invoke(app, ["calendar", "2024-13-01"])
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output


def test_cli_error_text_is_printed_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "[old]" / "calendar.toml"  # brackets would be read as console markup
    monkeypatch.setenv("AUTOTRADER_CALENDAR_FILE", str(missing))
    result = runner.invoke(app, ["calendar", "2024-11-20", "--json"])
    assert result.exit_code == 2
    assert f"calendar file {missing} does not exist" in result.output
    assert result.stdout == ""
