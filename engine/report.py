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

import json
from datetime import date
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from engine.portfolio.times import from_db, row_as_json
from engine.risk.ledger import configured_daily_risk_cap
from engine.settings import Settings
from engine.storage import session_scope
from engine.storage.tables import OrderRow, PositionRow, RiskLedgerRow, SetupRow, TradeRow

REPORT_KEYS = ("setups", "orders", "trades", "positions", "risk")


def _setup_json(row: SetupRow) -> dict[str, Any]:
    data = row_as_json(row)
    data["rules"] = json.loads(data.pop("rules_json") or "[]")
    return data


def daily_report(db: Engine, day: date, settings: Settings) -> dict[str, Any]:
    with session_scope(db) as session:
        setups = session.exec(
            select(SetupRow).where(SetupRow.trading_day == day).order_by(col(SetupRow.score).desc(), col(SetupRow.id))
        ).all()
        orders = session.exec(
            select(OrderRow).where(OrderRow.trading_day == day).order_by(col(OrderRow.created_at))
        ).all()
        trades = session.exec(
            select(TradeRow).where(TradeRow.trading_day == day).order_by(col(TradeRow.exit_time))
        ).all()
        positions = session.exec(select(PositionRow).order_by(col(PositionRow.opened_at))).all()
        ledger = session.get(RiskLedgerRow, day)
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
