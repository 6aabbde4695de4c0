"""The order journal's repository: the SQL store and the in-memory store answer every case the same
(through the `OrderJournal` that sits on them, and through the store reads the engine makes directly)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from engine.clock import SteppedClock
from engine.execution.journal import IllegalTransition, OrderJournal
from engine.models import (
    IST,
    ExitOrder,
    ExitStatus,
    Fill,
    Instrument,
    Order,
    OrderIntent,
    OrderPurpose,
    OrderStatus,
    Side,
)
from engine.storage.journal import (
    JournaledOrder,
    JournalStore,
    move_active_gtts,
)
from engine.storage.memory import Database

DAY, NEXT_DAY = date(2024, 6, 4), date(2024, 6, 5)
S = OrderStatus
TCS = Instrument(instrument_key="NSE_EQ|INE467B01029", symbol="TCS", isin="INE467B01029")
INFY = Instrument(instrument_key="NSE_EQ|INE009A01021", symbol="INFY", isin="INE009A01021")


@pytest.fixture
def db(database: Database) -> Database:
    return database


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(datetime(2024, 6, 4, 9, 30, tzinfo=IST))


def _journal(db: Database, clock: SteppedClock, *, broker: str = "paper", day: date = DAY) -> OrderJournal:
    return OrderJournal(db, clock, broker=broker, trading_day=day)


def _intent(key: str, instrument: Instrument = TCS, purpose: OrderPurpose = OrderPurpose.ENTRY) -> OrderIntent:
    return OrderIntent(client_order_id=key, instrument=instrument, side=Side.BUY, quantity=5, purpose=purpose)


def _exit(exit_id: str, status: ExitStatus = ExitStatus.ACTIVE, instrument: Instrument = TCS) -> ExitOrder:
    return ExitOrder(exit_id=exit_id, instrument_key=instrument.instrument_key, quantity=5, stop_trigger=95.0,
                     stop_limit=94.5, target_trigger=110.0, target_limit=109.5, status=status)



def test_an_intent_is_journaled_pending_with_its_event(db: Database, clock: SteppedClock) -> None:
    journal = _journal(db, clock)
    written = journal.record_intent(_intent("E1"), setup_id=7)
    row = journal.get("E1")
    assert row == written and journal.get("E2") is None
    assert (row.status, row.side, row.setup_id, row.broker, row.symbol) == (S.PENDING, Side.BUY, 7, "paper", "TCS")
    assert row.created_at == datetime(2024, 6, 4, 4, 0, tzinfo=UTC) and row.trading_day == DAY
    [event] = journal.events("E1")
    assert event.kind == "INTENT" and json.loads(event.detail_json)["quantity"] == 5 and event.id > 0


def test_transitions_follow_the_state_machine_and_illegal_ones_are_recorded_not_applied(
    db: Database, clock: SteppedClock
) -> None:
    journal = _journal(db, clock)
    journal.record_intent(_intent("E1"))
    clock.advance(1)
    submitted = journal.transition("E1", S.SUBMITTED, event=("ATTEMPT", {"attempt": 1}))
    assert submitted.status is S.SUBMITTED and submitted.updated_at > submitted.created_at
    filled = journal.transition("E1", S.FILLED, message="done", filled_quantity=5, average_price=10.0)
    assert (filled.status, filled.filled_quantity, filled.average_price, filled.message) == (S.FILLED, 5, 10.0, "done")
    with pytest.raises(IllegalTransition):
        journal.transition("E1", S.OPEN)
    with pytest.raises(KeyError):
        journal.transition("NOPE", S.SUBMITTED)
    assert journal.get("E1") == filled
    events = journal.events("E1")
    assert [e.kind for e in events] == ["INTENT", "ATTEMPT", "STATUS", "STATUS", "ILLEGAL"]
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert json.loads(events[-1].detail_json) == {"from": "FILLED", "to": "OPEN", "message": ""}


def test_the_broker_view_never_moves_an_order_backwards(db: Database, clock: SteppedClock) -> None:
    journal = _journal(db, clock)
    journal.record_intent(_intent("E1"))
    journal.transition("E1", S.SUBMITTED)
    part = Order("E1", TCS.instrument_key, Side.BUY, 5, S.PARTIALLY_FILLED, broker_order_id="B1",
                 filled_quantity=2, average_price=10.0)
    assert journal.apply("E1", part, event=("RESPONSE", {"attempt": 1}))[:2] == (0, 0.0)
    stale = Order("E1", TCS.instrument_key, Side.BUY, 5, S.OPEN, broker_order_id="B1", filled_quantity=0)
    before_filled, before_average, row = journal.apply("E1", stale)
    assert (before_filled, before_average) == (2, 10.0)
    assert (row.status, row.filled_quantity, row.average_price, row.broker_order_id) == (S.PARTIALLY_FILLED, 2, 10.0,
                                                                                        "B1")
    assert journal.get("E1") == row
    assert [e.kind for e in journal.events("E1")] == ["INTENT", "STATUS", "RESPONSE", "STATUS", "ILLEGAL"]


def test_orders_by_status_and_day_oldest_first_and_of_the_broker_only(db: Database, clock: SteppedClock) -> None:
    journal = _journal(db, clock)
    journal.record_intent(_intent("E1"))
    clock.advance(1)
    journal.record_intent(_intent("E2", INFY))
    clock.advance(1)
    journal.record_intent(_intent("X1", purpose=OrderPurpose.EXIT))
    journal.transition("E1", S.SUBMITTED)
    journal.transition("E1", S.FILLED, filled_quantity=5, average_price=10.0)
    clock.advance(86400)
    _journal(db, clock, day=NEXT_DAY).record_intent(_intent("E3"))
    _journal(db, clock, broker="kite").record_intent(_intent("K1"))
    open_statuses = (S.PENDING, S.SUBMITTED, S.OPEN, S.PARTIALLY_FILLED)

    def ids(orders: list[JournaledOrder]) -> list[str]:
        return [o.client_order_id for o in orders]

    assert ids(journal.orders(statuses=open_statuses, trading_day=DAY)) == ["E2", "X1"]
    assert ids(journal.orders(statuses=open_statuses)) == ["E2", "X1", "E3"]
    assert ids(journal.orders(trading_day=DAY)) == ["E1", "E2", "X1"]
    assert ids(journal.orders(statuses=[S.FILLED])) == ["E1"]
    assert ids(journal.orders()) == ["E1", "E2", "X1", "E3"]
    store = journal.store
    assert ids(store.orders(None, trading_day=DAY, purpose="ENTRY")) == ["E1", "E2", "K1"]
    assert ids(store.orders_with_ids(["X1", "E1", "MISSING"])) == ["E1", "X1"]
    assert store.symbol_of(INFY.instrument_key) == "INFY" and store.symbol_of("NSE_EQ|NONE") is None


def test_an_external_order_is_adopted_with_a_reconcile_event(db: Database, clock: SteppedClock) -> None:
    journal = _journal(db, clock)
    leg = Order("GTT1", TCS.instrument_key, Side.SELL, 5, S.OPEN, broker_order_id="B9")
    row = journal.record_external(leg, symbol="TCS", purpose="EXIT")
    assert journal.get("GTT1") == row and (row.status, row.side, row.purpose) == (S.OPEN, Side.SELL, "EXIT")
    assert [(e.kind, json.loads(e.detail_json)) for e in journal.events("GTT1")] == [
        ("RECONCILE", {"adopted": "B9", "status": "OPEN"})]


def test_fills_are_stored_once_oldest_first(db: Database, clock: SteppedClock) -> None:
    journal = _journal(db, clock)
    journal.record_intent(_intent("E1"))
    _journal(db, clock, broker="kite").record_intent(_intent("K1"))
    at = datetime(2024, 6, 4, 9, 31, tzinfo=IST)

    def fill(fill_id: str, seconds: int, client_order_id: str = "E1") -> Fill:
        return Fill(fill_id, client_order_id, "B1", TCS.instrument_key, Side.BUY, 2, 10.0,
                    at + timedelta(seconds=seconds))

    assert [f.fill_id for f in journal.record_fills([fill("F2", 5), fill("F1", 1)])] == ["F2", "F1"]
    assert [f.fill_id for f in journal.record_fills([fill("F1", 1), fill("F3", 9)])] == ["F3"]
    assert journal.record_fills([]) == []
    journal.record_fills([fill("K", 0, "K1")])
    stored = journal.fills("E1")
    assert [f.fill_id for f in stored] == ["F1", "F2", "F3"]
    assert stored[0] == fill("F1", 1) and stored[0].ts.tzinfo is not None and stored[0].side is Side.BUY
    assert [f.fill_id for f in journal.store.broker_fills("paper")] == ["F1", "F2", "F3"]
    assert [f.fill_id for f in journal.store.broker_fills("kite")] == ["K"]


def test_exits_are_saved_updated_and_settled(db: Database, clock: SteppedClock) -> None:
    journal = _journal(db, clock)
    placed = journal.save_gtt(_exit("G1"), tag="T1", position_id=3, event=("EXIT_RESPONSE", {"exit_id": "G1"}))
    assert (placed.tag, placed.position_id, placed.status, placed.broker) == ("T1", 3, ExitStatus.ACTIVE, "paper")
    assert journal.gtt("G1") == placed and journal.gtt("G2") is None
    clock.advance(1)
    moved = ExitOrder("G1", TCS.instrument_key, 4, 96.0, 95.5, 111.0, 110.5, ExitStatus.ACTIVE)
    modified = journal.save_gtt(moved, tag="T1")
    assert (modified.quantity, modified.stop_trigger, modified.position_id, modified.created_at) == (
        4, 96.0, 3, placed.created_at)
    assert modified.updated_at > placed.updated_at
    journal.save_gtt(_exit("G2"), tag="T2")
    clock.advance(1)  # oldest first: by the time written
    _journal(db, clock, broker="kite").save_gtt(_exit("K1"), tag="T1")
    assert [g.exit_id for g in journal.gtts(active_only=True)] == ["G1", "G2"]
    journal.save_gtt(_exit("G1", ExitStatus.TRIGGERED_STOP), tag="T1")
    journal.set_gtt_status("G2", ExitStatus.CANCELLED)
    journal.set_gtt_status("MISSING", ExitStatus.CANCELLED)
    assert journal.gtts(active_only=True) == []
    assert [(g.exit_id, g.status) for g in journal.gtts()] == [
        ("G1", ExitStatus.TRIGGERED_STOP), ("G2", ExitStatus.CANCELLED)]
    assert [e.kind for e in journal.events("T1")] == ["EXIT_RESPONSE"]
    store = journal.store
    assert store.gtt_statuses("T1") == {ExitStatus.TRIGGERED_STOP, ExitStatus.ACTIVE}
    assert store.gtt_statuses("T9") == set()
    assert [g.exit_id for g in store.gtts_with_ids(["G2", "K1", "G9"])] == ["G2", "K1"]


def test_exit_state_is_the_latest_exit_of_the_tag_and_whether_one_was_attempted(
    db: Database, clock: SteppedClock
) -> None:
    journal = _journal(db, clock)
    assert journal.exit_state("T1") == (None, False)
    journal.event("T1", "EXIT_ATTEMPT", attempt=1)
    assert journal.exit_state("T1") == (None, True)
    journal.save_gtt(_exit("G1", ExitStatus.CANCELLED), tag="T1")
    clock.advance(1)
    latest = journal.save_gtt(_exit("G2"), tag="T1")
    clock.advance(1)
    _journal(db, clock, broker="kite").save_gtt(_exit("K1"), tag="T1")
    assert journal.exit_state("T1") == (latest, True)
    assert journal.store.has_event("T1", "EXIT_ATTEMPT") and not journal.store.has_event("T1", "EXIT_FAILED")


def test_active_exits_move_to_a_new_instrument_key_once(db: Database, clock: SteppedClock) -> None:
    journal = _journal(db, clock)
    for exit_order, tag in ((_exit("G1"), "T1"), (_exit("G2", ExitStatus.CANCELLED), "T2"),
                            (_exit("G3", instrument=INFY), "T3")):
        journal.save_gtt(exit_order, tag=tag)
        clock.advance(1)
    keys = {TCS.instrument_key: "NSE_EQ|NEW", "NSE_EQ|NEW": "NSE_EQ|NEWER"}
    assert move_active_gtts(db, keys) == 1 and move_active_gtts(db, {}) == 0
    assert [(g.exit_id, g.instrument_key) for g in journal.gtts()] == [
        ("G1", "NSE_EQ|NEW"), ("G2", TCS.instrument_key), ("G3", INFY.instrument_key)]


def test_the_broker_ids_of_orders_and_exits(db: Database, clock: SteppedClock) -> None:
    journal = _journal(db, clock)
    journal.record_intent(_intent("E1"))
    journal.record_intent(_intent("E2"))
    journal.apply("E1", Order("E1", TCS.instrument_key, Side.BUY, 5, S.PENDING, broker_order_id="PA1"))
    journal.save_gtt(_exit("PG2"), tag="T1")
    _journal(db, clock, broker="kite").save_gtt(_exit("K1"), tag="T2")
    store: JournalStore = journal.store
    assert sorted(store.broker_ids("paper")) == ["PA1", "PG2"]


def test_events_of_a_kind_between_two_ids_and_every_exit_of_every_broker(db: Database, clock: SteppedClock) -> None:
    """The notifier's reads: events numbered as `order_events.id`, read by kind between a cursor and the newest."""
    journal = _journal(db, clock)
    store = journal.store
    assert store.last_event_id() == 0 and store.events_after(0, up_to=0, kind="EXIT_FAILED") == []
    journal.record_intent(_intent("E1"))  # event 1: INTENT
    journal.event("T1", "EXIT_FAILED", symbol="TCS", attempts=3)  # 2
    journal.event("T2", "EXIT_ATTEMPT", attempt=1)  # 3
    journal.event("T2", "EXIT_FAILED", symbol="INFY", attempts=1)  # 4
    newest = store.last_event_id()
    journal.event("T3", "EXIT_FAILED", symbol="TCS", attempts=2)  # 5: after the newest read, waits
    failed = store.events_after(0, up_to=newest, kind="EXIT_FAILED")
    assert [(e.id, e.client_order_id, e.detail["symbol"]) for e in failed] == [(2, "T1", "TCS"), (4, "T2", "INFY")]
    assert failed[0].ts == clock.now() and failed[0].detail["attempts"] == 3
    assert [e.id for e in store.events_after(2, up_to=store.last_event_id(), kind="EXIT_FAILED")] == [4, 5]
    journal.save_gtt(_exit("G1"), tag="T1")
    clock.advance(1)
    _journal(db, clock, broker="kite").save_gtt(_exit("K1", ExitStatus.CANCELLED), tag="T2")
    assert [(g.exit_id, g.broker, g.status) for g in store.all_gtts()] == [
        ("G1", "paper", ExitStatus.ACTIVE), ("K1", "kite", ExitStatus.CANCELLED)]
