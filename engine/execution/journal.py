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

from sqlalchemy import Engine, Table, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from engine.clock import Clock
from engine.models import ExitOrder, ExitStatus, Fill, Order, OrderIntent, OrderStatus, OrderType, Side
from engine.storage.tables import FillRow, GttRow, OrderEventRow, OrderRow, PositionRow

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


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; the journal stores UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


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
        updated_at=_aware(row.updated_at),
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
        updated_at=_aware(row.updated_at),
    )


ORDERS: Table = OrderRow.__table__  # type: ignore[attr-defined]
EVENTS: Table = OrderEventRow.__table__  # type: ignore[attr-defined]
FILLS: Table = FillRow.__table__  # type: ignore[attr-defined]
GTTS: Table = GttRow.__table__  # type: ignore[attr-defined]
POSITIONS: Table = PositionRow.__table__  # type: ignore[attr-defined]


def _order_row(mapping: RowMapping | dict[str, Any]) -> OrderRow:
    return OrderRow(**dict(mapping))


def _gtt_row(mapping: RowMapping | dict[str, Any]) -> GttRow:
    return GttRow(**dict(mapping))


class OrderJournal:
    """Reads and writes the orders, order_events, fills and gtts tables for one broker.

    SQLAlchemy Core, one short transaction per call: the journal sits on the order path, whose
    own overhead is benchmarked (bench/bench_execution.py)."""

    def __init__(self, db: Engine, clock: Clock, *, broker: str, trading_day: date) -> None:
        self.db = db
        self.clock = clock
        self.broker = broker
        self.trading_day = trading_day

    def _now(self) -> datetime:
        return _utc(self.clock.now())

    @staticmethod
    def _event(client_order_id: str, kind: str, detail: dict[str, Any], ts: datetime) -> dict[str, Any]:
        return {"client_order_id": client_order_id, "ts": ts, "kind": kind,
                "detail_json": json.dumps(detail, default=str, sort_keys=True)}

    @staticmethod
    def _fetch_order(connection: Connection, client_order_id: str) -> dict[str, Any] | None:
        found = connection.execute(select(ORDERS).where(ORDERS.c.client_order_id == client_order_id)).mappings().first()
        return dict(found) if found is not None else None

    # orders ---------------------------------------------------------------------------------
    def get(self, client_order_id: str) -> OrderRow | None:
        with self.db.connect() as connection:
            found = self._fetch_order(connection, client_order_id)
        return _order_row(found) if found is not None else None

    def orders(
        self, *, statuses: Iterable[OrderStatus] | None = None, trading_day: date | None = None
    ) -> list[OrderRow]:
        query = select(ORDERS).where(ORDERS.c.broker == self.broker)
        if statuses is not None:
            query = query.where(ORDERS.c.status.in_([s.value for s in statuses]))
        if trading_day is not None:
            query = query.where(ORDERS.c.trading_day == trading_day)
        with self.db.connect() as connection:
            rows = connection.execute(query.order_by(ORDERS.c.created_at)).mappings().all()
        return [_order_row(row) for row in rows]

    def _insert_order(self, values: dict[str, Any], event: dict[str, Any]) -> OrderRow:
        with self.db.begin() as connection:
            connection.execute(insert(ORDERS), values)
            connection.execute(insert(EVENTS), event)
        return _order_row(values)

    def record_intent(self, intent: OrderIntent, *, setup_id: int | None = None) -> OrderRow:
        """Write the intent as PENDING with an INTENT event, in one transaction, before any send."""
        now = self._now()
        values = {
            "client_order_id": intent.client_order_id, "trading_day": self.trading_day, "broker": self.broker,
            "broker_order_id": None, "instrument_key": intent.instrument.instrument_key,
            "symbol": intent.instrument.symbol, "side": intent.side.value, "quantity": intent.quantity,
            "order_type": intent.order_type.value, "price": intent.price, "trigger_price": intent.trigger_price,
            "product": intent.product.value, "purpose": intent.purpose.value, "status": OrderStatus.PENDING.value,
            "filled_quantity": 0, "average_price": 0.0, "message": "", "setup_id": setup_id,
            "created_at": now, "updated_at": now,
        }
        detail = {"side": intent.side.value, "quantity": intent.quantity, "order_type": intent.order_type.value,
                  "price": intent.price, "trigger_price": intent.trigger_price, "purpose": intent.purpose.value,
                  "market_protection": intent.market_protection}
        return self._insert_order(values, self._event(intent.client_order_id, "INTENT", detail, now))

    def record_external(self, order: Order, *, symbol: str, purpose: str, product: str = "CNC") -> OrderRow:
        """Journal an order we did not send ourselves but own (the order a fired GTT placed)."""
        now = self._now()
        values = {
            "client_order_id": order.client_order_id, "trading_day": self.trading_day, "broker": self.broker,
            "broker_order_id": order.broker_order_id, "instrument_key": order.instrument_key, "symbol": symbol,
            "side": order.side.value, "quantity": order.quantity, "order_type": order.order_type.value,
            "price": order.price, "trigger_price": order.trigger_price, "product": product, "purpose": purpose,
            "status": order.status.value, "filled_quantity": order.filled_quantity,
            "average_price": order.average_price, "message": order.message, "setup_id": None,
            "created_at": now, "updated_at": now,
        }
        detail = {"adopted": order.broker_order_id, "status": order.status.value}
        return self._insert_order(values, self._event(order.client_order_id, "RECONCILE", detail, now))

    def event(self, client_order_id: str, kind: str, **detail: Any) -> None:
        self.events_add([(client_order_id, kind, detail)])

    def events_add(self, events: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Several events in one transaction."""
        now = self._now()
        rows = [self._event(client_order_id, kind, detail, now) for client_order_id, kind, detail in events]
        with self.db.begin() as connection:
            connection.execute(insert(EVENTS), rows)

    def events(self, client_order_id: str) -> list[OrderEventRow]:
        query = select(EVENTS).where(EVENTS.c.client_order_id == client_order_id).order_by(EVENTS.c.id)
        with self.db.connect() as connection:
            return [OrderEventRow(**dict(row)) for row in connection.execute(query).mappings().all()]

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
        with self.db.begin() as connection:
            row = self._fetch_order(connection, client_order_id)
            if row is None:
                raise KeyError(f"order {client_order_id} is not in the journal")
            current = OrderStatus(row["status"])
            change = {"from": current.value, "to": status.value, "message": message}
            if not can_transition(current, status):
                connection.execute(insert(EVENTS), self._event(client_order_id, "ILLEGAL", change, now))
                illegal = IllegalTransition(client_order_id, current, status)
            else:
                illegal = None
                events = [self._event(client_order_id, event[0], event[1], now)] if event is not None else []
                values = dict(fields, updated_at=now)
                if message:
                    values["message"] = message[:500]
                if status is not current:
                    values["status"] = status.value
                    events.append(self._event(client_order_id, "STATUS", change, now))
                connection.execute(update(ORDERS).where(ORDERS.c.client_order_id == client_order_id), values)
                if events:
                    connection.execute(insert(EVENTS), events)
                row.update(values)
        if illegal is not None:
            raise illegal
        return _order_row(row)

    def apply(
        self, client_order_id: str, order: Order, *, event: tuple[str, dict[str, Any]] | None = None
    ) -> tuple[int, float, OrderRow]:
        """Take the broker's view of an order (broker id, fills, status) in one transaction, with an
        optional event. A status the state machine forbids (e.g. the broker reporting OPEN for an
        order we hold FILLED) is recorded as ILLEGAL, not applied; fills never go backwards.
        Returns the filled quantity and average price before, and the updated row."""
        now = self._now()
        with self.db.begin() as connection:
            row = self._fetch_order(connection, client_order_id)
            if row is None:
                raise KeyError(f"order {client_order_id} is not in the journal")
            before_filled, before_average = row["filled_quantity"], row["average_price"]
            events = [self._event(client_order_id, event[0], event[1], now)] if event is not None else []
            values: dict[str, Any] = {"updated_at": now, "filled_quantity": max(before_filled, order.filled_quantity)}
            if order.broker_order_id:
                values["broker_order_id"] = order.broker_order_id
            if order.filled_quantity >= before_filled and order.average_price:
                values["average_price"] = order.average_price
            current = OrderStatus(row["status"])
            if order.status is not current:
                change = {"from": current.value, "to": order.status.value, "message": order.message}
                if can_transition(current, order.status):
                    values["status"] = order.status.value
                    if order.message:
                        values["message"] = order.message[:500]
                    events.append(self._event(client_order_id, "STATUS", change, now))
                else:
                    events.append(self._event(client_order_id, "ILLEGAL", change, now))
            connection.execute(update(ORDERS).where(ORDERS.c.client_order_id == client_order_id), values)
            if events:
                connection.execute(insert(EVENTS), events)
            row.update(values)
        return before_filled, before_average, _order_row(row)

    # fills ------------------------------------------------------------------------------------
    def record_fills(self, fills: Iterable[Fill]) -> list[Fill]:
        """Insert fills not seen before; return the new ones."""
        fills = list(fills)
        if not fills:
            return []
        with self.db.begin() as connection:
            seen = set(connection.execute(select(FILLS.c.fill_id).where(
                FILLS.c.fill_id.in_([f.fill_id for f in fills]))).scalars())
            new = [f for f in fills if f.fill_id not in seen]
            if new:
                connection.execute(insert(FILLS), [
                    {"fill_id": f.fill_id, "client_order_id": f.client_order_id, "broker_order_id": f.broker_order_id,
                     "instrument_key": f.instrument_key, "side": f.side.value, "quantity": f.quantity,
                     "price": f.price, "ts": _utc(f.ts)} for f in new])
        return new

    def fills(self, client_order_id: str) -> list[FillRow]:
        query = select(FILLS).where(FILLS.c.client_order_id == client_order_id).order_by(FILLS.c.ts)
        with self.db.connect() as connection:
            return [FillRow(**dict(row)) for row in connection.execute(query).mappings().all()]

    # exits (gtts) -----------------------------------------------------------------------------
    def gtt(self, exit_id: str) -> GttRow | None:
        with self.db.connect() as connection:
            found = connection.execute(select(GTTS).where(GTTS.c.exit_id == exit_id)).mappings().first()
        return _gtt_row(found) if found is not None else None

    def exit_state(self, tag: str) -> tuple[GttRow | None, bool]:
        """The latest exit journaled under `tag`, and whether an attempt to place one was made."""
        with self.db.connect() as connection:
            found = connection.execute(select(GTTS).where(GTTS.c.tag == tag, GTTS.c.broker == self.broker)
                                       .order_by(GTTS.c.created_at.desc())).mappings().first()
            attempted = connection.execute(select(EVENTS.c.id).where(
                EVENTS.c.client_order_id == tag, EVENTS.c.kind == "EXIT_ATTEMPT")).first() is not None
        return (_gtt_row(found) if found is not None else None), attempted

    def gtts(self, *, active_only: bool = False) -> list[GttRow]:
        query = select(GTTS).where(GTTS.c.broker == self.broker)
        if active_only:
            query = query.where(GTTS.c.status == ExitStatus.ACTIVE.value)
        with self.db.connect() as connection:
            return [_gtt_row(row) for row in connection.execute(query.order_by(GTTS.c.created_at)).mappings().all()]

    def save_gtt(
        self,
        exit_order: ExitOrder,
        *,
        tag: str | None = None,
        position_id: int | None = None,
        event: tuple[str, dict[str, Any]] | None = None,
    ) -> GttRow:
        now = self._now()
        values: dict[str, Any] = {
            "quantity": exit_order.quantity, "stop_trigger": exit_order.stop_trigger,
            "stop_limit": exit_order.stop_limit, "target_trigger": exit_order.target_trigger,
            "target_limit": exit_order.target_limit, "status": exit_order.status.value, "updated_at": now,
        }
        if position_id is not None:
            values["position_id"] = position_id
        with self.db.begin() as connection:
            found = connection.execute(select(GTTS).where(GTTS.c.exit_id == exit_order.exit_id)).mappings().first()
            if found is None:
                row = {"exit_id": exit_order.exit_id, "broker": self.broker, "tag": tag or exit_order.tag,
                       "instrument_key": exit_order.instrument_key, "position_id": position_id, "created_at": now,
                       **values}
                connection.execute(insert(GTTS), row)
            else:
                row = dict(found) | values
                connection.execute(update(GTTS).where(GTTS.c.exit_id == exit_order.exit_id), values)
            if position_id is not None:  # the position names the exit protecting it
                connection.execute(update(POSITIONS).where(POSITIONS.c.id == position_id),
                                   {"exit_id": exit_order.exit_id})
            if event is not None:
                connection.execute(insert(EVENTS), self._event(row["tag"], event[0], event[1], now))
        return _gtt_row(row)

    def set_gtt_status(self, exit_id: str, status: ExitStatus) -> None:
        with self.db.begin() as connection:
            connection.execute(update(GTTS).where(GTTS.c.exit_id == exit_id),
                               {"status": status.value, "updated_at": self._now()})
