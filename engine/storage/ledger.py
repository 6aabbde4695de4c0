"""The repository of table `risk_ledger`, its only writer: one row per trading day with the day's
capital, risk cap, the initial risk of its entries, realised P&L and the kill switch.

`ledger_store(db)` gives the SQL store of an `Engine` or the in-memory store of a `MemoryDatabase`;
both behave the same (tests/engine/storage/test_ledger_store.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from sqlalchemy import Engine

from engine.portfolio.times import from_db, to_db
from engine.storage.db import session_scope
from engine.storage.memory import Database, MemoryDatabase
from engine.storage.tables import RiskLedgerRow


@dataclass(frozen=True, slots=True)
class LedgerDay:
    """A trading day's row of the risk ledger."""

    trading_day: date
    capital: float
    daily_risk_cap: float
    updated_at: datetime
    risk_used: float = 0.0
    realized_pnl: float = 0.0
    entries: int = 0
    kill_switch: bool = False
    kill_reason: str = ""


class LedgerStore(Protocol):
    def get(self, trading_day: date) -> LedgerDay | None:
        """The day's row, if written."""

    def save(self, day: LedgerDay) -> None:
        """Write the day's row (a new one, or every column of the one there)."""


_COLUMNS = ("capital", "daily_risk_cap", "risk_used", "realized_pnl", "entries", "kill_switch", "kill_reason")


class SqlLedgerStore:
    def __init__(self, db: Engine) -> None:
        self.db = db

    def get(self, trading_day: date) -> LedgerDay | None:
        with session_scope(self.db) as session:
            row = session.get(RiskLedgerRow, trading_day)
            if row is None:
                return None
            return LedgerDay(trading_day=row.trading_day, updated_at=from_db(row.updated_at),
                             **{name: getattr(row, name) for name in _COLUMNS})

    def save(self, day: LedgerDay) -> None:
        with session_scope(self.db) as session:
            row = session.get(RiskLedgerRow, day.trading_day) or RiskLedgerRow(
                trading_day=day.trading_day, capital=day.capital, daily_risk_cap=day.daily_risk_cap,
                updated_at=to_db(day.updated_at))
            for name in _COLUMNS:
                setattr(row, name, getattr(day, name))
            row.updated_at = to_db(day.updated_at)
            session.add(row)


class MemoryLedgerStore:
    def __init__(self) -> None:
        self._days: dict[date, LedgerDay] = {}

    def get(self, trading_day: date) -> LedgerDay | None:
        return self._days.get(trading_day)

    def save(self, day: LedgerDay) -> None:
        self._days[day.trading_day] = day


def ledger_store(db: Database) -> LedgerStore:
    if isinstance(db, MemoryDatabase):
        return db.store(MemoryLedgerStore)
    return SqlLedgerStore(db)


__all__ = ["LedgerDay", "LedgerStore", "MemoryLedgerStore", "SqlLedgerStore", "ledger_store"]
