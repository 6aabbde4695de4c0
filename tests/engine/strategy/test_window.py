from __future__ import annotations

from datetime import date

import pytest

from engine.calendar import load_calendar
from engine.strategy.window import EntryWindow, SessionHours
from tests.engine.strategy.support import at

DAY = date(2024, 6, 4)
SESSION = SessionHours(at(DAY, 9, 15), at(DAY, 15, 30))


def test_default_window_is_open_from_1510_until_before_1525() -> None:
    window = EntryWindow(["15:10-15:25"])
    assert not window.is_open(at(DAY, 15, 9, 59), SESSION)
    assert window.is_open(at(DAY, 15, 10), SESSION)
    assert window.is_open(at(DAY, 15, 24, 59), SESSION)
    assert not window.is_open(at(DAY, 15, 25), SESSION)


def test_no_window_without_a_session_and_clipped_by_a_short_session() -> None:
    window = EntryWindow(["15:10-15:25"])
    assert not window.is_open(at(DAY, 15, 15), None)
    short = SessionHours(at(DAY, 9, 15), at(DAY, 15, 20))
    assert window.intervals(DAY, short) == [(at(DAY, 15, 10), at(DAY, 15, 20))]
    assert not window.is_open(at(DAY, 15, 21), short)


def test_several_windows_and_next_open() -> None:
    window = EntryWindow(["15:10-15:25", "09:30-09:45"])
    assert str(window) == "09:30-09:45, 15:10-15:25"
    assert window.next_open(at(DAY, 9, 0), SESSION) == at(DAY, 9, 30)
    assert window.next_open(at(DAY, 9, 35), SESSION) == at(DAY, 9, 35)
    assert window.next_open(at(DAY, 12, 0), SESSION) == at(DAY, 15, 10)
    assert window.next_open(at(DAY, 15, 25), SESSION) is None


def test_calendar_sessions_drive_the_window() -> None:
    calendar = load_calendar()
    window = EntryWindow(["15:10-15:25"])
    holiday = date(2024, 11, 20)
    assert not window.is_open(at(holiday, 15, 15), calendar.session(holiday))
    assert window.is_open(at(DAY, 15, 15), calendar.session(DAY))


@pytest.mark.parametrize("text", ["15:25-15:10", "1510-1525", "25:00-26:00"])
def test_bad_windows_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="entry window"):
        EntryWindow([text])
