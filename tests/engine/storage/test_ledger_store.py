"""The risk-ledger repository: the SQL store and the in-memory store answer every case the same."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import pytest

from engine.models import IST
from engine.storage.ledger import LedgerDay, LedgerStore, ledger_store
from engine.storage.memory import Database

DAY = date(2024, 6, 4)


@pytest.fixture
def store(database: Database) -> LedgerStore:
    return ledger_store(database)



def test_a_day_is_written_then_rewritten(store: LedgerStore) -> None:
    assert store.get(DAY) is None
    opened = LedgerDay(trading_day=DAY, capital=1_000_000.0, daily_risk_cap=30_000.0,
                       updated_at=datetime(2024, 6, 4, 9, 15, tzinfo=IST))
    store.save(opened)
    assert store.get(DAY) == opened
    tripped = replace(opened, risk_used=1234.5, realized_pnl=-2500.25, entries=2, kill_switch=True,
                      kill_reason="max daily loss", updated_at=datetime(2024, 6, 4, 11, 0, tzinfo=IST))
    store.save(tripped)
    assert store.get(DAY) == tripped
    assert store.get(date(2024, 6, 5)) is None
