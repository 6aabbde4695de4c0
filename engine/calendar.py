"""NSE equity trading calendar: trading days, session times, holidays and special sessions.

The calendar is a shipped list (`config/nse_calendar.toml`, built from `../shared/data/nse/holidays/`
by `engine.data.build`) because maintained packages get NSE wrong (pandas_market_calendars misses
2024-01-22, 2024-11-20, …). A trading day is a weekday that is not a listed holiday, or a date with a
listed special session (Muhurat, Saturday/Sunday sessions, DR drills). A user file (setting
`calendar_file`, env `AUTOTRADER_CALENDAR_FILE`) is merged on top: its holidays are added and its
sessions replace the shipped ones of the same date (a session on a holiday date reopens it).

Dates outside the covered years raise `CalendarRangeError` rather than guessing."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from engine.models import IST

DEFAULT_CALENDAR_FILE = Path(__file__).resolve().parent.parent / "config" / "nse_calendar.toml"

SessionKind = Literal["normal", "muhurat", "special"]
SESSION_KINDS: tuple[str, ...] = ("normal", "muhurat", "special")

NORMAL_PRE_OPEN_START = time(9, 0)
NORMAL_PRE_OPEN_END = time(9, 8)
NORMAL_OPEN = time(9, 15)
NORMAL_CLOSE = time(15, 30)
# Special sessions without published pre-open times: pre-open runs 15 to 7 minutes before the open.
PRE_OPEN_LEAD = timedelta(minutes=15)
PRE_OPEN_LENGTH = timedelta(minutes=8)


class CalendarError(ValueError):
    """The calendar file is malformed."""


class CalendarRangeError(ValueError):
    """A date outside the years the calendar covers."""


def _at(day: date, clock_time: time) -> datetime:
    return datetime.combine(day, clock_time, tzinfo=IST)


@dataclass(frozen=True, slots=True)
class TradingSession:
    """One day's continuous-trading session (tz-aware IST datetimes). `breaks` are intervals
    inside [open, close) with no trading (the split DR-drill Saturday sessions)."""

    day: date
    kind: SessionKind
    open: datetime
    close: datetime
    pre_open_start: datetime | None = None
    pre_open_end: datetime | None = None
    breaks: tuple[tuple[datetime, datetime], ...] = ()
    note: str = ""

    def is_open_at(self, when: datetime) -> bool:
        """True while continuous trading runs at `when` (breaks excluded)."""
        if not self.open <= when < self.close:
            return False
        return not any(start <= when < end for start, end in self.breaks)

    @property
    def open_hhmm(self) -> str:
        return self.open.strftime("%H:%M")

    @property
    def close_hhmm(self) -> str:
        return self.close.strftime("%H:%M")


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """A special session as written in the calendar file (times of day, IST)."""

    day: date
    kind: SessionKind
    open: time
    close: time
    pre_open_start: time | None = None
    pre_open_end: time | None = None
    breaks: tuple[tuple[time, time], ...] = ()
    note: str = ""

    def session(self) -> TradingSession:
        pre_start = self.pre_open_start
        pre_end = self.pre_open_end
        if pre_start is None:
            pre_start = (_at(self.day, self.open) - PRE_OPEN_LEAD).time()
        if pre_end is None:
            pre_end = (_at(self.day, pre_start) + PRE_OPEN_LENGTH).time()
        return TradingSession(
            day=self.day,
            kind=self.kind,
            open=_at(self.day, self.open),
            close=_at(self.day, self.close),
            pre_open_start=_at(self.day, pre_start),
            pre_open_end=_at(self.day, pre_end),
            breaks=tuple((_at(self.day, a), _at(self.day, b)) for a, b in self.breaks),
            note=self.note,
        )


def _parse_date(value: Any, where: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CalendarError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def _parse_time(value: Any, where: str) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise CalendarError(f"{where}: {value!r} is not a time of day (HH:MM)") from None


def _parse_session(raw: dict[str, Any], source: str) -> SessionSpec:
    where = f"{source}: session {raw.get('date')!r}"
    day = _parse_date(raw.get("date"), where)
    kind = raw.get("kind", "special")
    if kind not in SESSION_KINDS:
        raise CalendarError(f"{where}: kind {kind!r} must be one of {', '.join(SESSION_KINDS)}")
    open_time = _parse_time(raw.get("open", "09:15"), where)
    close_time = _parse_time(raw.get("close", "15:30"), where)
    if open_time >= close_time:
        raise CalendarError(f"{where}: open {open_time} must be before close {close_time}")
    breaks = tuple(
        (_parse_time(pair[0], where), _parse_time(pair[1], where)) for pair in raw.get("breaks", [])
    )
    for start, end in breaks:
        if not open_time <= start < end <= close_time:
            raise CalendarError(f"{where}: break {start}-{end} must lie inside {open_time}-{close_time}")
    pre_start = raw.get("pre_open_start")
    pre_end = raw.get("pre_open_end")
    return SessionSpec(
        day=day,
        kind=kind,
        open=open_time,
        close=close_time,
        pre_open_start=_parse_time(pre_start, where) if pre_start is not None else None,
        pre_open_end=_parse_time(pre_end, where) if pre_end is not None else None,
        breaks=breaks,
        note=str(raw.get("note", "")),
    )


@dataclass
class CalendarData:
    first_day: date | None  # None: the file does not set it
    last_day: date | None
    holidays: dict[date, str] = field(default_factory=dict)
    sessions: dict[date, SessionSpec] = field(default_factory=dict)


def read_calendar_file(path: Path) -> CalendarData:
    """Parse a calendar TOML: `first_day`, `last_day`, `[holidays]` date = name, `[[sessions]]`."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CalendarError(f"calendar file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise CalendarError(f"calendar file {path} is not valid TOML: {exc}") from None
    source = str(path)
    data = CalendarData(
        first_day=_parse_date(raw["first_day"], f"{source}: first_day") if "first_day" in raw else None,
        last_day=_parse_date(raw["last_day"], f"{source}: last_day") if "last_day" in raw else None,
    )
    for key, name in raw.get("holidays", {}).items():
        data.holidays[_parse_date(key, f"{source}: holiday")] = str(name)
    for entry in raw.get("sessions", []):
        spec = _parse_session(entry, source)
        data.sessions[spec.day] = spec
    return data


class NseCalendar:
    """Trading days and sessions of the NSE cash market."""

    def __init__(self, data: CalendarData) -> None:
        if data.first_day is None or data.last_day is None:
            raise CalendarError("the calendar needs first_day and last_day (the years it covers)")
        self.first_day = data.first_day
        self.last_day = data.last_day
        self.holidays = dict(data.holidays)
        self._specs = dict(data.sessions)

    @classmethod
    def load(
        cls, override_file: Path | str | None = None, base_file: Path | str = DEFAULT_CALENDAR_FILE
    ) -> NseCalendar:
        """The shipped calendar, with `override_file` (if given) merged on top."""
        data = read_calendar_file(Path(base_file))
        if override_file is not None:
            extra = read_calendar_file(Path(override_file))
            data.holidays.update(extra.holidays)
            data.sessions.update(extra.sessions)
            # an override may extend the covered years, never shrink them
            data.first_day = min((day for day in (data.first_day, extra.first_day) if day is not None), default=None)
            data.last_day = max((day for day in (data.last_day, extra.last_day) if day is not None), default=None)
        return cls(data)

    def _check(self, day: date) -> None:
        if not self.first_day <= day <= self.last_day:
            raise CalendarRangeError(
                f"{day.isoformat()} is outside the NSE calendar ({self.first_day} .. {self.last_day}); "
                "extend it with a calendar file (setting calendar_file)"
            )

    def covers(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day

    def is_trading_day(self, day: date) -> bool:
        self._check(day)
        if day in self._specs:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def session(self, day: date) -> TradingSession | None:
        """The day's session, or None when the market is closed."""
        if not self.is_trading_day(day):
            return None
        spec = self._specs.get(day)
        if spec is not None:
            return spec.session()
        return TradingSession(
            day=day,
            kind="normal",
            open=_at(day, NORMAL_OPEN),
            close=_at(day, NORMAL_CLOSE),
            pre_open_start=_at(day, NORMAL_PRE_OPEN_START),
            pre_open_end=_at(day, NORMAL_PRE_OPEN_END),
        )

    def holiday_name(self, day: date) -> str | None:
        return self.holidays.get(day) if day not in self._specs else None

    def next_trading_day(self, day: date) -> date:
        """The first trading day strictly after `day`."""
        candidate = day + timedelta(days=1)
        while not self.is_trading_day(candidate):
            candidate += timedelta(days=1)
        return candidate

    def previous_trading_day(self, day: date) -> date:
        """The last trading day strictly before `day`."""
        candidate = day - timedelta(days=1)
        while not self.is_trading_day(candidate):
            candidate -= timedelta(days=1)
        return candidate

    def iter_trading_days(self, start: date, end: date) -> Iterator[date]:
        day = start
        while day <= end:
            if self.is_trading_day(day):
                yield day
            day += timedelta(days=1)

    def trading_days(self, start: date, end: date) -> list[date]:
        """Trading days with start <= day <= end."""
        return list(self.iter_trading_days(start, end))

    def special_sessions(self) -> list[TradingSession]:
        return [spec.session() for _, spec in sorted(self._specs.items())]


def load_calendar(calendar_file: Path | str | None = None) -> NseCalendar:
    """The shipped calendar merged with the user's `calendar_file` (the setting of that name)."""
    return NseCalendar.load(calendar_file)


__all__ = [
    "DEFAULT_CALENDAR_FILE",
    "CalendarError",
    "CalendarRangeError",
    "NseCalendar",
    "SessionSpec",
    "TradingSession",
    "load_calendar",
    "read_calendar_file",
]
