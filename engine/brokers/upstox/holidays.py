"""NSE holidays and special sessions from Upstox's market-holidays API, through the SDK's
`MarketHolidaysAndTimingsApi`: GET /v2/market/holidays (this year's list) and
GET /v2/market/holidays/{date} (one date). Both are public: the SDK sends no token.

Fields are the SDK models': `HolidayData` (date, description, holiday_type, closed_exchanges,
open_exchanges) and `ExchangeTimingData` (exchange, start_time, end_time: epoch milliseconds). We read
the raw JSON through `UpstoxClient` (the module that calls the SDK; same timeouts, no urllib3 resends,
errors mapped to `engine.brokers.base`) rather than the models, whose enum check would reject a
holiday_type Upstox adds.

What an entry means for NSE's cash market (`nse_calendar_data`):
- NSE in open_exchanges: NSE trades, from the earliest start to the latest end; gaps between several
  NSE entries are breaks. A weekday with the normal 09:15-15:30 hours is an ordinary day (Upstox lists
  e.g. New Year's Day as a TRADING_HOLIDAY with NSE open); a description with "Muhurat" is a Muhurat
  session; anything else is a special session (a Sunday budget day, a Saturday DR drill).
- else NSE in closed_exchanges, or a TRADING_HOLIDAY naming no exchange at all: a holiday.
- else (a SETTLEMENT_HOLIDAY, another exchange's SPECIAL_TIMING): nothing changes for NSE trading.
The year list covers every year it has entries for (the exchange publishes whole years)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from itertools import pairwise
from typing import Any

from engine.brokers.upstox.client import UpstoxClient
from engine.brokers.upstox.config import UpstoxConfig
from engine.calendar import NORMAL_CLOSE, NORMAL_OPEN, CalendarData, SessionKind, SessionSpec
from engine.models import IST

EXCHANGE = "NSE"
TRADING_HOLIDAY = "TRADING_HOLIDAY"


class HolidayFormatError(ValueError):
    """An answer of the holidays API that does not have the documented shape."""


class UpstoxHolidays:
    """A blocking client of the two holidays endpoints; `close()` it (or use `with`)."""

    def __init__(self, config: UpstoxConfig) -> None:
        self._client = UpstoxClient(config)

    def year_list(self) -> list[dict[str, Any]]:
        """GET /v2/market/holidays: the current year's `HolidayData` entries."""
        return _entries(self._client.holidays())

    def on(self, day: date) -> list[dict[str, Any]]:
        """GET /v2/market/holidays/{date}: that date's entries (none on an ordinary day)."""
        return _entries(self._client.holiday(day.isoformat()))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> UpstoxHolidays:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _entries(data: Any) -> list[dict[str, Any]]:
    if data is None:
        return []
    if isinstance(data, dict):  # one date's answer may come as a single object
        data = [data]
    if not isinstance(data, list) or not all(isinstance(entry, dict) for entry in data):
        raise HolidayFormatError(f"holidays API: data must be a list of holiday objects, got {str(data)[:200]}")
    return data


def _entry_date(entry: dict[str, Any]) -> date:
    raw = entry.get("date")
    try:
        return date.fromisoformat(str(raw)[:10])
    except ValueError:
        raise HolidayFormatError(f"holidays API: date {raw!r} is not YYYY-MM-DD in {str(entry)[:200]}") from None


def _ist_time(day: date, epoch_ms: Any, entry: dict[str, Any]) -> time:
    if not isinstance(epoch_ms, int | float) or isinstance(epoch_ms, bool):
        raise HolidayFormatError(f"holidays API: {EXCHANGE} time {epoch_ms!r} is not epoch milliseconds in {entry}")
    moment = datetime.fromtimestamp(epoch_ms / 1000, IST)
    if moment.date() != day:
        raise HolidayFormatError(f"holidays API: {EXCHANGE} time {moment.isoformat()} is not on {day} in {entry}")
    return moment.time().replace(second=0, microsecond=0)


def _session(day: date, entry: dict[str, Any], timings: list[dict[str, Any]]) -> SessionSpec:
    pieces = sorted((_ist_time(day, t.get("start_time"), entry), _ist_time(day, t.get("end_time"), entry))
                    for t in timings)
    for start, end in pieces:
        if start >= end:
            raise HolidayFormatError(f"holidays API: {EXCHANGE} start {start} is not before end {end} in {entry}")
    breaks = tuple((a_end, b_start) for (_, a_end), (b_start, _) in pairwise(pieces)
                   if a_end < b_start)
    opens, closes = pieces[0][0], max(end for _, end in pieces)
    description = str(entry.get("description") or "")
    kind: SessionKind
    if "muhurat" in description.lower():
        kind = "muhurat"
    elif day.weekday() < 5 and (opens, closes) == (NORMAL_OPEN, NORMAL_CLOSE) and not breaks:
        kind = "normal"
    else:
        kind = "special"
    return SessionSpec(day=day, kind=kind, open=opens, close=closes, breaks=breaks,
                       note="" if kind == "normal" else description)


def nse_calendar_data(year_list: Sequence[dict[str, Any]], day_entries: Sequence[dict[str, Any]] = ()) -> CalendarData:
    """Holidays and sessions of NSE from the year list and single-date answers; the years of the
    year list's entries are covered. Raises `HolidayFormatError` for an entry of the wrong shape."""
    data = CalendarData(None, None)
    for entry in [*year_list, *day_entries]:
        day = _entry_date(entry)
        open_timings = [t for t in entry.get("open_exchanges") or [] if isinstance(t, dict)
                        and t.get("exchange") == EXCHANGE]
        closed = entry.get("closed_exchanges") or []
        names_none = not closed and not entry.get("open_exchanges")
        if open_timings:
            data.sessions[day] = _session(day, entry, open_timings)
            data.holidays.pop(day, None)
        elif EXCHANGE in closed or (entry.get("holiday_type") == TRADING_HOLIDAY and names_none):
            data.holidays[day] = str(entry.get("description") or "holiday")
            data.sessions.pop(day, None)
    years = sorted({_entry_date(entry).year for entry in year_list})
    data.covered = [(date(year, 1, 1), date(year, 12, 31)) for year in years]
    return data
