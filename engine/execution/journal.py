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

import dataclasses
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from engine.clock import Clock
from engine.models import ExitOrder, ExitStatus, Fill, Order, OrderIntent, OrderStatus, OrderType
from engine.storage.journal import JournaledExit, JournaledOrder, OrderEvent, journal_store
from engine.storage.memory import Database

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

EventSpec = tuple[str, dict[str, Any]]  # (kind, detail) of an event written with a change


class IllegalTransition(Exception):
    """An order status change the state machine does not allow."""

    def __init__(self, client_order_id: str, current: OrderStatus, new: OrderStatus) -> None:
        super().__init__(f"order {client_order_id}: illegal transition {current} -> {new}")
        self.client_order_id = client_order_id
        self.current = current
        self.new = new


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    return new is current or new in TRANSITIONS[current]


def row_to_order(row: JournaledOrder) -> Order:
    return Order(
        client_order_id=row.client_order_id,
        instrument_key=row.instrument_key,
        side=row.side,
        quantity=row.quantity,
        status=row.status,
        broker_order_id=row.broker_order_id,
        order_type=OrderType(row.order_type),
        price=row.price,
        trigger_price=row.trigger_price,
        filled_quantity=row.filled_quantity,
        average_price=row.average_price,
        message=row.message,
        updated_at=row.updated_at,
    )


def gtt_to_exit(row: JournaledExit) -> ExitOrder:
    return ExitOrder(
        exit_id=row.exit_id,
        instrument_key=row.instrument_key,
        quantity=row.quantity,
        stop_trigger=row.stop_trigger,
        stop_limit=row.stop_limit,
        target_trigger=row.target_trigger,
        target_limit=row.target_limit,
        status=row.status,
        tag=row.tag,
        updated_at=row.updated_at,
    )


class OrderJournal:
    """The orders, order_events, fills and gtts of one broker, on the journal store of `db`
    (`engine.storage.journal`): SQL, or in memory for a backtest."""

    def __init__(self, db: Database, clock: Clock, *, broker: str, trading_day: date) -> None:
        self.db = db
        self.store = journal_store(db)
        self.clock = clock
        self.broker = broker
        self.trading_day = trading_day

    def _now(self) -> datetime:
        return self.clock.now().astimezone(UTC)

    @staticmethod
    def _event(client_order_id: str, kind: str, detail: dict[str, Any], ts: datetime) -> OrderEvent:
        return OrderEvent(client_order_id=client_order_id, ts=ts, kind=kind, detail=detail)

    def _events(self, client_order_id: str, event: EventSpec | None, ts: datetime) -> list[OrderEvent]:
        return [self._event(client_order_id, event[0], event[1], ts)] if event is not None else []

    # orders ---------------------------------------------------------------------------------
    def get(self, client_order_id: str) -> JournaledOrder | None:
        return self.store.order(client_order_id)

    def orders(
        self, *, statuses: Iterable[OrderStatus] | None = None, trading_day: date | None = None
    ) -> list[JournaledOrder]:
        return self.store.orders(self.broker, statuses=statuses, trading_day=trading_day)

    def symbol_of(self, instrument_key: str) -> str | None:
        return self.store.symbol_of(instrument_key)

    def _insert_order(self, order: JournaledOrder, kind: str, detail: dict[str, Any]) -> JournaledOrder:
        self.store.add_order(order, self._event(order.client_order_id, kind, detail, order.created_at))
        return order

    def record_intent(self, intent: OrderIntent, *, setup_id: int | None = None) -> JournaledOrder:
        """Write the intent as PENDING with an INTENT event, in one transaction, before any send."""
        now = self._now()
        order = JournaledOrder(
            client_order_id=intent.client_order_id, trading_day=self.trading_day, broker=self.broker,
            broker_order_id=None, instrument_key=intent.instrument.instrument_key, symbol=intent.instrument.symbol,
            side=intent.side, quantity=intent.quantity, order_type=intent.order_type.value, price=intent.price,
            trigger_price=intent.trigger_price, product=intent.product.value, purpose=intent.purpose.value,
            status=OrderStatus.PENDING, filled_quantity=0, average_price=0.0, message="", setup_id=setup_id,
            created_at=now, updated_at=now,
        )
        detail = {"side": intent.side.value, "quantity": intent.quantity, "order_type": intent.order_type.value,
                  "price": intent.price, "trigger_price": intent.trigger_price, "purpose": intent.purpose.value,
                  "market_protection": intent.market_protection}
        return self._insert_order(order, "INTENT", detail)

    def record_external(self, order: Order, *, symbol: str, purpose: str, product: str = "CNC") -> JournaledOrder:
        """Journal an order we did not send ourselves but own (the order a fired GTT placed)."""
        now = self._now()
        journaled = JournaledOrder(
            client_order_id=order.client_order_id, trading_day=self.trading_day, broker=self.broker,
            broker_order_id=order.broker_order_id, instrument_key=order.instrument_key, symbol=symbol,
            side=order.side, quantity=order.quantity, order_type=order.order_type.value, price=order.price,
            trigger_price=order.trigger_price, product=product, purpose=purpose, status=order.status,
            filled_quantity=order.filled_quantity, average_price=order.average_price, message=order.message,
            setup_id=None, created_at=now, updated_at=now,
        )
        return self._insert_order(journaled, "RECONCILE", {"adopted": order.broker_order_id,
                                                           "status": order.status.value})

    def event(self, client_order_id: str, kind: str, **detail: Any) -> None:
        self.events_add([(client_order_id, kind, detail)])

    def events_add(self, events: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Several events in one transaction."""
        now = self._now()
        self.store.add_events([self._event(client_order_id, kind, detail, now)
                               for client_order_id, kind, detail in events])

    def events(self, client_order_id: str) -> list[OrderEvent]:
        return self.store.events(client_order_id)

    def transition(
        self,
        client_order_id: str,
        status: OrderStatus,
        *,
        message: str = "",
        event: EventSpec | None = None,
        **fields: Any,
    ) -> JournaledOrder:
        """Move an order to `status` (plus field updates, plus an optional event in the same
        transaction); raise `IllegalTransition` (recorded) when the state machine forbids it."""
        now = self._now()

        def change(row: JournaledOrder) -> tuple[JournaledOrder, list[OrderEvent]]:
            detail = {"from": row.status.value, "to": status.value, "message": message}
            if not can_transition(row.status, status):
                return row, [self._event(client_order_id, "ILLEGAL", detail, now)]
            events = self._events(client_order_id, event, now)
            values = dict(fields, updated_at=now)
            if message:
                values["message"] = message[:500]
            if status is not row.status:
                values["status"] = status
                events.append(self._event(client_order_id, "STATUS", detail, now))
            return dataclasses.replace(row, **values), events

        before, after = self.store.change_order(client_order_id, change)
        if not can_transition(before.status, status):
            raise IllegalTransition(client_order_id, before.status, status)
        return after

    def apply(
        self, client_order_id: str, order: Order, *, event: EventSpec | None = None
    ) -> tuple[int, float, JournaledOrder]:
        """Take the broker's view of an order (broker id, fills, status) in one transaction, with an
        optional event. A status the state machine forbids (e.g. the broker reporting OPEN for an
        order we hold FILLED) is recorded as ILLEGAL, not applied; fills never go backwards.
        Returns the filled quantity and average price before, and the updated order."""
        now = self._now()

        def change(row: JournaledOrder) -> tuple[JournaledOrder, list[OrderEvent]]:
            events = self._events(client_order_id, event, now)
            values: dict[str, Any] = {"updated_at": now, "filled_quantity": max(row.filled_quantity,
                                                                                order.filled_quantity)}
            if order.broker_order_id:
                values["broker_order_id"] = order.broker_order_id
            if order.filled_quantity >= row.filled_quantity and order.average_price:
                values["average_price"] = order.average_price
            if order.status is not row.status:
                detail = {"from": row.status.value, "to": order.status.value, "message": order.message}
                if can_transition(row.status, order.status):
                    values["status"] = order.status
                    if order.message:
                        values["message"] = order.message[:500]
                    events.append(self._event(client_order_id, "STATUS", detail, now))
                else:
                    events.append(self._event(client_order_id, "ILLEGAL", detail, now))
            return dataclasses.replace(row, **values), events

        before, after = self.store.change_order(client_order_id, change)
        return before.filled_quantity, before.average_price, after

    # fills ------------------------------------------------------------------------------------
    def record_fills(self, fills: Iterable[Fill]) -> list[Fill]:
        """Store fills not seen before; return the new ones."""
        return self.store.add_fills([dataclasses.replace(fill, ts=fill.ts.astimezone(UTC)) for fill in fills])

    def fills(self, client_order_id: str) -> list[Fill]:
        return self.store.fills(client_order_id)

    # exits (gtts) -----------------------------------------------------------------------------
    def gtt(self, exit_id: str) -> JournaledExit | None:
        return self.store.gtt(exit_id)

    def exit_state(self, tag: str) -> tuple[JournaledExit | None, bool]:
        """The latest exit journaled under `tag`, and whether an attempt to place one was made."""
        return self.store.latest_gtt(self.broker, tag), self.store.has_event(tag, "EXIT_ATTEMPT")

    def gtts(self, *, active_only: bool = False) -> list[JournaledExit]:
        return self.store.gtts(self.broker, active_only=active_only)

    def save_gtt(
        self,
        exit_order: ExitOrder,
        *,
        tag: str | None = None,
        position_id: int | None = None,
        event: EventSpec | None = None,
    ) -> JournaledExit:
        """Journal a new exit or the broker's view of a known one (the positions table names the exit
        protecting a position: `PositionBook.set_exit` writes that)."""
        now = self._now()
        values: dict[str, Any] = {
            "quantity": exit_order.quantity, "stop_trigger": exit_order.stop_trigger,
            "stop_limit": exit_order.stop_limit, "target_trigger": exit_order.target_trigger,
            "target_limit": exit_order.target_limit, "status": exit_order.status, "updated_at": now,
        }
        if position_id is not None:
            values["position_id"] = position_id

        def change(row: JournaledExit | None) -> tuple[JournaledExit, list[OrderEvent]]:
            if row is None:
                row = JournaledExit(exit_id=exit_order.exit_id, broker=self.broker, tag=tag or exit_order.tag,
                                    instrument_key=exit_order.instrument_key, created_at=now,
                                    **({"position_id": None} | values))
            else:
                row = dataclasses.replace(row, **values)
            return row, self._events(row.tag, event, now)

        return self.store.change_gtt(exit_order.exit_id, change)

    def set_gtt_status(self, exit_id: str, status: ExitStatus) -> None:
        self.store.set_gtt_status(exit_id, status, self._now())
