"""The daily report: what the engine decided and did on one trading day, from the database.

`daily_report(db, day)` returns exactly
`{"setups": [...], "orders": [...], "trades": [...], "positions": [...],
  "risk": {"capital": ..., "daily_risk_cap": ..., "risk_used": ...}}`:
- setups: every setup of the day with its status (CANDIDATE, EXECUTED, SKIPPED, EXPIRED), the
  reason, quantity, and `rules` — each validator rule with passed and the values seen;
- orders: the order journal of the day (entries, our exits, fired GTT legs);
- trades: positions closed that day, with gross and net P&L after charges;
- positions: positions held at some time that day (opened on or before it, not closed before it);
- risk: the day's capital, risk cap and the initial risk of its entries (the risk ledger; with no
  ledger row, the configured capital and cap and 0 used).
Times are ISO 8601 in IST."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine

from engine.models import IST
from engine.portfolio.times import from_db
from engine.risk.ledger import configured_daily_risk_cap
from engine.settings import Settings
from engine.storage.journal import JournaledOrder, journal_store
from engine.storage.ledger import ledger_store
from engine.storage.positions import PositionRecord, position_store
from engine.storage.setups import SetupRecord, rules_as_json, setups_store

REPORT_KEYS = ("setups", "orders", "trades", "positions", "risk")


def _setup_json(row: SetupRecord) -> dict[str, Any]:
    """The row's columns as `row_as_json` gives them, its rules as a list."""
    return {"id": row.id, "trading_day": row.trading_day.isoformat(),
            "found_at": row.found_at.astimezone(IST).isoformat(), "instrument_key": row.instrument_key,
            "symbol": row.symbol, "strategy": row.strategy, "side": row.side.value, "entry": row.entry,
            "stop": row.stop, "target": row.target, "score": row.score, "reason": row.reason,
            "status": row.status.value, "status_reason": row.status_reason, "quantity": row.quantity,
            "client_order_id": row.client_order_id,
            "rules": rules_as_json(row.rules)}


def _json_value(value: Any) -> Any:
    """A record's value as the report shows its column: times ISO in IST, dates ISO, statuses as text."""
    if isinstance(value, datetime):
        return from_db(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value.value if isinstance(value, StrEnum) else value


def _order_json(order: JournaledOrder) -> dict[str, Any]:
    """The row of `orders`: the record's fields are its columns."""
    return {field.name: _json_value(getattr(order, field.name)) for field in dataclasses.fields(order)}


def _position_json(position: PositionRecord) -> dict[str, Any]:
    """The row of `positions`, its columns in table order."""
    columns = ("id", "instrument_key", "symbol", "quantity", "average_price", "stop", "target", "status",
               "opened_at", "closed_at", "entry_client_order_id", "exit_id", "initial_risk")
    return {name: _json_value(getattr(position, name)) for name in columns}


def _held_on(position: PositionRecord, day: date) -> bool:
    """Opened on or before `day` and not closed before it (dates in IST)."""
    return from_db(position.opened_at).date() <= day and (
        position.closed_at is None or from_db(position.closed_at).date() >= day)


def daily_report(db: Engine, day: date, settings: Settings) -> dict[str, Any]:
    setups = sorted(setups_store(db).of_day(day), key=lambda row: -row.score)  # stable: ties in id order
    ledger = ledger_store(db).get(day)
    orders = journal_store(db).orders(None, trading_day=day)
    positions = position_store(db)
    trades = positions.trade_records_of(day)
    held = [p for p in sorted(positions.positions(), key=lambda p: p.opened_at) if _held_on(p, day)]
    if ledger is not None:
        risk = {"capital": ledger.capital, "daily_risk_cap": ledger.daily_risk_cap,
                "risk_used": round(ledger.risk_used, 2)}
    else:
        risk = {"capital": settings.capital, "daily_risk_cap": configured_daily_risk_cap(settings), "risk_used": 0.0}
    return {
        "setups": [_setup_json(row) for row in setups],
        "orders": [_order_json(order) for order in orders],
        "trades": [record.as_row() for record in trades],
        "positions": [_position_json(position) for position in held],
        "risk": risk,
    }
