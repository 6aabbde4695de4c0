"""The Kite sandbox's historical candle route for daily candles:
GET /instruments/historical/{instrument_token}/day?from=yyyy-mm-dd+hh:mm:ss&to=... (kiteconnect's
`historical_data(token, from, to, "day")`) → `{"candles": [["2024-06-04T00:00:00+0530", open, high, low, close,
volume], ...]}` inside Kite's success envelope, oldest first as Kite sends them (with `oi=1`, a 7th column, 0).

The candles are the sandbox's `history` book (`engine.data.daybars.CandleBook`, keyed by instrument_token), empty
until a test fills it. Only the "day" interval is served; Kite's intraday intervals are refused."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from engine.brokers.zerodha.sandbox_errors import KiteError

if TYPE_CHECKING:
    from engine.brokers.zerodha.sandbox import KiteSandbox

HISTORY_PARTS = ["instruments", "historical"]
KITE_INTERVALS = ("minute", "3minute", "5minute", "10minute", "15minute", "30minute", "60minute", "day")


def _input_error(message: str) -> Exception:
    return KiteError(400, "InputException", message)


def _day(form: dict[str, str], name: str) -> date:
    text = form.get(name, "")
    try:
        return datetime.fromisoformat(text).date()  # Kite's "yyyy-mm-dd hh:mm:ss" or a bare date
    except ValueError:
        raise _input_error(f"invalid `{name}` date: {text!r}") from None


def historical(sandbox: KiteSandbox, parts: list[str], form: dict[str, str]) -> dict[str, Any]:
    """The `data` of GET /instruments/historical/{instrument_token}/{interval} (`parts` after the prefix)."""
    if len(parts) != 2:
        raise _input_error("invalid historical data path")
    token, interval = parts
    if interval not in KITE_INTERVALS:
        raise _input_error(f"invalid interval: {interval}")
    if interval != "day":
        raise _input_error(f"the sandbox serves the day interval only, not {interval}")
    start, end = _day(form, "from"), _day(form, "to")
    if start > end:
        raise _input_error("`from` date is after `to` date")
    if not sandbox.history.knows(token):
        raise _input_error(f"invalid token: {token}")
    with_oi = form.get("oi") == "1"
    rows: list[list[Any]] = []
    for c in sandbox.history.between(token, start, end):
        row: list[Any] = [f"{c.day.isoformat()}T00:00:00+0530", c.open, c.high, c.low, c.close, c.volume]
        rows.append([*row, 0] if with_oi else row)
    return {"candles": rows}
