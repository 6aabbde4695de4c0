"""NSE equity trading calendar: trading days, session times, holidays and special sessions.

Three sources, each layered over the one before (a later layer's holiday or session on a date
replaces the earlier layers' entries for that date):

1. the shipped list (`config/nse_calendar.toml`, built from `../shared/data/nse/holidays/` by
   `engine.data.build`), because maintained packages get NSE wrong (pandas_market_calendars misses
   2024-01-22, 2024-11-20, …);
2. the broker's holidays, fetched at pre-open (`engine.session.day.refresh_calendar`, Upstox's
   market-holidays API) and kept in a JSON file beside the database (`holidays_cache_file`);
3. the user's file (setting `calendar_file`, env `AUTOTRADER_CALENDAR_FILE`), which always wins: its
   holidays are added, its sessions replace the others of the same date (a session on a holiday date
   reopens it), and its first_day/last_day may extend the covered years.

A trading day is a weekday that is not a holiday, or a date with a special session (Muhurat,
Saturday/Sunday sessions, DR drills). A day is *known* when a source covers its year range or lists
it. Any other day (past every source) gets a *provisional* answer rather than an error: the weekday
rule plus the fixed-date national holidays (`FIXED_HOLIDAYS`); `is_provisional` tells them apart."""

from __future__ import annotations

import json
import logging
import os
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from engine.models import IST
from engine.resources import config_file

log = logging.getLogger(__name__)

DEFAULT_CALENDAR_FILE = config_file("nse_calendar.toml")

SessionKind = Literal["normal", "muhurat", "special"]
SESSION_KINDS: tuple[str, ...] = ("normal", "muhurat", "special")

NORMAL_PRE_OPEN_START = time(9, 0)
NORMAL_PRE_OPEN_END = time(9, 8)
NORMAL_OPEN = time(9, 15)
NORMAL_CLOSE = time(15, 30)
# Special sessions without published pre-open times: pre-open runs 15 to 7 minutes before the open.
PRE_OPEN_LEAD = timedelta(minutes=15)
PRE_OPEN_LENGTH = timedelta(minutes=8)
# National holidays on fixed dates, when NSE has always closed on a weekday: what a provisional day
# (past every source) assumes. Movable festivals (Holi, Diwali, …) cannot be guessed.
FIXED_HOLIDAYS: dict[tuple[int, int], str] = {
    (1, 26): "Republic Day",
    (5, 1): "Maharashtra Day",
    (8, 15): "Independence Day",
    (10, 2): "Mahatma Gandhi Jayanti",
    (12, 25): "Christmas",
}
HOLIDAYS_CACHE_NAME = "nse_holidays.json"


class CalendarError(ValueError):
    """The calendar file is malformed."""


class CalendarRangeError(ValueError):
    """A date outside the years the calendar covers. The calendar itself no longer raises it (such
    days get provisional answers); kept for callers that catch it."""


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
    covered: list[tuple[date, date]] = field(default_factory=list)  # extra known ranges (broker years)

    def dates(self) -> set[date]:
        """Every date this source says something about."""
        return set(self.holidays) | set(self.sessions)

    def layer(self, top: CalendarData) -> None:
        """Put `top` over this data: its entries replace ours on their dates; its ranges add to ours."""
        for day in top.dates():
            self.holidays.pop(day, None)
            self.sessions.pop(day, None)
        self.holidays.update(top.holidays)
        self.sessions.update(top.sessions)
        self.covered.extend(top.covered)


def parse_calendar(raw: dict[str, Any], source: str) -> CalendarData:
    """A calendar document (TOML or the JSON holidays cache): `first_day`, `last_day`, `covered`
    ([[first, last], …]), `holidays` {date: name}, `sessions` [{date, kind, open, close, …}]."""
    data = CalendarData(
        first_day=_parse_date(raw["first_day"], f"{source}: first_day") if "first_day" in raw else None,
        last_day=_parse_date(raw["last_day"], f"{source}: last_day") if "last_day" in raw else None,
    )
    for pair in raw.get("covered", []):
        first, last = (_parse_date(value, f"{source}: covered") for value in pair)
        data.covered.append((first, last))
    for key, name in raw.get("holidays", {}).items():
        data.holidays[_parse_date(key, f"{source}: holiday")] = str(name)
    for entry in raw.get("sessions", []):
        spec = _parse_session(entry, source)
        data.sessions[spec.day] = spec
    return data


def read_calendar_file(path: Path) -> CalendarData:
    """Parse a calendar TOML: `first_day`, `last_day`, `[holidays]` date = name, `[[sessions]]`."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CalendarError(f"calendar file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise CalendarError(f"calendar file {path} is not valid TOML: {exc}") from None
    return parse_calendar(raw, str(path))


# ---------------------------------------------------------------- the broker's holidays, cached


def holidays_cache_file(database_url: str) -> Path:
    """Where the fetched holidays are kept: beside a SQLite database file (a fresh database starts
    from the shipped calendar), else under var/ (see `files_dir`)."""
    return files_dir(database_url) / HOLIDAYS_CACHE_NAME


def files_dir(database_url: str) -> Path:
    """The directory of a run's files: the SQLite database's own, else var/."""
    on_disk = database_url.startswith("sqlite:///") and ":memory:" not in database_url
    return Path(database_url.removeprefix("sqlite:///")).parent if on_disk else Path("var")


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M")


def _session_document(spec: SessionSpec) -> dict[str, Any]:
    document: dict[str, Any] = {"date": spec.day.isoformat(), "kind": spec.kind, "open": _hhmm(spec.open),
                                "close": _hhmm(spec.close), "note": spec.note}
    if spec.breaks:
        document["breaks"] = [[_hhmm(start), _hhmm(end)] for start, end in spec.breaks]
    for name in ("pre_open_start", "pre_open_end"):
        value = getattr(spec, name)
        if value is not None:
            document[name] = _hhmm(value)
    return document


def read_holidays_cache(path: Path) -> CalendarData | None:
    """The cached broker holidays, or None when there is no cache yet."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise CalendarError(f"holidays cache {path} is not JSON ({exc}): ignored until pre-open rewrites it") from None
    if not isinstance(raw, dict):
        raise CalendarError(f"holidays cache {path} must hold a JSON object: ignored until pre-open rewrites it")
    try:
        return parse_calendar(raw, str(path))
    except (AttributeError, TypeError, ValueError) as exc:  # CalendarError included
        raise CalendarError(f"holidays cache {path} is malformed ({exc}): ignored until pre-open rewrites it") from None


def _cached_or_none(path: Path) -> CalendarData | None:
    """The cache, or None (logged) when it is unreadable: it is fetched data, the next pre-open
    rewrites it, and no run should stop over it."""
    try:
        return read_holidays_cache(path)
    except CalendarError as exc:
        log.warning("%s", exc)
        return None


def update_holidays_cache(path: Path, fetched: CalendarData, *, source: str, fetched_on: date) -> CalendarData:
    """Merge a fetch into the cache file (its covered ranges replace what the cache held for them;
    entries outside them are kept) and write it atomically. Returns the merged data."""
    kept = _cached_or_none(path) or CalendarData(None, None)

    def outside(day: date) -> bool:
        return not any(first <= day <= last for first, last in fetched.covered)

    merged = CalendarData(
        None,
        None,
        holidays={day: name for day, name in kept.holidays.items() if outside(day)},
        sessions={day: spec for day, spec in kept.sessions.items() if outside(day)},
        covered=_merge_ranges([*kept.covered, *fetched.covered]),
    )
    merged.layer(CalendarData(None, None, fetched.holidays, fetched.sessions))
    document = {
        "source": source,
        "fetched_on": fetched_on.isoformat(),
        "covered": [[first.isoformat(), last.isoformat()] for first, last in merged.covered],
        "holidays": {day.isoformat(): name for day, name in sorted(merged.holidays.items())},
        "sessions": [_session_document(spec) for _, spec in sorted(merged.sessions.items())],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(partial, path)
    return merged


def _merge_ranges(ranges: Iterable[tuple[date, date]]) -> list[tuple[date, date]]:
    merged: list[tuple[date, date]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + timedelta(days=1):
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


class NseCalendar:
    """Trading days and sessions of the NSE cash market."""

    def __init__(self, data: CalendarData) -> None:
        if data.first_day is None or data.last_day is None:
            raise CalendarError("the calendar needs first_day and last_day (the years it covers)")
        self.first_day = data.first_day
        self.last_day = data.last_day
        self.holidays = dict(data.holidays)
        self._specs = dict(data.sessions)
        self._known_ranges = _merge_ranges([(data.first_day, data.last_day), *data.covered])

    @classmethod
    def load(
        cls,
        override_file: Path | str | None = None,
        base_file: Path | str = DEFAULT_CALENDAR_FILE,
        holidays_cache: Path | str | None = None,
    ) -> NseCalendar:
        """The shipped calendar, the cached broker holidays over it (`holidays_cache`, if the file
        exists), and `override_file` (if given) over both."""
        data = read_calendar_file(Path(base_file))
        if holidays_cache is not None:
            fetched = _cached_or_none(Path(holidays_cache))
            if fetched is not None:
                data.layer(fetched)
        if override_file is not None:
            extra = read_calendar_file(Path(override_file))
            data.layer(extra)
            # an override may extend the covered years, never shrink them
            data.first_day = min((day for day in (data.first_day, extra.first_day) if day is not None), default=None)
            data.last_day = max((day for day in (data.last_day, extra.last_day) if day is not None), default=None)
        return cls(data)

    def covers(self, day: date) -> bool:
        """True when a source covers or lists `day` (its answers are not provisional)."""
        return day in self._specs or day in self.holidays or any(a <= day <= b for a, b in self._known_ranges)

    def is_provisional(self, day: date) -> bool:
        """True past every source: the answer is the weekday rule plus `FIXED_HOLIDAYS`."""
        return not self.covers(day)

    def first_provisional_day(self, start: date, days: int) -> date | None:
        """The first provisional day among `days` days from `start`, or None when all are known."""
        for offset in range(days):
            day = start + timedelta(days=offset)
            if self.is_provisional(day):
                return day
        return None

    def is_trading_day(self, day: date) -> bool:
        if day in self._specs:
            return True
        return day.weekday() < 5 and self.holiday_name(day) is None

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
        if day in self._specs:
            return None
        if self.is_provisional(day):
            return FIXED_HOLIDAYS.get((day.month, day.day))
        return self.holidays.get(day)

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
        return [spec.session() for _, spec in sorted(self._specs.items()) if spec.kind != "normal"]


def load_calendar(calendar_file: Path | str | None = None, holidays_cache: Path | str | None = None) -> NseCalendar:
    """The shipped calendar, the cached broker holidays (`holidays_cache`, see `holidays_cache_file`)
    and the user's `calendar_file` (the setting of that name) on top."""
    return NseCalendar.load(calendar_file, holidays_cache=holidays_cache)


__all__ = [
    "DEFAULT_CALENDAR_FILE",
    "FIXED_HOLIDAYS",
    "CalendarData",
    "CalendarError",
    "CalendarRangeError",
    "NseCalendar",
    "SessionSpec",
    "TradingSession",
    "files_dir",
    "holidays_cache_file",
    "load_calendar",
    "parse_calendar",
    "read_calendar_file",
    "read_holidays_cache",
    "update_holidays_cache",
]
