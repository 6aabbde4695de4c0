"""The replay server's daily candle route: Upstox's Historical Candle Data V3 for a replayed day.

`GET /v3/historical-candle/{instrument_key}/days/1/{to_date}/{from_date}` (the path of the SDK's
`HistoryV3Api.get_historical_candle_data1`; without `/{from_date}`, `get_historical_candle_data`, every stored day up
to `to_date`) → `{"status": "success", "data": {"candles": [[ts, open, high, low, close, volume, oi], ...]}}`, newest
first, `ts` midnight IST in ISO 8601 (`2024-06-04T00:00:00+05:30`), `oi` 0.

Built from the shipped data: each day's daily bar in the store, else the day aggregated from its 5-minute bars. The
replayed day itself only once its close (15:30) has passed on the replay clock, as Upstox publishes a day's candle
after the close; later days never. No token check, as
for the intraday route (the SDK sends none)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pandas as pd

from engine.models import IST, Timeframe

if TYPE_CHECKING:
    from engine.feed.replay import BarTape

DAILY_CANDLE_PREFIX = "/v3/historical-candle/"
SESSION_CLOSE = time(15, 30)
INVALID_INTERVAL = "UDAPI1146"
INVALID_DATE = "UDAPI1022"
INVALID_KEY = "UDAPI1021"


class CandleRequestError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CandleRequestError(INVALID_DATE, f"Invalid date: {text}") from None


def _rows(frame: pd.DataFrame) -> list[list[Any]]:
    return [
        [ts.isoformat(), float(o), float(h), float(lo), float(c), int(v), 0]
        for ts, o, h, lo, c, v in zip(frame["ts"], frame["open"], frame["high"], frame["low"], frame["close"],
                                      frame["volume"], strict=True)
    ]


def _day_rows(tape: BarTape, symbol: str, start: date, end: date) -> list[list[Any]]:
    """Candles of `start <= day <= end`, oldest first: each day's daily bar in the store, else the day aggregated
    from its 5-minute bars (the replay's own intraday data)."""
    after_end = end + timedelta(days=1)
    daily = tape.store.read(symbol, Timeframe.DAY, start, after_end)
    candles = {ts.date(): row for ts, row in zip(daily["ts"], _rows(daily), strict=True)}
    five = tape.store.read(symbol, Timeframe.MIN5, start, after_end)
    for day, bars in five.groupby(five["ts"].dt.date):
        if day not in candles:
            midnight = pd.Timestamp(datetime.combine(day, time(), IST))
            candles[day] = [midnight.isoformat(), float(bars["open"].iloc[0]), float(bars["high"].max()),
                            float(bars["low"].min()), float(bars["close"].iloc[-1]), int(bars["volume"].sum()), 0]
    return [candles[day] for day in sorted(candles)]


def daily_candles(tape: BarTape, now: datetime, path: str) -> list[list[Any]]:
    """The candle rows (newest first) a daily-candle request path asks for, or raise `CandleRequestError`."""
    pieces = path.removeprefix(DAILY_CANDLE_PREFIX).split("/")
    if len(pieces) not in (4, 5):
        raise CandleRequestError(INVALID_INTERVAL, f"Invalid path: {path}")
    key, unit, interval = unquote(pieces[0]), pieces[1], pieces[2]
    if (unit, interval) != ("days", "1"):
        raise CandleRequestError(INVALID_INTERVAL, f"Invalid unit/interval: {unit}/{interval} (served: days/1)")
    to_day = _parse_day(pieces[3])
    from_day = _parse_day(pieces[4]) if len(pieces) == 5 else date(1990, 1, 1)  # before any NSE bar
    if from_day > to_day:
        raise CandleRequestError(INVALID_DATE, f"from_date {from_day} is after to_date {to_day}")
    if not tape.knows(key):
        raise CandleRequestError(INVALID_KEY, "Instrument key is invalid")
    symbol = tape.instruments[key][0]
    day_closed = now >= datetime.combine(tape.day, SESSION_CLOSE, IST)
    last_day = min(to_day, tape.day if day_closed else tape.day - timedelta(days=1))
    rows = _day_rows(tape, symbol, from_day, last_day) if from_day <= last_day else []
    return rows[::-1]
