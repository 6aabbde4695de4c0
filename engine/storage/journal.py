"""The order journal's repository: the orders, order_events, fills and gtts tables.

`JournalStore` is the interface, `SqlJournalStore` keeps the tables in the database (SQLAlchemy Core,
one short transaction per call: it sits on the order path, benchmarked by bench/bench_execution.py)
and `MemoryJournalStore` keeps them in dicts for a backtest, indexed by what the per-tick callers ask
for. `journal_store(db)` picks one. The state machine and the write-ahead rules live above it, in
`engine.execution.journal.OrderJournal`: a store only reads and writes, and it is the one writer of
these tables.

Reads and writes of one order (or exit) that must not interleave with another writer take a `change`
callback, run inside the store's transaction: it is handed the current record and answers the new
one and the events to write with it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Protocol

from sqlalchemy import Engine, Table, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from engine.models import ExitStatus, Fill, OrderStatus, Side
from engine.storage.memory import Database, MemoryDatabase
from engine.storage.tables import FillRow, GttRow, OrderEventRow, OrderRow


@dataclasses.dataclass(frozen=True, slots=True)
class JournaledOrder:
    """One order as journaled (a row of `orders`)."""

    client_order_id: str
    trading_day: date
    broker: str
    broker_order_id: str | None
    instrument_key: str
    symbol: str
    side: Side
    quantity: int
    order_type: str
    price: float | None
    trigger_price: float | None
    product: str
    purpose: str
    status: OrderStatus
    filled_quantity: int
    average_price: float
    message: str
    setup_id: int | None
    created_at: datetime
    updated_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class JournaledExit:
    """One two-leg exit (GTT OCO) as journaled (a row of `gtts`)."""

    exit_id: str
    broker: str
    tag: str
    instrument_key: str
    position_id: int | None
    quantity: int
    stop_trigger: float
    stop_limit: float
    target_trigger: float
    target_limit: float
    status: ExitStatus
    created_at: datetime
    updated_at: datetime


@dataclasses.dataclass(frozen=True)
class OrderEvent:
    """One attempt, response, error or state change of an order or exit (a row of `order_events`);
    `id` is its place in the journal (0 until stored). The detail is serialised on demand only."""

    client_order_id: str
    ts: datetime
    kind: str
    detail: Mapping[str, Any]
    id: int = 0

    @cached_property
    def detail_json(self) -> str:
        return json.dumps(self.detail, default=str, sort_keys=True)


OrderChange = Callable[[JournaledOrder], tuple[JournaledOrder, list[OrderEvent]]]
ExitChange = Callable[[JournaledExit | None], tuple[JournaledExit, list[OrderEvent]]]


class JournalStore(Protocol):
    # orders
    def order(self, client_order_id: str) -> JournaledOrder | None: ...

    def orders_with_ids(self, client_order_ids: Collection[str]) -> list[JournaledOrder]: ...

    def orders(
        self, broker: str | None, *, statuses: Iterable[OrderStatus] | None = None,
        trading_day: date | None = None, purpose: str | None = None,
    ) -> list[JournaledOrder]:
        """Oldest first; `broker` None means every broker."""
        ...

    def add_order(self, order: JournaledOrder, event: OrderEvent) -> None: ...

    def change_order(self, client_order_id: str, change: OrderChange) -> tuple[JournaledOrder, JournaledOrder]:
        """Apply `change` to the order in one transaction; return it before and after. KeyError if
        it is not journaled."""
        ...

    def symbol_of(self, instrument_key: str) -> str | None:
        """The symbol an order of the instrument was journaled with."""
        ...

    # events
    def add_events(self, events: Sequence[OrderEvent]) -> None: ...

    def events(self, client_order_id: str) -> list[OrderEvent]: ...

    def has_event(self, client_order_id: str, kind: str) -> bool: ...

    def last_event_id(self) -> int:
        """The id of the newest event (0: none yet)."""
        ...

    def events_after(self, event_id: int, *, up_to: int, kind: str) -> list[OrderEvent]:
        """The events of `kind` (any order) with an id above `event_id` and at most `up_to`, by id."""
        ...

    # fills
    def add_fills(self, fills: Sequence[Fill]) -> list[Fill]:
        """Store the fills not seen before (by fill id); return those."""
        ...

    def fills(self, client_order_id: str) -> list[Fill]: ...

    def broker_fills(self, broker: str) -> list[Fill]:
        """Every fill of the broker's orders, oldest first."""
        ...

    # exits
    def gtt(self, exit_id: str) -> JournaledExit | None: ...

    def gtts_with_ids(self, exit_ids: Collection[str]) -> list[JournaledExit]: ...

    def gtts(self, broker: str, *, active_only: bool = False) -> list[JournaledExit]:
        """Oldest first."""
        ...

    def all_gtts(self) -> list[JournaledExit]:
        """Every exit journaled, of any broker, oldest first."""
        ...

    def latest_gtt(self, broker: str, tag: str) -> JournaledExit | None: ...

    def gtt_statuses(self, tag: str) -> set[ExitStatus]:
        """The statuses of the exits journaled under `tag` (any broker)."""
        ...

    def change_gtt(self, exit_id: str, change: ExitChange) -> JournaledExit:
        """Insert or update the exit (`change` is handed None when it is new) in one transaction."""
        ...

    def set_gtt_status(self, exit_id: str, status: ExitStatus, now: datetime) -> None: ...

    def move_active_gtts(self, keys: Mapping[str, str]) -> int:
        """Re-key the ACTIVE exits of instruments whose key changed (old -> new); return how many."""
        ...

    def broker_ids(self, broker: str) -> list[str]:
        """The broker's order ids and exit ids journaled for `broker` (a paper broker continues after them)."""
        ...


def _changed(before: Any, after: Any, fields: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(after, name) for name in fields if getattr(after, name) != getattr(before, name)}


ORDER_FIELDS = tuple(field.name for field in dataclasses.fields(JournaledOrder))
EXIT_FIELDS = tuple(field.name for field in dataclasses.fields(JournaledExit))
_ORDER_ENUMS = {"side": Side, "status": OrderStatus}


# ---------------------------------------------------------------------------------------------- SQL
ORDERS: Table = OrderRow.__table__  # type: ignore[attr-defined]
EVENTS: Table = OrderEventRow.__table__  # type: ignore[attr-defined]
FILLS: Table = FillRow.__table__  # type: ignore[attr-defined]
GTTS: Table = GttRow.__table__  # type: ignore[attr-defined]


def _columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """Record values as column values: enums as their plain strings."""
    return {name: value.value if isinstance(value, StrEnum) else value for name, value in values.items()}


def _order_of(row: RowMapping) -> JournaledOrder:
    values = dict(row)
    values.update({name: kind(values[name]) for name, kind in _ORDER_ENUMS.items()})
    return JournaledOrder(**values)


def _exit_of(row: RowMapping) -> JournaledExit:
    values = dict(row)
    values["status"] = ExitStatus(values["status"])
    return JournaledExit(**values)


def _event_of(row: RowMapping) -> OrderEvent:
    return OrderEvent(client_order_id=row["client_order_id"], ts=row["ts"], kind=row["kind"],
                      detail=json.loads(row["detail_json"]), id=row["id"])


def _fill_of(row: RowMapping) -> Fill:
    return Fill(fill_id=row["fill_id"], client_order_id=row["client_order_id"], broker_order_id=row["broker_order_id"],
                instrument_key=row["instrument_key"], side=Side(row["side"]), quantity=row["quantity"],
                price=row["price"], ts=row["ts"])


def _event_columns(event: OrderEvent) -> dict[str, Any]:
    return {"client_order_id": event.client_order_id, "ts": event.ts, "kind": event.kind,
            "detail_json": event.detail_json}


class SqlJournalStore:
    def __init__(self, db: Engine) -> None:
        self.db = db

    def _rows(self, query: Any) -> list[RowMapping]:
        with self.db.connect() as connection:
            return list(connection.execute(query).mappings().all())

    @staticmethod
    def _add_events(connection: Connection, events: Sequence[OrderEvent]) -> None:
        if events:
            connection.execute(insert(EVENTS), [_event_columns(event) for event in events])

    # orders
    def order(self, client_order_id: str) -> JournaledOrder | None:
        rows = self._rows(select(ORDERS).where(ORDERS.c.client_order_id == client_order_id))
        return _order_of(rows[0]) if rows else None

    def orders_with_ids(self, client_order_ids: Collection[str]) -> list[JournaledOrder]:
        query = select(ORDERS).where(ORDERS.c.client_order_id.in_(list(client_order_ids)))
        return [_order_of(row) for row in self._rows(query.order_by(ORDERS.c.created_at))]

    def orders(
        self, broker: str | None, *, statuses: Iterable[OrderStatus] | None = None,
        trading_day: date | None = None, purpose: str | None = None,
    ) -> list[JournaledOrder]:
        query = select(ORDERS)
        if broker is not None:
            query = query.where(ORDERS.c.broker == broker)
        if statuses is not None:
            query = query.where(ORDERS.c.status.in_([s.value for s in statuses]))
        if trading_day is not None:
            query = query.where(ORDERS.c.trading_day == trading_day)
        if purpose is not None:
            query = query.where(ORDERS.c.purpose == purpose)
        return [_order_of(row) for row in self._rows(query.order_by(ORDERS.c.created_at))]

    def add_order(self, order: JournaledOrder, event: OrderEvent) -> None:
        values = _columns({name: getattr(order, name) for name in ORDER_FIELDS})
        with self.db.begin() as connection:
            connection.execute(insert(ORDERS), values)
            self._add_events(connection, [event])

    def change_order(self, client_order_id: str, change: OrderChange) -> tuple[JournaledOrder, JournaledOrder]:
        with self.db.begin() as connection:
            found = connection.execute(
                select(ORDERS).where(ORDERS.c.client_order_id == client_order_id)).mappings().first()
            if found is None:
                raise KeyError(f"order {client_order_id} is not in the journal")
            before = _order_of(found)
            after, events = change(before)
            values = _changed(before, after, ORDER_FIELDS)
            if values:
                connection.execute(update(ORDERS).where(ORDERS.c.client_order_id == client_order_id),
                                   _columns(values))
            self._add_events(connection, events)
        return before, after

    def symbol_of(self, instrument_key: str) -> str | None:
        with self.db.connect() as connection:
            symbol: str | None = connection.execute(
                select(ORDERS.c.symbol).where(ORDERS.c.instrument_key == instrument_key)).scalars().first()
        return symbol

    # events
    def add_events(self, events: Sequence[OrderEvent]) -> None:
        with self.db.begin() as connection:
            self._add_events(connection, events)

    def events(self, client_order_id: str) -> list[OrderEvent]:
        query = select(EVENTS).where(EVENTS.c.client_order_id == client_order_id).order_by(EVENTS.c.id)
        return [_event_of(row) for row in self._rows(query)]

    def has_event(self, client_order_id: str, kind: str) -> bool:
        query = select(EVENTS.c.id).where(EVENTS.c.client_order_id == client_order_id, EVENTS.c.kind == kind)
        with self.db.connect() as connection:
            return connection.execute(query.limit(1)).first() is not None

    def last_event_id(self) -> int:
        with self.db.connect() as connection:
            newest: int | None = connection.execute(select(func.max(EVENTS.c.id))).scalar()
        return newest or 0

    def events_after(self, event_id: int, *, up_to: int, kind: str) -> list[OrderEvent]:
        query = select(EVENTS).where(EVENTS.c.id > event_id, EVENTS.c.id <= up_to, EVENTS.c.kind == kind)
        return [_event_of(row) for row in self._rows(query.order_by(EVENTS.c.id))]

    # fills
    def add_fills(self, fills: Sequence[Fill]) -> list[Fill]:
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
                     "price": f.price, "ts": f.ts.astimezone(UTC)} for f in new])
        return new

    def fills(self, client_order_id: str) -> list[Fill]:
        query = select(FILLS).where(FILLS.c.client_order_id == client_order_id).order_by(FILLS.c.ts)
        return [_fill_of(row) for row in self._rows(query)]

    def broker_fills(self, broker: str) -> list[Fill]:
        query = (select(FILLS).join(ORDERS, FILLS.c.client_order_id == ORDERS.c.client_order_id)
                 .where(ORDERS.c.broker == broker).order_by(FILLS.c.ts))
        return [_fill_of(row) for row in self._rows(query)]

    # exits
    def gtt(self, exit_id: str) -> JournaledExit | None:
        rows = self._rows(select(GTTS).where(GTTS.c.exit_id == exit_id))
        return _exit_of(rows[0]) if rows else None

    def gtts_with_ids(self, exit_ids: Collection[str]) -> list[JournaledExit]:
        query = select(GTTS).where(GTTS.c.exit_id.in_(list(exit_ids))).order_by(GTTS.c.created_at)
        return [_exit_of(row) for row in self._rows(query)]

    def gtts(self, broker: str, *, active_only: bool = False) -> list[JournaledExit]:
        query = select(GTTS).where(GTTS.c.broker == broker)
        if active_only:
            query = query.where(GTTS.c.status == ExitStatus.ACTIVE.value)
        return [_exit_of(row) for row in self._rows(query.order_by(GTTS.c.created_at))]

    def all_gtts(self) -> list[JournaledExit]:
        return [_exit_of(row) for row in self._rows(select(GTTS).order_by(GTTS.c.created_at))]

    def latest_gtt(self, broker: str, tag: str) -> JournaledExit | None:
        query = select(GTTS).where(GTTS.c.tag == tag, GTTS.c.broker == broker).order_by(GTTS.c.created_at.desc())
        rows = self._rows(query.limit(1))
        return _exit_of(rows[0]) if rows else None

    def gtt_statuses(self, tag: str) -> set[ExitStatus]:
        with self.db.connect() as connection:
            return {ExitStatus(s) for s in connection.execute(select(GTTS.c.status).where(GTTS.c.tag == tag)).scalars()}

    def change_gtt(self, exit_id: str, change: ExitChange) -> JournaledExit:
        with self.db.begin() as connection:
            found = connection.execute(select(GTTS).where(GTTS.c.exit_id == exit_id)).mappings().first()
            before = _exit_of(found) if found is not None else None
            after, events = change(before)
            if before is None:
                connection.execute(insert(GTTS), _columns({name: getattr(after, name) for name in EXIT_FIELDS}))
            else:
                values = _changed(before, after, EXIT_FIELDS)
                if values:
                    connection.execute(update(GTTS).where(GTTS.c.exit_id == exit_id), _columns(values))
            self._add_events(connection, events)
        return after

    def set_gtt_status(self, exit_id: str, status: ExitStatus, now: datetime) -> None:
        with self.db.begin() as connection:
            connection.execute(update(GTTS).where(GTTS.c.exit_id == exit_id),
                               {"status": status.value, "updated_at": now})

    def move_active_gtts(self, keys: Mapping[str, str]) -> int:
        with self.db.begin() as connection:
            active = connection.execute(select(GTTS.c.exit_id, GTTS.c.instrument_key).where(
                GTTS.c.status == ExitStatus.ACTIVE.value, GTTS.c.instrument_key.in_(list(keys)))).all()
            for exit_id, instrument_key in active:  # one row at a time: a key renamed twice moves once
                connection.execute(update(GTTS).where(GTTS.c.exit_id == exit_id),
                                   {"instrument_key": keys[instrument_key]})
        return len(active)

    def broker_ids(self, broker: str) -> list[str]:
        with self.db.connect() as connection:
            order_ids = connection.execute(select(ORDERS.c.broker_order_id).where(ORDERS.c.broker == broker)).scalars()
            exit_ids = connection.execute(select(GTTS.c.exit_id).where(GTTS.c.broker == broker)).scalars()
            return [found for found in (*order_ids, *exit_ids) if found]


# ------------------------------------------------------------------------------------------- memory
class MemoryJournalStore:
    """The journal in dicts. Per-tick reads go through an index: orders by id, by status and by day;
    exits by id, by tag and the ACTIVE ones by broker; events by order id. Only the rare reads of
    everything a broker journaled (reconciliation) walk all its rows."""

    def __init__(self) -> None:
        self._orders: dict[str, JournaledOrder] = {}
        self._order_seq: dict[str, int] = {}  # insertion order: the clock never goes back, so oldest first
        self._by_status: dict[OrderStatus, dict[str, None]] = {status: {} for status in OrderStatus}
        self._by_day: dict[date, list[str]] = {}
        self._symbols: dict[str, str] = {}  # instrument key -> the symbol of its first order
        self._events: dict[str, list[tuple[int, OrderEvent]]] = {}  # numbered when read: rarely
        self._event_kinds: dict[str, set[str]] = {}
        self._event_count = 0
        self._fills: dict[str, Fill] = {}
        self._fills_of: dict[str, list[Fill]] = {}
        self._gtts: dict[str, JournaledExit] = {}
        self._by_tag: dict[str, list[str]] = {}
        self._active: dict[str, dict[str, None]] = {}  # broker -> exit ids, oldest first

    # orders
    def order(self, client_order_id: str) -> JournaledOrder | None:
        return self._orders.get(client_order_id)

    def orders_with_ids(self, client_order_ids: Collection[str]) -> list[JournaledOrder]:
        return self._oldest_first(i for i in client_order_ids if i in self._orders)

    def _oldest_first(self, client_order_ids: Iterable[str]) -> list[JournaledOrder]:
        return [self._orders[i] for i in sorted(set(client_order_ids), key=self._order_seq.__getitem__)]

    def orders(
        self, broker: str | None, *, statuses: Iterable[OrderStatus] | None = None,
        trading_day: date | None = None, purpose: str | None = None,
    ) -> list[JournaledOrder]:
        if statuses is not None:
            candidates: Iterable[str] = (i for status in statuses for i in self._by_status[status])
        elif trading_day is not None:
            candidates = self._by_day.get(trading_day, ())
        else:
            candidates = self._orders
        return [order for order in self._oldest_first(candidates)
                if (broker is None or order.broker == broker)
                and (trading_day is None or order.trading_day == trading_day)
                and (purpose is None or order.purpose == purpose)]

    def add_order(self, order: JournaledOrder, event: OrderEvent) -> None:
        key = order.client_order_id
        if key in self._orders:
            raise KeyError(f"order {key} is already in the journal")
        self._orders[key] = order
        self._order_seq[key] = len(self._order_seq)
        self._by_status[order.status][key] = None
        self._by_day.setdefault(order.trading_day, []).append(key)
        self._symbols.setdefault(order.instrument_key, order.symbol)
        self.add_events([event])

    def change_order(self, client_order_id: str, change: OrderChange) -> tuple[JournaledOrder, JournaledOrder]:
        before = self._orders.get(client_order_id)
        if before is None:
            raise KeyError(f"order {client_order_id} is not in the journal")
        after, events = change(before)
        self._orders[client_order_id] = after
        if after.status is not before.status:
            del self._by_status[before.status][client_order_id]
            self._by_status[after.status][client_order_id] = None
        self.add_events(events)
        return before, after

    def symbol_of(self, instrument_key: str) -> str | None:
        return self._symbols.get(instrument_key)

    # events
    def add_events(self, events: Sequence[OrderEvent]) -> None:
        for event in events:
            self._event_count += 1
            key = event.client_order_id
            self._events.setdefault(key, []).append((self._event_count, event))
            self._event_kinds.setdefault(key, set()).add(event.kind)

    def events(self, client_order_id: str) -> list[OrderEvent]:
        return [dataclasses.replace(event, id=number) for number, event in self._events.get(client_order_id, ())]

    def has_event(self, client_order_id: str, kind: str) -> bool:
        return kind in self._event_kinds.get(client_order_id, ())

    def last_event_id(self) -> int:
        return self._event_count

    def events_after(self, event_id: int, *, up_to: int, kind: str) -> list[OrderEvent]:
        found = [(number, event) for numbered in self._events.values() for number, event in numbered
                 if event_id < number <= up_to and event.kind == kind]
        return [dataclasses.replace(event, id=number) for number, event in sorted(found, key=lambda pair: pair[0])]

    # fills
    def add_fills(self, fills: Sequence[Fill]) -> list[Fill]:
        new = []
        for fill in fills:
            if fill.fill_id not in self._fills:
                self._fills[fill.fill_id] = fill
                self._fills_of.setdefault(fill.client_order_id, []).append(fill)
                new.append(fill)
        return new

    def fills(self, client_order_id: str) -> list[Fill]:
        return sorted(self._fills_of.get(client_order_id, ()), key=lambda fill: fill.ts)

    def broker_fills(self, broker: str) -> list[Fill]:
        mine = [fill for fill in self._fills.values()
                if (order := self._orders.get(fill.client_order_id)) is not None and order.broker == broker]
        return sorted(mine, key=lambda fill: fill.ts)

    # exits
    def gtt(self, exit_id: str) -> JournaledExit | None:
        return self._gtts.get(exit_id)

    def gtts_with_ids(self, exit_ids: Collection[str]) -> list[JournaledExit]:
        return [found for exit_id in exit_ids if (found := self._gtts.get(exit_id)) is not None]

    def gtts(self, broker: str, *, active_only: bool = False) -> list[JournaledExit]:
        if active_only:
            return [self._gtts[exit_id] for exit_id in self._active.get(broker, ())]
        return [row for row in self._gtts.values() if row.broker == broker]

    def all_gtts(self) -> list[JournaledExit]:
        return list(self._gtts.values())

    def latest_gtt(self, broker: str, tag: str) -> JournaledExit | None:
        mine = [self._gtts[exit_id] for exit_id in self._by_tag.get(tag, ()) if self._gtts[exit_id].broker == broker]
        return mine[-1] if mine else None

    def gtt_statuses(self, tag: str) -> set[ExitStatus]:
        return {self._gtts[exit_id].status for exit_id in self._by_tag.get(tag, ())}

    def change_gtt(self, exit_id: str, change: ExitChange) -> JournaledExit:
        before = self._gtts.get(exit_id)
        after, events = change(before)
        self._put_gtt(before, after)
        self.add_events(events)
        return after

    def _put_gtt(self, before: JournaledExit | None, after: JournaledExit) -> None:
        exit_id = after.exit_id
        self._gtts[exit_id] = after
        if before is None:
            self._by_tag.setdefault(after.tag, []).append(exit_id)
        elif before.tag != after.tag:
            self._by_tag[before.tag].remove(exit_id)
            self._by_tag.setdefault(after.tag, []).append(exit_id)
        if after.status is ExitStatus.ACTIVE:
            self._active.setdefault(after.broker, {})[exit_id] = None
        elif before is not None and before.status is ExitStatus.ACTIVE:
            del self._active[before.broker][exit_id]

    def set_gtt_status(self, exit_id: str, status: ExitStatus, now: datetime) -> None:
        before = self._gtts.get(exit_id)
        if before is not None:
            self._put_gtt(before, dataclasses.replace(before, status=status, updated_at=now))

    def move_active_gtts(self, keys: Mapping[str, str]) -> int:
        moved = 0
        for active in self._active.values():
            for exit_id in active:
                before = self._gtts[exit_id]
                if before.instrument_key in keys:
                    self._gtts[exit_id] = dataclasses.replace(before, instrument_key=keys[before.instrument_key])
                    moved += 1
        return moved

    def broker_ids(self, broker: str) -> list[str]:
        order_ids = [o.broker_order_id for o in self._orders.values() if o.broker == broker and o.broker_order_id]
        return order_ids + [g.exit_id for g in self._gtts.values() if g.broker == broker]


def journal_store(db: Database) -> JournalStore:
    if isinstance(db, MemoryDatabase):
        return db.store(MemoryJournalStore)
    return SqlJournalStore(db)


def move_active_gtts(db: Database, keys: Mapping[str, str]) -> int:
    """Re-key the ACTIVE exits of instruments whose key changed (old -> new); return how many moved."""
    return journal_store(db).move_active_gtts(keys) if keys else 0


__all__ = [
    "JournalStore",
    "JournaledExit",
    "JournaledOrder",
    "MemoryJournalStore",
    "OrderEvent",
    "SqlJournalStore",
    "journal_store",
    "move_active_gtts",
]
