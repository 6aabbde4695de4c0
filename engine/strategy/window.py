"""Entry windows: times of day (IST) when setups may be executed, default 15:10–15:25.

A window counts only inside the day's trading session (from `engine.calendar`): on a closed day
nothing opens, and a short special session clips the window. Setups found earlier are kept as
candidates by the engine and executed only while a window is open."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from typing import Protocol

from engine.models import IST


class SessionLike(Protocol):
    """What the window needs of `engine.calendar.TradingSession`."""

    @property
    def open(self) -> datetime: ...

    @property
    def close(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class SessionHours:
    """A session given by its open and close (when no calendar object is at hand)."""

    open: datetime
    close: datetime


def normal_session(day: date) -> SessionHours:
    """NSE's normal session, 09:15-15:30 IST: for a day no calendar covers."""
    return SessionHours(datetime.combine(day, time(9, 15), tzinfo=IST), datetime.combine(day, time(15, 30), tzinfo=IST))


@dataclass(frozen=True, slots=True, order=True)
class TimeWindow:
    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@lru_cache(maxsize=64)  # each day's entries parse the configured windows again
def parse_window(text: str) -> TimeWindow:
    try:
        start_text, end_text = text.split("-")
        start, end = (datetime.strptime(part.strip(), "%H:%M").time() for part in (start_text, end_text))
        window = TimeWindow(start, end)
    except ValueError:
        raise ValueError(f"entry window {text!r} must be 'HH:MM-HH:MM' (IST)") from None
    if window.start >= window.end:
        raise ValueError(f"entry window {text!r}: start must be before end")
    return window


class EntryWindow:
    """The configured entry windows, on a given session. `[start, end)` in IST."""

    def __init__(self, windows: Sequence[str | TimeWindow]) -> None:
        self.windows = sorted(w if isinstance(w, TimeWindow) else parse_window(w) for w in windows)
        if not self.windows:
            raise ValueError("at least one entry window is needed")
        # the last (day, session, intervals): asked on every tick batch, the same all day
        self._last: tuple[date, SessionLike | None, list[tuple[datetime, datetime]]] | None = None

    def intervals(self, day: date, session: SessionLike | None) -> list[tuple[datetime, datetime]]:
        """The day's windows as datetimes, clipped to the session; none when there is no session."""
        if session is None:
            return []
        last = self._last
        if last is not None and last[0] == day and last[1] is session:
            return last[2]
        result = []
        for window in self.windows:
            start = max(datetime.combine(day, window.start, tzinfo=IST), session.open)
            end = min(datetime.combine(day, window.end, tzinfo=IST), session.close)
            if start < end:
                result.append((start, end))
        self._last = (day, session, result)
        return result

    def is_open(self, now: datetime, session: SessionLike | None) -> bool:
        now = now.astimezone(IST)
        return any(start <= now < end for start, end in self.intervals(now.date(), session))

    def next_open(self, now: datetime, session: SessionLike | None) -> datetime | None:
        """When a window is next open today (now, if one is open), or None."""
        now = now.astimezone(IST)
        for start, end in self.intervals(now.date(), session):
            if now < end:
                return max(start, now)
        return None

    def __str__(self) -> str:
        return ", ".join(str(w) for w in self.windows)
