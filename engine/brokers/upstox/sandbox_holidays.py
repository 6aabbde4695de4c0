"""The Upstox sandbox's market-holidays endpoints, in the shape of the SDK's models (`HolidayData`,
`ExchangeTimingData`): GET /v2/market/holidays (the sandbox clock's year) and
GET /v2/market/holidays/{date}. Public, as at Upstox: no token needed.

The data starts as the shipped NSE calendar (holidays as TRADING_HOLIDAY with every exchange closed;
special sessions as SPECIAL_TIMING with NSE and BSE open, one timing per piece between breaks);
tests change it per sandbox with `sandbox.holidays.put(entry)` / `.remove(day)`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from engine.brokers.upstox.sandbox_errors import ApiError
from engine.calendar import NseCalendar
from engine.models import IST

if TYPE_CHECKING:
    from engine.brokers.upstox.sandbox import UpstoxSandbox

HOLIDAYS_PATH = "/v2/market/holidays"
ALL_EXCHANGES = ["NSE", "NFO", "BSE", "BFO", "CDS", "BCD", "MCX"]
SESSION_EXCHANGES = ("NSE", "BSE")


def _epoch_ms(day: date, clock_time: time) -> int:
    return int(datetime.combine(day, clock_time, tzinfo=IST).timestamp() * 1000)


def holiday_entry(day: date, description: str) -> dict[str, Any]:
    """A `HolidayData` of a day every exchange is closed."""
    return {"date": day.isoformat(), "description": description, "holiday_type": "TRADING_HOLIDAY",
            "closed_exchanges": list(ALL_EXCHANGES), "open_exchanges": []}


def session_entry(day: date, description: str, pieces: list[tuple[time, time]]) -> dict[str, Any]:
    """A `HolidayData` of a special session: NSE and BSE open for each (start, end) piece."""
    timings = [{"exchange": exchange, "start_time": _epoch_ms(day, start), "end_time": _epoch_ms(day, end)}
               for exchange in SESSION_EXCHANGES for start, end in pieces]
    return {"date": day.isoformat(), "description": description, "holiday_type": "SPECIAL_TIMING",
            "closed_exchanges": [], "open_exchanges": timings}


@lru_cache(maxsize=1)
def _shipped_entries() -> dict[date, dict[str, Any]]:
    calendar = NseCalendar.load()
    entries = {day: holiday_entry(day, name) for day, name in calendar.holidays.items()}
    for session in calendar.special_sessions():
        edges = [session.open.time(), *(t.time() for pair in session.breaks for t in pair), session.close.time()]
        pieces = list(zip(edges[::2], edges[1::2], strict=True))
        entries[session.day] = session_entry(session.day, session.note, pieces)
    return entries


class SandboxHolidays:
    """One sandbox's holiday entries, by date."""
    def __init__(self) -> None:
        self.entries = dict(_shipped_entries())

    def put(self, entry: dict[str, Any]) -> None:
        """Add or replace the entry of `entry["date"]`."""
        self.entries[date.fromisoformat(entry["date"])] = entry

    def remove(self, day: date) -> None:
        self.entries.pop(day, None)

    def year_list(self, year: int) -> list[dict[str, Any]]:
        return [entry for day, entry in sorted(self.entries.items()) if day.year == year]

    def on(self, day: date) -> list[dict[str, Any]]:
        return [self.entries[day]] if day in self.entries else []




def holidays_route(method: str, path: str) -> Callable[[UpstoxSandbox, dict[str, str], Any], Any] | None:
    """The handler of a holidays request, or None for any other request."""
    if method != "GET" or not (path == HOLIDAYS_PATH or path.startswith(HOLIDAYS_PATH + "/")):
        return None
    wanted = path.removeprefix(HOLIDAYS_PATH).strip("/")

    def serve(sandbox: UpstoxSandbox, query: dict[str, str], body: Any) -> Any:
        book = sandbox.holidays
        if not wanted:
            return book.year_list(sandbox.clock.today().year)
        try:
            day = date.fromisoformat(wanted)
        except ValueError:

            raise ApiError(400, "UDAPI1088", "Invalid date", "date", wanted) from None
        return book.on(day)

    return serve
