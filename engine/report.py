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

from datetime import date
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from engine.models import IST
from engine.portfolio.times import from_db, row_as_json
from engine.risk.ledger import configured_daily_risk_cap
from engine.settings import Settings
from engine.storage import session_scope
from engine.storage.ledger import ledger_store
from engine.storage.setups import SetupRecord, rules_as_json, setups_store
from engine.storage.tables import OrderRow, PositionRow, TradeRow

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


def daily_report(db: Engine, day: date, settings: Settings) -> dict[str, Any]:
    setups = sorted(setups_store(db).of_day(day), key=lambda row: -row.score)  # stable: ties in id order
    ledger = ledger_store(db).get(day)
    with session_scope(db) as session:
        orders = session.exec(
            select(OrderRow).where(OrderRow.trading_day == day).order_by(col(OrderRow.created_at))
        ).all()
        trades = session.exec(
            select(TradeRow).where(TradeRow.trading_day == day).order_by(col(TradeRow.exit_time))
        ).all()
        positions = session.exec(select(PositionRow).order_by(col(PositionRow.opened_at))).all()
    held = [
        p for p in positions
        if from_db(p.opened_at).date() <= day and (p.closed_at is None or from_db(p.closed_at).date() >= day)
    ]
    if ledger is not None:
        risk = {"capital": ledger.capital, "daily_risk_cap": ledger.daily_risk_cap,
                "risk_used": round(ledger.risk_used, 2)}
    else:
        risk = {"capital": settings.capital, "daily_risk_cap": configured_daily_risk_cap(settings), "risk_used": 0.0}
    return {
        "setups": [_setup_json(row) for row in setups],
        "orders": [row_as_json(row) for row in orders],
        "trades": [row_as_json(row) for row in trades],
        "positions": [row_as_json(row) for row in held],
        "risk": risk,
    }
