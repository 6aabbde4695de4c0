"""The order journal: every intent is written before it is sent (write-ahead) and every attempt,
response, error and state change is an `order_events` row with its time.

Order state machine (`TRANSITIONS`): an order only moves along these edges; anything else is an
`IllegalTransition`, recorded as an ILLEGAL event and never applied.

| from             | to                                                          |
|------------------|-------------------------------------------------------------|
| PENDING          | SUBMITTED, CANCELLED (never sent), REJECTED                 |
| SUBMITTED        | OPEN, PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED         |
| OPEN             | PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED               |
| PARTIALLY_FILLED | FILLED, CANCELLED                                           |
| FILLED, CANCELLED, REJECTED | (terminal)                                       |

PENDING means "journaled, certainly not sent" (SUBMITTED is written before the request leaves);
SUBMITTED means "may be at the broker": it is only ever resolved by looking the tag up there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from engine.clock import Clock
from engine.models import ExitOrder, ExitStatus, Fill, Order, OrderIntent, OrderStatus, OrderType, Side
from engine.storage.db import session_scope
from engine.storage.tables import FillRow, GttRow, OrderEventRow, OrderRow

S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.SUBMITTED, S.CANCELLED, S.REJECTED}),
    S.SUBMITTED: frozenset({S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED}),
    S.OPEN: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED}),
    S.PARTIALLY_FILLED: frozenset({S.FILLED, S.CANCELLED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
}


class IllegalTransition(Exception):
    """An order status change the state machine does not allow."""

    def __init__(self, client_order_id: str, current: OrderStatus, new: OrderStatus) -> None:
        super().__init__(f"order {client_order_id}: illegal transition {current} -> {new}")
        self.client_order_id = client_order_id
        self.current = current
        self.new = new


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    return new is current or new in TRANSITIONS[current]


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def row_to_order(row: OrderRow) -> Order:
    return Order(
        client_order_id=row.client_order_id,
        instrument_key=row.instrument_key,
        side=Side(row.side),
        quantity=row.quantity,
        status=OrderStatus(row.status),
        broker_order_id=row.broker_order_id,
        order_type=OrderType(row.order_type),
        price=row.price,
        trigger_price=row.trigger_price,
        filled_quantity=row.filled_quantity,
        average_price=row.average_price,
        message=row.message,
        updated_at=row.updated_at,
    )


def gtt_to_exit(row: GttRow) -> ExitOrder:
    return ExitOrder(
        exit_id=row.exit_id,
        instrument_key=row.instrument_key,
        quantity=row.quantity,
        stop_trigger=row.stop_trigger,
        stop_limit=row.stop_limit,
        target_trigger=row.target_trigger,
        target_limit=row.target_limit,
        status=ExitStatus(row.status),
        tag=row.tag,
        updated_at=row.updated_at,
    )


class OrderJournal:
    """Reads and writes the orders, order_events, fills and gtts tables for one broker."""

    def __init__(self, db: Engine, clock: Clock, *, broker: str, trading_day: date) -> None:
        self.db = db
        self.clock = clock
        self.broker = broker
        self.trading_day = trading_day

    def _now(self) -> datetime:
        return _utc(self.clock.now())

    # orders ---------------------------------------------------------------------------------
    def get(self, client_order_id: str) -> OrderRow | None:
        with session_scope(self.db) as session:
            return session.get(OrderRow, client_order_id)

    def find_by_broker_id(self, broker_order_id: str) -> OrderRow | None:
        with session_scope(self.db) as session:
            return session.exec(select(OrderRow).where(OrderRow.broker_order_id == broker_order_id)).first()

    def orders(
        self, *, statuses: Iterable[OrderStatus] | None = None, trading_day: date | None = None
    ) -> list[OrderRow]:
        query = select(OrderRow).where(OrderRow.broker == self.broker)
        if statuses is not None:
            query = query.where(col(OrderRow.status).in_([s.value for s in statuses]))
        if trading_day is not None:
            query = query.where(OrderRow.trading_day == trading_day)
        with session_scope(self.db) as session:
            return list(session.exec(query.order_by(col(OrderRow.created_at))).all())

    def record_intent(self, intent: OrderIntent, *, setup_id: int | None = None) -> OrderRow:
        """Write the intent as PENDING with an INTENT event, in one transaction, before any send."""
        now = self._now()
        row = OrderRow(
            client_order_id=intent.client_order_id,
            trading_day=self.trading_day,
            broker=self.broker,
            instrument_key=intent.instrument.instrument_key,
            symbol=intent.instrument.symbol,
            side=intent.side.value,
            quantity=intent.quantity,
            order_type=intent.order_type.value,
            price=intent.price,
            trigger_price=intent.trigger_price,
            product=intent.product.value,
            purpose=intent.purpose.value,
            status=OrderStatus.PENDING.value,
            setup_id=setup_id,
            created_at=now,
            updated_at=now,
        )
        detail = {"side": intent.side.value, "quantity": intent.quantity, "order_type": intent.order_type.value,
                  "price": intent.price, "trigger_price": intent.trigger_price, "purpose": intent.purpose.value}
        with session_scope(self.db) as session:
            session.add(row)
            session.add(self._event_row(intent.client_order_id, "INTENT", detail, now))
        return row

    def record_external(self, order: Order, *, symbol: str, purpose: str, product: str = "CNC") -> OrderRow:
        """Journal an order we did not send ourselves but own (the order a fired GTT placed)."""
        now = self._now()
        row = OrderRow(
            client_order_id=order.client_order_id,
            trading_day=self.trading_day,
            broker=self.broker,
            broker_order_id=order.broker_order_id,
            instrument_key=order.instrument_key,
            symbol=symbol,
            side=order.side.value,
            quantity=order.quantity,
            order_type=order.order_type.value,
            price=order.price,
            trigger_price=order.trigger_price,
            product=product,
            purpose=purpose,
            status=order.status.value,
            filled_quantity=order.filled_quantity,
            average_price=order.average_price,
            message=order.message,
            created_at=now,
            updated_at=now,
        )
        with session_scope(self.db) as session:
            session.add(row)
            session.add(self._event_row(order.client_order_id, "RECONCILE", {"adopted": order.broker_order_id,
                                                                              "status": order.status.value}, now))
        return row

    def _event_row(self, client_order_id: str, kind: str, detail: dict[str, Any], ts: datetime) -> OrderEventRow:
        return OrderEventRow(client_order_id=client_order_id, ts=ts, kind=kind,
                             detail_json=json.dumps(detail, default=str, sort_keys=True))

    def event(self, client_order_id: str, kind: str, **detail: Any) -> None:
        self.events_add([(client_order_id, kind, detail)])

    def events_add(self, events: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Several events in one transaction."""
        now = self._now()
        with session_scope(self.db) as session:
            for client_order_id, kind, detail in events:
                session.add(self._event_row(client_order_id, kind, detail, now))

    def events(self, client_order_id: str) -> list[OrderEventRow]:
        with session_scope(self.db) as session:
            query = select(OrderEventRow).where(OrderEventRow.client_order_id == client_order_id)
            return list(session.exec(query.order_by(col(OrderEventRow.id))).all())

    def transition(
        self,
        client_order_id: str,
        status: OrderStatus,
        *,
        message: str = "",
        event: tuple[str, dict[str, Any]] | None = None,
        **fields: Any,
    ) -> OrderRow:
        """Move an order to `status` (plus field updates, plus an optional event in the same
        transaction); raise `IllegalTransition` (recorded) when the state machine forbids it."""
        now = self._now()
        with session_scope(self.db) as session:
            row = session.get(OrderRow, client_order_id)
            if row is None:
                raise KeyError(f"order {client_order_id} is not in the journal")
            current = OrderStatus(row.status)
            if not can_transition(current, status):
                session.add(self._event_row(client_order_id, "ILLEGAL", {"from": current.value, "to": status.value,
                                                                          "message": message}, now))
                session.commit()
                raise IllegalTransition(client_order_id, current, status)
            if event is not None:
                session.add(self._event_row(client_order_id, event[0], event[1], now))
            for name, value in fields.items():
                setattr(row, name, value)
            if message:
                row.message = message[:500]
            row.updated_at = now
            if status is not current:
                row.status = status.value
                session.add(self._event_row(client_order_id, "STATUS", {"from": current.value, "to": status.value,
                                                                         "message": message}, now))
            session.add(row)
            return row

    def apply(
        self, client_order_id: str, order: Order, *, event: tuple[str, dict[str, Any]] | None = None
    ) -> tuple[int, float, OrderRow]:
        """Take the broker's view of an order (broker id, fills, status) in one transaction, with an
        optional event. A status the state machine forbids (e.g. the broker reporting OPEN for an
        order we hold FILLED) is recorded as ILLEGAL, not applied; fills never go backwards.
        Returns the filled quantity and average price before, and the updated row."""
        now = self._now()
        with session_scope(self.db) as session:
            row = session.get(OrderRow, client_order_id)
            if row is None:
                raise KeyError(f"order {client_order_id} is not in the journal")
            before_filled, before_average = row.filled_quantity, row.average_price
            if event is not None:
                session.add(self._event_row(client_order_id, event[0], event[1], now))
            if order.broker_order_id:
                row.broker_order_id = order.broker_order_id
            if order.filled_quantity >= row.filled_quantity and order.average_price:
                row.average_price = order.average_price
            row.filled_quantity = max(row.filled_quantity, order.filled_quantity)
            current = OrderStatus(row.status)
            if order.status is not current:
                change = {"from": current.value, "to": order.status.value, "message": order.message}
                if can_transition(current, order.status):
                    row.status = order.status.value
                    if order.message:
                        row.message = order.message[:500]
                    session.add(self._event_row(client_order_id, "STATUS", change, now))
                else:
                    session.add(self._event_row(client_order_id, "ILLEGAL", change, now))
            row.updated_at = now
            session.add(row)
            return before_filled, before_average, row

    # fills ------------------------------------------------------------------------------------
    def record_fills(self, fills: Iterable[Fill]) -> list[Fill]:
        """Insert fills not seen before; return the new ones."""
        new: list[Fill] = []
        with session_scope(self.db) as session:
            for fill in fills:
                if session.get(FillRow, fill.fill_id) is not None:
                    continue
                session.add(FillRow(fill_id=fill.fill_id, client_order_id=fill.client_order_id,
                                    broker_order_id=fill.broker_order_id, instrument_key=fill.instrument_key,
                                    side=fill.side.value, quantity=fill.quantity, price=fill.price,
                                    ts=_utc(fill.ts)))
                new.append(fill)
        return new

    def fills(self, client_order_id: str) -> list[FillRow]:
        with session_scope(self.db) as session:
            return list(session.exec(select(FillRow).where(FillRow.client_order_id == client_order_id)).all())

    # exits (gtts) -----------------------------------------------------------------------------
    def gtt(self, exit_id: str) -> GttRow | None:
        with session_scope(self.db) as session:
            return session.get(GttRow, exit_id)

    def exit_state(self, tag: str) -> tuple[GttRow | None, bool]:
        """The latest exit journaled under `tag`, and whether an attempt to place one was made."""
        with session_scope(self.db) as session:
            query = select(GttRow).where(GttRow.tag == tag, GttRow.broker == self.broker)
            row = session.exec(query.order_by(col(GttRow.created_at).desc())).first()
            attempted = session.exec(select(OrderEventRow.id).where(
                OrderEventRow.client_order_id == tag, OrderEventRow.kind == "EXIT_ATTEMPT")).first() is not None
            return row, attempted

    def gtt_by_tag(self, tag: str) -> GttRow | None:
        with session_scope(self.db) as session:
            query = select(GttRow).where(GttRow.tag == tag, GttRow.broker == self.broker)
            return session.exec(query.order_by(col(GttRow.created_at).desc())).first()

    def gtts(self, *, active_only: bool = False) -> list[GttRow]:
        query = select(GttRow).where(GttRow.broker == self.broker)
        if active_only:
            query = query.where(GttRow.status == ExitStatus.ACTIVE.value)
        with session_scope(self.db) as session:
            return list(session.exec(query.order_by(col(GttRow.created_at))).all())

    def save_gtt(
        self,
        exit_order: ExitOrder,
        *,
        tag: str | None = None,
        position_id: int | None = None,
        event: tuple[str, dict[str, Any]] | None = None,
    ) -> GttRow:
        now = self._now()
        with session_scope(self.db) as session:
            if event is not None:
                session.add(self._event_row(tag or exit_order.tag, event[0], event[1], now))
            row = session.get(GttRow, exit_order.exit_id)
            if row is None:
                row = GttRow(exit_id=exit_order.exit_id, broker=self.broker, tag=tag or exit_order.tag,
                             instrument_key=exit_order.instrument_key, position_id=position_id,
                             quantity=exit_order.quantity, stop_trigger=exit_order.stop_trigger,
                             stop_limit=exit_order.stop_limit, target_trigger=exit_order.target_trigger,
                             target_limit=exit_order.target_limit, status=exit_order.status.value,
                             created_at=now, updated_at=now)
            else:
                row.quantity = exit_order.quantity
                row.stop_trigger, row.stop_limit = exit_order.stop_trigger, exit_order.stop_limit
                row.target_trigger, row.target_limit = exit_order.target_trigger, exit_order.target_limit
                row.status = exit_order.status.value
                row.updated_at = now
                if position_id is not None:
                    row.position_id = position_id
            session.add(row)
            return row

    def set_gtt_status(self, exit_id: str, status: ExitStatus) -> GttRow | None:
        with session_scope(self.db) as session:
            row = session.get(GttRow, exit_id)
            if row is None:
                return None
            row.status = status.value
            row.updated_at = self._now()
            session.add(row)
            return row
