"""The Upstox sandbox's Historical Candle Data V3 routes, answers `{"candles": [[ts, open, high, low, close, volume,
oi], ...]}` inside the usual success envelope, newest first, `ts` ISO 8601 with +05:30:

* GET /v3/historical-candle/{instrument_key}/days/1/{to_date}/{from_date} (the SDK's
  `HistoryV3Api.get_historical_candle_data1`): daily candles, `ts` midnight IST ("2024-06-04T00:00:00+05:30");
* GET /v3/historical-candle/intraday/{instrument_key}/{unit}/{interval} (`get_intra_day_candle_data`; unit minutes
  1..300, hours 1..5): the candles of the sandbox clock's day complete at its time.

The candles are the sandbox's `history` book (`engine.data.daybars.CandleBook`, keyed by instrument_key), empty until
a test fills it (`put`, `put_intraday`). The sandbox checks the bearer token here as everywhere (Upstox documents none
for these APIs; our clients send it anyway)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from engine.brokers.upstox.sandbox_errors import ApiError
from engine.models import IST

if TYPE_CHECKING:
    from engine.brokers.upstox.sandbox import UpstoxSandbox

HISTORY_PATH = "/v3/historical-candle/"
INTRADAY_PATH = HISTORY_PATH + "intraday/"
MINUTE_MS = 60_000
INTRADAY_UNITS = {"minutes": (300, MINUTE_MS), "hours": (5, 60 * MINUTE_MS)}  # unit -> (largest interval, unit ms)


def _invalid(code: str, message: str, field: str, value: str) -> Exception:
    return ApiError(400, code, message, field, value)


def _day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _invalid("UDAPI1022", "Invalid date", field, text) from None


def _intraday_interval_ms(unit: str, interval: str) -> int:
    largest, unit_ms = INTRADAY_UNITS.get(unit, (0, 0))
    if not interval.isdigit() or not 1 <= int(interval) <= largest:
        raise _invalid("UDAPI1146", "Invalid unit/interval", "unit", f"{unit}/{interval}")
    return int(interval) * unit_ms


def _intraday_route(path: str) -> Callable[[UpstoxSandbox, dict[str, str], Any], Any]:
    pieces = path.removeprefix(INTRADAY_PATH).split("/")

    def serve(sandbox: UpstoxSandbox, query: dict[str, str], body: Any) -> Any:
        if len(pieces) != 3:
            raise _invalid("UDAPI1146", "Invalid path: expected {instrument_key}/{unit}/{interval}", "path", path)
        key = unquote(pieces[0])
        interval_ms = _intraday_interval_ms(pieces[1], pieces[2])
        if not sandbox.history.knows(key):
            raise _invalid("UDAPI1021", "Instrument key is invalid", "instrument_key", key)
        candles = sandbox.history.intraday(key, interval_ms, sandbox.clock.now())
        return {"candles": [[c.start.astimezone(IST).isoformat(), c.open, c.high, c.low, c.close, c.volume, 0]
                            for c in reversed(candles)]}

    return serve


def history_route(method: str, path: str) -> Callable[[UpstoxSandbox, dict[str, str], Any], Any] | None:
    """The handler of a historical-candle request (daily or intraday), or None for any other request."""
    if method != "GET" or not path.startswith(HISTORY_PATH):
        return None
    if path.startswith(INTRADAY_PATH):
        return _intraday_route(path)
    pieces = path.removeprefix(HISTORY_PATH).split("/")

    def serve(sandbox: UpstoxSandbox, query: dict[str, str], body: Any) -> Any:
        if len(pieces) != 5:
            raise _invalid("UDAPI1146", "Invalid path: expected {instrument_key}/days/1/{to_date}/{from_date}",
                           "path", path)
        key, unit, interval = unquote(pieces[0]), pieces[1], pieces[2]
        if (unit, interval) != ("days", "1"):
            raise _invalid("UDAPI1146", "Invalid unit/interval (the sandbox serves days/1)", "unit",
                           f"{unit}/{interval}")
        to_day, from_day = _day(pieces[3], "to_date"), _day(pieces[4], "from_date")
        if from_day > to_day:
            raise _invalid("UDAPI1022", "from_date must not be after to_date", "from_date", pieces[4])
        if not sandbox.history.knows(key):
            raise _invalid("UDAPI1021", "Instrument key is invalid", "instrument_key", key)
        candles = sandbox.history.between(key, from_day, to_day)
        return {"candles": [
            [datetime.combine(c.day, time(), IST).isoformat(), c.open, c.high, c.low, c.close, c.volume, 0]
            for c in reversed(candles)
        ]}

    return serve
