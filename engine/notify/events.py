"""Event detection from the database, an outbox: the engine's facts already are rows, so nothing in
the trading core calls out. An entry filled opens a `positions` row; an exit writes a `trades` row
(reason and P&L); the kill switch is the day's `risk_ledger` row; an exit that could not be placed
is an `order_events` row of kind EXIT_FAILED. A `Cursor` keeps the highest ids already read, so a
scan every minute reads only new rows (primary-key ranges)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from engine.models import PositionStatus
from engine.notify import messages
from engine.notify.messages import Notification
from engine.portfolio.times import from_db
from engine.session.stages import LIVE_SESSION, TradingDayContext, stage_state
from engine.storage import session_scope
from engine.storage.ledger import LedgerDay, ledger_store
from engine.storage.tables import OrderEventRow, OrderRow, PositionRow, TradeRow
from engine.trading.guard import EXIT_FAILED


@dataclass
class Cursor:
    """The highest row ids a scan has read (every row, of any day), and whether the kill switch was seen."""

    position_id: int = 0
    trade_id: int = 0
    event_id: int = 0
    kill_seen: bool = False


def collect(db: Engine, day: date, *, replay: bool, cursor: Cursor | None = None,
            summary: bool = False) -> list[Notification]:
    """The day's events newer than `cursor` (advanced in place; None: the whole day), in the order
    entries, exits, failed exits, kill switch, then the day's summary when `summary`."""
    cursor = cursor if cursor is not None else Cursor()
    found: list[Notification] = []
    ledger = ledger_store(db).get(day)
    with session_scope(db) as session:
        positions = session.exec(
            select(PositionRow, col(OrderRow.trading_day))
            .join(OrderRow, col(OrderRow.client_order_id) == PositionRow.entry_client_order_id, isouter=True)
            .where(col(PositionRow.id) > cursor.position_id).order_by(col(PositionRow.id))
        ).all()
        for position, entry_day in positions:
            cursor.position_id = max(cursor.position_id, position.id or 0)
            if (entry_day or from_db(position.opened_at).date()) == day:
                found.append(messages.entry_filled(
                    day, replay=replay, client_order_id=position.entry_client_order_id, symbol=position.symbol,
                    quantity=position.quantity, price=position.average_price, stop=position.stop,
                    target=position.target))
        trades = session.exec(
            select(TradeRow).where(col(TradeRow.id) > cursor.trade_id).order_by(col(TradeRow.id))
        ).all()
        for trade in trades:
            cursor.trade_id = max(cursor.trade_id, trade.id or 0)
            if trade.trading_day == day:
                found.append(messages.exit_done(
                    day, replay=replay, trade_id=trade.id or 0, symbol=trade.symbol, quantity=trade.quantity,
                    entry_price=trade.entry_price, exit_price=trade.exit_price, net_pnl=trade.net_pnl,
                    reason=trade.exit_reason))
        newest_event = session.exec(select(func.max(OrderEventRow.id))).one() or 0  # first: rows added later wait
        events = session.exec(
            select(OrderEventRow).where(col(OrderEventRow.id) > cursor.event_id, col(OrderEventRow.id) <= newest_event,
                                        OrderEventRow.kind == EXIT_FAILED).order_by(col(OrderEventRow.id))
        ).all()
        cursor.event_id = max(cursor.event_id, newest_event)
        for event in events:
            if from_db(event.ts).date() == day:
                detail = json.loads(event.detail_json or "{}")
                found.append(messages.exit_failed(
                    day, replay=replay, event_id=event.id or 0, symbol=str(detail.get("symbol", "?")),
                    reason=str(detail.get("reason", "")), attempts=int(detail.get("attempts", 0))))
        if ledger is not None and ledger.kill_switch and not cursor.kill_seen:
            cursor.kill_seen = True
            found.append(messages.kill_switch(day, replay=replay, reason=ledger.kill_reason,
                                              realized_pnl=ledger.realized_pnl))
        if summary:
            found.append(_summary(session, day, replay, ledger))
    return found


def day_is_replayed(context: TradingDayContext) -> bool:
    """Whether the day was (or will be) replayed: its live session's checkpoint says, else `feed.source`."""
    state = stage_state(context.db, context.day, LIVE_SESSION)
    if state is not None and "replay" in state[1]:
        return bool(state[1]["replay"])
    return context.settings.feed.source == "replay"


def _summary(session: Session, day: date, replay: bool, ledger: LedgerDay | None) -> Notification:
    entries = session.exec(
        select(func.count()).select_from(PositionRow)
        .join(OrderRow, OrderRow.client_order_id == PositionRow.entry_client_order_id)  # type: ignore[arg-type]
        .where(OrderRow.trading_day == day)
    ).one()
    trades = session.exec(select(TradeRow.net_pnl).where(TradeRow.trading_day == day)).all()
    held = session.exec(select(func.count()).select_from(PositionRow)
                        .where(PositionRow.status == PositionStatus.OPEN.value)).one()
    kill_reason = ledger.kill_reason if ledger is not None and ledger.kill_switch else None
    return messages.day_summary(day, replay=replay, entries=entries, exits=len(trades), net_pnl=sum(trades),
                                open_positions=held, kill_reason=kill_reason)
