"""Each repository's factory gives the in-memory store of a MemoryDatabase (one per database, shared by every
caller) and an SQL store of an Engine."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.storage import init_db
from engine.storage.journal import MemoryJournalStore, SqlJournalStore, journal_store
from engine.storage.ledger import MemoryLedgerStore, SqlLedgerStore, ledger_store
from engine.storage.memory import Database, MemoryDatabase
from engine.storage.positions import MemoryPositionStore, SqlPositionStore, position_store
from engine.storage.setups import MemorySetupsStore, SqlSetupsStore, setups_store


@pytest.mark.parametrize(("factory", "memory_kind", "sql_kind"), [
    (journal_store, MemoryJournalStore, SqlJournalStore),
    (ledger_store, MemoryLedgerStore, SqlLedgerStore),
    (position_store, MemoryPositionStore, SqlPositionStore),
    (setups_store, MemorySetupsStore, SqlSetupsStore),
])
def test_the_factory_picks_the_store_of_the_database(factory: Callable[[Database], object], memory_kind: type,
                                                     sql_kind: type) -> None:
    memory = MemoryDatabase()
    assert isinstance(factory(memory), memory_kind) and factory(memory) is factory(memory)
    assert factory(MemoryDatabase()) is not factory(memory)
    engine = init_db("sqlite://")
    assert isinstance(factory(engine), sql_kind)
    engine.dispose()
