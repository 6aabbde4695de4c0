"""The in-memory database of backtests: the same repositories as the SQL database, kept in process
memory (no SQL per tick; a backtest reads its results from them once, at the end).

Every component is handed a `Database`: an SQLAlchemy `Engine` (SQLite or PostgreSQL), or one
`MemoryDatabase` shared by all the components of a run, across its days. A repository module
offers an SQL and a memory implementation of one interface and picks one with `MemoryDatabase.store`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from sqlalchemy import Engine

T = TypeVar("T")


class MemoryDatabase:
    """One in-memory store per repository kind, made on first use and shared by every component given
    this object."""

    def __init__(self) -> None:
        self._stores: dict[object, object] = {}

    def store(self, kind: type[T], make: Callable[[], T] | None = None) -> T:
        found = self._stores.get(kind)
        if found is None:
            found = self._stores[kind] = (make or kind)()
        return cast(T, found)


Database = Engine | MemoryDatabase

__all__ = ["Database", "MemoryDatabase"]
