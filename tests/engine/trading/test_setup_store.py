"""The day's setups rows as the engine keeps them (`SetupStore`): CANDIDATE rows staged and written in
batches, decisions written at once; the same on the SQL and the in-memory database."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from engine.models import RuleResult, SetupStatus
from engine.storage import init_db
from engine.storage.memory import Database, MemoryDatabase
from engine.trading.setups import FLUSH_SECONDS, SetupStore
from tests.engine.strategy.support import LOTTY, RELIANCE, TCS, at, make_setup

DAY = date(2024, 6, 4)


@pytest.fixture(params=["sql", "memory"])
def db(request: pytest.FixtureRequest) -> Database:
    return init_db("sqlite://") if request.param == "sql" else MemoryDatabase()


def written(store: SetupStore) -> list[tuple[str, SetupStatus, str, float]]:
    return [(r.symbol, r.status, r.status_reason, r.entry) for r in store.store.of_day(DAY)]


def test_candidates_are_written_at_most_once_a_flush_interval(db: Database) -> None:
    store = SetupStore(db, DAY)
    first = at(DAY, 10, 0)
    store.stage_candidate(make_setup(RELIANCE))
    store.flush_due(first)
    store.stage_candidate(make_setup(TCS))
    store.flush_due(first + timedelta(seconds=FLUSH_SECONDS - 1))
    assert store.known(TCS.instrument_key) and not store.known(LOTTY.instrument_key)
    assert written(store) == [("RELIANCE", SetupStatus.CANDIDATE, "", 100.0)]
    store.flush_due(first + timedelta(seconds=FLUSH_SECONDS))
    assert [symbol for symbol, *_ in written(store)] == ["RELIANCE", "TCS"]
    assert list(store.ids) == [RELIANCE.instrument_key, TCS.instrument_key]


def test_a_staged_candidate_is_as_it_was_when_staged(db: Database) -> None:
    store = SetupStore(db, DAY)
    setup = make_setup(RELIANCE)
    store.stage_candidate(setup)
    setup.rules.append(RuleResult("volume", True, "2x"))  # the validator records its rules later
    store.flush()
    [row] = store.store.of_day(DAY)
    assert row.rules == ()


def test_decisions_are_written_at_once_into_the_instruments_row(db: Database) -> None:
    store = SetupStore(db, DAY)
    store.stage_candidate(make_setup(RELIANCE))
    setup_id = store.save(make_setup(RELIANCE, entry=101.0), status=SetupStatus.EXECUTED, reason="approved",
                          quantity=10, client_order_id="E-1")
    skipped_id = store.save(make_setup(TCS), status=SetupStatus.SKIPPED, reason="risk budget")
    store.record(make_setup(LOTTY), status=SetupStatus.EXPIRED, reason="after the window")
    assert setup_id == store.ids[RELIANCE.instrument_key] and skipped_id == store.ids[TCS.instrument_key]
    assert written(store) == [("RELIANCE", SetupStatus.EXECUTED, "approved", 101.0),
                              ("TCS", SetupStatus.SKIPPED, "risk budget", 100.0),
                              ("LOTTY", SetupStatus.EXPIRED, "after the window", 100.0)]
    assert store.count() == 3 and LOTTY.instrument_key not in store.ids


def test_the_days_end_expires_the_candidates_not_kept(db: Database) -> None:
    store = SetupStore(db, DAY)
    for instrument in (RELIANCE, TCS, LOTTY):
        store.stage_candidate(make_setup(instrument))
    store.save(make_setup(LOTTY), status=SetupStatus.EXECUTED)
    store.expire("the window closed", keep={TCS.instrument_key})
    assert [(symbol, status, reason) for symbol, status, reason, _ in written(store)] == [
        ("RELIANCE", SetupStatus.EXPIRED, "the window closed"), ("TCS", SetupStatus.CANDIDATE, ""),
        ("LOTTY", SetupStatus.EXECUTED, "")]
    store.expire("kill switch on", status=SetupStatus.SKIPPED)
    assert written(store)[1][:3] == ("TCS", SetupStatus.SKIPPED, "kill switch on")
