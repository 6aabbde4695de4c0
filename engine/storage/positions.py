"""The repository of tables `positions` and `trades`, their only writer: the positions we hold or held,
and the trade log (one row per exit, or per part of a position an exit sold).

`position_store(db)` gives the SQL store of an `Engine` or the in-memory store of a `MemoryDatabase`;
both behave the same (tests/engine/storage/test_positions_store.py). Times come out in IST."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from engine.models import PositionStatus, Side, Trade
from engine.portfolio.times import from_db, to_db
from engine.storage.db import session_scope
from engine.storage.memory import Database, MemoryDatabase
from engine.storage.tables import PositionRow, TradeRow


@dataclass(frozen=True, slots=True)
class PositionRecord:
    """A row of `positions` (`id` 0 before it is added)."""

    instrument_key: str
    symbol: str
    quantity: int
    average_price: float
    stop: float
    target: float
    opened_at: datetime
    entry_client_order_id: str
    initial_risk: float
    exit_id: str | None = None
    status: PositionStatus = PositionStatus.OPEN
    closed_at: datetime | None = None
    id: int = 0


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """A row of `trades` (`id`: its place in the trade log) with the initial risk its position has now
    (None: no such position)."""

    trade: Trade
    trading_day: date
    position_id: int | None
    initial_risk: float | None
    id: int = 0

    def as_row(self) -> dict[str, Any]:
        """The row of `trades`, its columns in table order, as JSON-ready values (times ISO in IST)."""
        trade = self.trade
        return {"id": self.id, "position_id": self.position_id, "instrument_key": trade.instrument_key,
                "symbol": trade.symbol, "side": trade.side.value, "quantity": trade.quantity,
                "entry_time": from_db(trade.entry_time).isoformat(), "entry_price": trade.entry_price,
                "exit_time": from_db(trade.exit_time).isoformat(), "exit_price": trade.exit_price,
                "gross_pnl": trade.gross_pnl, "charges": trade.charges, "net_pnl": trade.net_pnl,
                "exit_reason": trade.exit_reason, "trading_day": self.trading_day.isoformat()}

    def as_json(self) -> dict[str, Any]:
        """The backtest report's trade: the row's columns but its ids, and `initial_risk`."""
        row = self.as_row()
        del row["id"], row["position_id"]
        return {**row, "initial_risk": self.initial_risk}


# the columns an open position may change (`update`); status and closed_at change by `close` only
UPDATABLE = frozenset({"quantity", "initial_risk", "exit_id", "stop", "target", "average_price", "instrument_key",
                       "symbol"})


class PositionStore(Protocol):
    def open_positions(self) -> list[PositionRecord]:
        """Every OPEN position, in the order they were added."""

    def open_ids(self) -> set[int]:
        ...

    def entry_order_ids(self) -> set[str]:
        """The entry orders that opened a position (open or closed, any day)."""

    def add(self, position: PositionRecord) -> int:
        """Write a new OPEN position; returns its id."""

    def update(self, position_id: int, **changes: Any) -> None:
        """Set columns (of `UPDATABLE`) of a position; an unknown id changes nothing."""

    def close(self, position_id: int, closed_at: datetime, trade: Trade, trading_day: date) -> None:
        """Mark the position CLOSED and log its trade, in one transaction."""

    def reduce(self, position_id: int, quantity: int, initial_risk: float, trade: Trade, trading_day: date) -> None:
        """An exit sold part of the position: its new quantity and initial risk, and the trade of the part
        sold, in one transaction."""

    def trades_of(self, trading_day: date) -> list[Trade]:
        """The day's trades by exit time."""

    def realised_net(self, trading_day: date) -> float:
        """Σ net P&L of the day's trades."""

    def realised_net_before(self, trading_day: date) -> float:
        """Σ net P&L of the trades of every earlier day."""

    def trade_records(self) -> list[TradeRecord]:
        """Every trade by exit time, with its position's initial risk."""

    def positions(self, after_id: int = 0) -> list[PositionRecord]:
        """Every position, open or closed, with an id above `after_id`, by id."""

    def trade_records_of(self, trading_day: date) -> list[TradeRecord]:
        """The day's trades by exit time, as `trade_records` gives them."""

    def trade_records_after(self, trade_id: int) -> list[TradeRecord]:
        """Every trade with an id above `trade_id` (any day), by id, as `trade_records` gives them."""


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"positions: {sorted(unknown)} cannot be updated (updatable: {sorted(UPDATABLE)})")
    return changes


def _in_ist(trade: Trade) -> Trade:
    return dataclasses.replace(trade, entry_time=from_db(trade.entry_time), exit_time=from_db(trade.exit_time))


def _record(row: PositionRow) -> PositionRecord:
    assert row.id is not None
    return PositionRecord(
        id=row.id, instrument_key=row.instrument_key, symbol=row.symbol, quantity=row.quantity,
        average_price=row.average_price, stop=row.stop, target=row.target, opened_at=from_db(row.opened_at),
        entry_client_order_id=row.entry_client_order_id, initial_risk=row.initial_risk, exit_id=row.exit_id,
        status=PositionStatus(row.status), closed_at=None if row.closed_at is None else from_db(row.closed_at))


def _trade(row: TradeRow) -> Trade:
    return Trade(row.instrument_key, row.symbol, Side(row.side), row.quantity, from_db(row.entry_time),
                 row.entry_price, from_db(row.exit_time), row.exit_price, row.gross_pnl, row.charges, row.net_pnl,
                 row.exit_reason)


def _trade_columns(trade: Trade, position_id: int, trading_day: date) -> dict[str, Any]:
    return {"position_id": position_id, "instrument_key": trade.instrument_key, "symbol": trade.symbol,
            "side": trade.side.value, "quantity": trade.quantity, "entry_time": to_db(trade.entry_time),
            "entry_price": trade.entry_price, "exit_time": to_db(trade.exit_time), "exit_price": trade.exit_price,
            "gross_pnl": trade.gross_pnl, "charges": trade.charges, "net_pnl": trade.net_pnl,
            "exit_reason": trade.exit_reason, "trading_day": trading_day}


class SqlPositionStore:
    """`db`'s tables, each call its own transaction; `SqlPositionStore.within(session)` writes in a
    caller's transaction instead (committed by the caller with its other writes)."""

    def __init__(self, db: Engine | None, session: Session | None = None) -> None:
        self.db = db
        self._outer = session

    @classmethod
    def within(cls, session: Session) -> SqlPositionStore:
        return cls(None, session)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        if self._outer is not None:
            yield self._outer
            return
        assert self.db is not None
        with session_scope(self.db) as session:
            yield session

    def open_positions(self) -> list[PositionRecord]:
        with self._session() as session:
            rows = session.exec(select(PositionRow).where(PositionRow.status == PositionStatus.OPEN.value)
                                .order_by(col(PositionRow.id))).all()
            return [_record(row) for row in rows]

    def open_ids(self) -> set[int]:
        with self._session() as session:
            ids = session.exec(select(PositionRow.id).where(PositionRow.status == PositionStatus.OPEN.value)).all()
            return {i for i in ids if i is not None}

    def entry_order_ids(self) -> set[str]:
        with self._session() as session:
            return set(session.exec(select(PositionRow.entry_client_order_id)).all())

    def add(self, position: PositionRecord) -> int:
        row = PositionRow(
            instrument_key=position.instrument_key, symbol=position.symbol, quantity=position.quantity,
            average_price=position.average_price, stop=position.stop, target=position.target,
            status=position.status.value, opened_at=to_db(position.opened_at),
            entry_client_order_id=position.entry_client_order_id, exit_id=position.exit_id,
            initial_risk=position.initial_risk)
        with self._session() as session:
            session.add(row)
            session.flush()
            assert row.id is not None
            return row.id

    def update(self, position_id: int, **changes: Any) -> None:
        with self._session() as session:
            row = session.get(PositionRow, position_id)
            if row is None:
                return
            for name, value in _checked(changes).items():
                setattr(row, name, value)
            session.add(row)

    def close(self, position_id: int, closed_at: datetime, trade: Trade, trading_day: date) -> None:
        with self._session() as session:
            row = session.get(PositionRow, position_id)
            if row is not None:
                row.status = PositionStatus.CLOSED.value
                row.closed_at = to_db(closed_at)
                session.add(row)
            session.add(TradeRow(**_trade_columns(trade, position_id, trading_day)))

    def reduce(self, position_id: int, quantity: int, initial_risk: float, trade: Trade, trading_day: date) -> None:
        with self._session() as session:
            row = session.get(PositionRow, position_id)
            if row is not None:
                row.quantity, row.initial_risk = quantity, initial_risk
                session.add(row)
            session.add(TradeRow(**_trade_columns(trade, position_id, trading_day)))

    def trades_of(self, trading_day: date) -> list[Trade]:
        with self._session() as session:
            rows = session.exec(select(TradeRow).where(TradeRow.trading_day == trading_day)
                                .order_by(col(TradeRow.exit_time))).all()
            return [_trade(row) for row in rows]

    def realised_net(self, trading_day: date) -> float:
        with self._session() as session:
            return sum(session.exec(select(TradeRow.net_pnl).where(TradeRow.trading_day == trading_day)).all())

    def realised_net_before(self, trading_day: date) -> float:
        with self._session() as session:
            return sum(session.exec(select(TradeRow.net_pnl).where(TradeRow.trading_day < trading_day)).all())

    def trade_records(self) -> list[TradeRecord]:
        return self._trade_records(select(TradeRow).order_by(col(TradeRow.exit_time)))

    def positions(self, after_id: int = 0) -> list[PositionRecord]:
        with self._session() as session:
            rows = session.exec(select(PositionRow).where(col(PositionRow.id) > after_id)
                                .order_by(col(PositionRow.id))).all()
            return [_record(row) for row in rows]

    def trade_records_of(self, trading_day: date) -> list[TradeRecord]:
        return self._trade_records(select(TradeRow).where(TradeRow.trading_day == trading_day)
                                   .order_by(col(TradeRow.exit_time)))

    def trade_records_after(self, trade_id: int) -> list[TradeRecord]:
        return self._trade_records(select(TradeRow).where(col(TradeRow.id) > trade_id).order_by(col(TradeRow.id)))

    def _trade_records(self, trades: SelectOfScalar[TradeRow]) -> list[TradeRecord]:
        with self._session() as session:
            rows = session.exec(trades).all()
            if not rows:
                return []
            risks = {p.id: p.initial_risk for p in session.exec(select(PositionRow)).all()}
            return [TradeRecord(_trade(row), row.trading_day, row.position_id, risks.get(row.position_id),
                                id=row.id or 0) for row in rows]


class MemoryPositionStore:
    """Positions by id (the open ones indexed), trades by day: no call scans what earlier days wrote,
    but `realised_net_before` (once a day) and `trade_records` (once, at the end of a backtest)."""

    def __init__(self) -> None:
        self._positions: dict[int, PositionRecord] = {}
        self._open: dict[int, None] = {}  # ids of the OPEN positions, in the order added
        self._entries: set[str] = set()
        self._trades: dict[date, list[tuple[int, int, Trade]]] = {}  # per trading day, in the order logged:
        self._trade_count = 0  # (trade id, position id, trade), numbered as the SQL store's `trades.id`
        # the last `realised_net_before` (day, sum): the next day's goes on from it, adding in the same order
        self._net_before: tuple[date, float] | None = None

    def open_positions(self) -> list[PositionRecord]:
        return [self._positions[i] for i in self._open]

    def open_ids(self) -> set[int]:
        return set(self._open)

    def entry_order_ids(self) -> set[str]:
        return set(self._entries)

    def add(self, position: PositionRecord) -> int:
        position_id = len(self._positions) + 1
        self._positions[position_id] = dataclasses.replace(
            position, id=position_id, opened_at=from_db(position.opened_at),
            closed_at=None if position.closed_at is None else from_db(position.closed_at))
        if position.status is PositionStatus.OPEN:
            self._open[position_id] = None
        self._entries.add(position.entry_client_order_id)
        return position_id

    def update(self, position_id: int, **changes: Any) -> None:
        found = self._positions.get(position_id)
        if found is not None:
            self._positions[position_id] = dataclasses.replace(found, **_checked(changes))

    def close(self, position_id: int, closed_at: datetime, trade: Trade, trading_day: date) -> None:
        found = self._positions.get(position_id)
        if found is not None:
            self._positions[position_id] = dataclasses.replace(found, status=PositionStatus.CLOSED,
                                                               closed_at=from_db(closed_at))
            self._open.pop(position_id, None)
        self._log(position_id, trade, trading_day)

    def reduce(self, position_id: int, quantity: int, initial_risk: float, trade: Trade, trading_day: date) -> None:
        self.update(position_id, quantity=quantity, initial_risk=initial_risk)
        self._log(position_id, trade, trading_day)

    def _log(self, position_id: int, trade: Trade, trading_day: date) -> None:
        self._trade_count += 1
        self._trades.setdefault(trading_day, []).append((self._trade_count, position_id, _in_ist(trade)))
        if self._net_before is not None and trading_day < self._net_before[0]:
            self._net_before = None  # a day it summed changed

    def trades_of(self, trading_day: date) -> list[Trade]:
        return sorted((trade for _, _, trade in self._trades.get(trading_day, [])), key=lambda t: t.exit_time)

    def realised_net(self, trading_day: date) -> float:
        return sum(trade.net_pnl for _, _, trade in self._trades.get(trading_day, []))

    def realised_net_before(self, trading_day: date) -> float:
        known = self._net_before
        since, total = known if known is not None and known[0] <= trading_day else (date.min, 0.0)
        for day in sorted(self._trades):
            if since <= day < trading_day:
                for _, _, trade in self._trades[day]:
                    total += trade.net_pnl  # day by day, trade by trade: the sum from scratch, to the paisa
        self._net_before = (trading_day, total)
        return total

    def trade_records(self) -> list[TradeRecord]:
        records = [self._trade_record(day, logged) for day, trades in self._trades.items() for logged in trades]
        return sorted(records, key=lambda r: r.trade.exit_time)

    def positions(self, after_id: int = 0) -> list[PositionRecord]:
        return [position for position_id, position in self._positions.items() if position_id > after_id]

    def trade_records_of(self, trading_day: date) -> list[TradeRecord]:
        records = [self._trade_record(trading_day, logged) for logged in self._trades.get(trading_day, [])]
        return sorted(records, key=lambda r: r.trade.exit_time)

    def trade_records_after(self, trade_id: int) -> list[TradeRecord]:
        records = [self._trade_record(day, logged) for day, trades in self._trades.items() for logged in trades
                   if logged[0] > trade_id]
        return sorted(records, key=lambda r: r.id)

    def _trade_record(self, trading_day: date, logged: tuple[int, int, Trade]) -> TradeRecord:
        trade_id, position_id, trade = logged
        position = self._positions.get(position_id)
        risk = None if position is None else position.initial_risk
        return TradeRecord(trade, trading_day, position_id, risk, id=trade_id)


def position_store(db: Database) -> PositionStore:
    if isinstance(db, MemoryDatabase):
        return db.store(MemoryPositionStore)
    return SqlPositionStore(db)


__all__ = ["UPDATABLE", "MemoryPositionStore", "PositionRecord", "PositionStore", "SqlPositionStore", "TradeRecord",
           "position_store"]
