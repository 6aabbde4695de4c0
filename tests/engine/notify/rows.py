"""Rows as the engine writes them, for the notification tests (times in UTC, as in the database)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time

from sqlalchemy import Engine

from engine.storage import session_scope
from engine.storage.tables import OrderEventRow, OrderRow, PositionRow, RiskLedgerRow, TradeRow

DAY = date(2024, 6, 4)
AT_1510_IST = datetime.combine(DAY, time(9, 40), UTC)


def add_entry(db: Engine, client_order_id: str, symbol: str, *, day: date = DAY, quantity: int = 10,
              price: float = 100.0) -> int:
    """The filled entry order of `day` and the position it opened; returns the position id."""
    opened = datetime.combine(day, time(9, 40), UTC)
    with session_scope(db) as session:
        session.add(OrderRow(client_order_id=client_order_id, trading_day=day, broker="paper",
                             instrument_key=f"NSE_EQ|{symbol}", symbol=symbol, side="BUY", quantity=quantity,
                             order_type="LIMIT", price=price, status="FILLED", filled_quantity=quantity,
                             average_price=price, created_at=opened, updated_at=opened))
        position = PositionRow(instrument_key=f"NSE_EQ|{symbol}", symbol=symbol, quantity=quantity,
                               average_price=price, stop=price * 0.9, target=price * 1.2, opened_at=opened,
                               entry_client_order_id=client_order_id)
        session.add(position)
        session.flush()
        return position.id or 0


def add_trade(db: Engine, position_id: int, symbol: str, *, net_pnl: float, reason: str = "stop (GTT)",
              day: date = DAY) -> int:
    closed = datetime.combine(day, time(6, 0), UTC)
    with session_scope(db) as session:
        trade = TradeRow(position_id=position_id, instrument_key=f"NSE_EQ|{symbol}", symbol=symbol, side="BUY",
                         quantity=10, entry_time=closed, entry_price=100.0, exit_time=closed, exit_price=90.0,
                         gross_pnl=net_pnl + 5, charges=5.0, net_pnl=net_pnl, exit_reason=reason, trading_day=day)
        session.add(trade)
        position = session.get(PositionRow, position_id)
        if position is not None:
            position.status = "CLOSED"
            session.add(position)
        session.flush()
        return trade.id or 0


def add_exit_failed(db: Engine, symbol: str, reason: str, attempts: int = 10) -> int:
    with session_scope(db) as session:
        event = OrderEventRow(client_order_id=f"X-{symbol}", ts=datetime.combine(DAY, time(6, 5), UTC),
                              kind="EXIT_FAILED",
                              detail_json=json.dumps({"symbol": symbol, "reason": reason, "attempts": attempts}))
        session.add(event)
        session.flush()
        return event.id or 0


def add_other_event(db: Engine) -> None:
    with session_scope(db) as session:
        session.add(OrderEventRow(client_order_id="E1", ts=AT_1510_IST, kind="STATUS", detail_json="{}"))


def kill(db: Engine, reason: str, realized_pnl: float) -> None:
    with session_scope(db) as session:
        session.add(RiskLedgerRow(trading_day=DAY, capital=1_000_000.0, daily_risk_cap=30_000.0,
                                  realized_pnl=realized_pnl, kill_switch=True, kill_reason=reason,
                                  updated_at=AT_1510_IST))
