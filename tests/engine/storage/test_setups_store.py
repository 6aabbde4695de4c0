"""The setups repository: the SQL store and the in-memory store answer every case the same."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import pytest

from engine.models import IST, RuleResult, SetupStatus, Side
from engine.storage.memory import Database
from engine.storage.setups import SetupRecord, SetupsStore, setups_store

DAY, NEXT_DAY = date(2024, 6, 4), date(2024, 6, 5)


@pytest.fixture
def store(database: Database) -> SetupsStore:
    return setups_store(database)


def candidate(symbol: str, *, day: date = DAY, entry: float = 100.0, minute: int = 20) -> SetupRecord:
    return SetupRecord(trading_day=day, found_at=datetime(day.year, day.month, day.day, 9, minute, tzinfo=IST),
                       instrument_key=f"NSE_EQ|{symbol}", symbol=symbol, strategy="breakout", side=Side.BUY,
                       entry=entry, stop=entry - 2, target=entry + 4, score=entry / 100, reason="range break",
                       rules=(RuleResult("volume", True, "2.1x"), RuleResult("gap", False, "3.4%")))



def test_rows_come_back_as_written_with_ids_in_order(store: SetupsStore) -> None:
    written = [candidate("TCS"), candidate("INFY", entry=200.0)]
    ids = store.insert(written)
    assert len(set(ids)) == 2 and ids == sorted(ids)
    assert store.insert([]) == []
    rows = store.of_day(DAY)
    assert rows == [replace(w, id=i) for w, i in zip(written, ids, strict=True)]
    assert rows[0].rules == (RuleResult("volume", True, "2.1x"), RuleResult("gap", False, "3.4%"))
    assert rows[0].status is SetupStatus.CANDIDATE and rows[0].found_at == datetime(2024, 6, 4, 9, 20, tzinfo=IST)
    assert store.count(DAY) == 2 and store.count(NEXT_DAY) == 0 and store.of_day(NEXT_DAY) == []


def test_update_changes_the_state_and_keeps_the_identity(store: SetupsStore) -> None:
    [setup_id] = store.insert([candidate("TCS")])
    later = candidate("TCS", entry=110.0, minute=40)
    executed = replace(later, status=SetupStatus.EXECUTED, status_reason="approved", quantity=25,
                       client_order_id="E-1", rules=())
    store.update(setup_id, executed)
    [row] = store.of_day(DAY)
    assert (row.id, row.found_at.minute, row.entry, row.stop, row.score) == (setup_id, 20, 110.0, 108.0, 1.1)
    assert (row.status, row.status_reason, row.quantity, row.client_order_id, row.rules) == (
        SetupStatus.EXECUTED, "approved", 25, "E-1", ())
    with pytest.raises(KeyError):
        store.update(setup_id + 100, executed)


def test_end_candidates_ends_the_days_candidates_not_kept(store: SetupsStore) -> None:
    tcs, infy, wipro = store.insert([candidate("TCS"), candidate("INFY"), candidate("WIPRO")])
    [other_day] = store.insert([candidate("TCS", day=NEXT_DAY)])
    store.update(wipro, replace(candidate("WIPRO"), status=SetupStatus.EXECUTED))
    store.end_candidates(DAY, status=SetupStatus.SKIPPED, reason="kill switch on", keep={"NSE_EQ|INFY"})
    assert [(r.id, r.status, r.status_reason) for r in store.of_day(DAY)] == [
        (tcs, SetupStatus.SKIPPED, "kill switch on"), (infy, SetupStatus.CANDIDATE, ""),
        (wipro, SetupStatus.EXECUTED, "")]
    assert [(r.id, r.status) for r in store.of_day(NEXT_DAY)] == [(other_day, SetupStatus.CANDIDATE)]
