"""Event detection from the database, an outbox: the engine's facts already are rows, so nothing in
the trading core calls out. An entry filled opens a `positions` row; an exit writes a `trades` row
(reason and P&L); the kill switch is the day's `risk_ledger` row; an exit that could not be placed
is an `order_events` row of kind EXIT_FAILED. A `Cursor` keeps the highest ids already read, so a
scan every minute reads only new rows (primary-key ranges)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine

from engine.notify import messages
from engine.notify.messages import Notification
from engine.portfolio.times import from_db
from engine.session.stages import LIVE_SESSION, TradingDayContext, stage_state
from engine.storage.journal import JournalStore, journal_store
from engine.storage.ledger import LedgerDay, ledger_store
from engine.storage.positions import PositionRecord, PositionStore, position_store
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
    journal, positions = journal_store(db), position_store(db)
    new_positions = positions.positions(after_id=cursor.position_id)
    entry_days = _entry_days(journal, new_positions)
    for position in new_positions:
        cursor.position_id = max(cursor.position_id, position.id)
        if entry_days.get(position.entry_client_order_id, from_db(position.opened_at).date()) == day:
            found.append(messages.entry_filled(
                day, replay=replay, client_order_id=position.entry_client_order_id, symbol=position.symbol,
                quantity=position.quantity, price=position.average_price, stop=position.stop,
                target=position.target))
    for record in positions.trade_records_after(cursor.trade_id):
        cursor.trade_id = max(cursor.trade_id, record.id)
        if record.trading_day == day:
            trade = record.trade
            found.append(messages.exit_done(
                day, replay=replay, trade_id=record.id, symbol=trade.symbol, quantity=trade.quantity,
                entry_price=trade.entry_price, exit_price=trade.exit_price, net_pnl=trade.net_pnl,
                reason=trade.exit_reason))
    newest_event = journal.last_event_id()  # first: events added meanwhile wait for the next scan
    events = journal.events_after(cursor.event_id, up_to=newest_event, kind=EXIT_FAILED)
    cursor.event_id = max(cursor.event_id, newest_event)
    for event in events:
        if from_db(event.ts).date() == day:
            found.append(messages.exit_failed(
                day, replay=replay, event_id=event.id, symbol=str(event.detail.get("symbol", "?")),
                reason=str(event.detail.get("reason", "")), attempts=int(event.detail.get("attempts", 0))))
    if ledger is not None and ledger.kill_switch and not cursor.kill_seen:
        cursor.kill_seen = True
        found.append(messages.kill_switch(day, replay=replay, reason=ledger.kill_reason,
                                          realized_pnl=ledger.realized_pnl))
    if summary:
        found.append(_summary(journal, positions, day, replay, ledger))
    return found


def _entry_days(journal: JournalStore, positions: Iterable[PositionRecord]) -> dict[str, date]:
    """{entry order id: the trading day it was journaled on} of the positions whose entry is journaled."""
    entries = journal.orders_with_ids({position.entry_client_order_id for position in positions})
    return {order.client_order_id: order.trading_day for order in entries}


def day_is_replayed(context: TradingDayContext) -> bool:
    """Whether the day was (or will be) replayed: its live session's checkpoint says, else `feed.source`."""
    state = stage_state(context.db, context.day, LIVE_SESSION)
    if state is not None and "replay" in state[1]:
        return bool(state[1]["replay"])
    return context.settings.feed.source == "replay"


def _summary(journal: JournalStore, positions: PositionStore, day: date, replay: bool,
             ledger: LedgerDay | None) -> Notification:
    every_position = positions.positions()
    entry_days = _entry_days(journal, every_position)
    entries = sum(1 for position in every_position if entry_days.get(position.entry_client_order_id) == day)
    kill_reason = ledger.kill_reason if ledger is not None and ledger.kill_switch else None
    return messages.day_summary(day, replay=replay, entries=entries, exits=len(positions.trades_of(day)),
                                net_pnl=positions.realised_net(day), open_positions=len(positions.open_ids()),
                                kill_reason=kill_reason)
