"""The order state machine and the write-ahead journal."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from engine.clock import SteppedClock
from engine.execution.journal import TRANSITIONS, IllegalTransition, OrderJournal, can_transition
from engine.models import Instrument, Order, OrderIntent, OrderStatus, Side
from tests.engine.execution.conftest import TRADING_DAY

S = OrderStatus


@pytest.fixture
def journal(db: Engine, clock: SteppedClock) -> OrderJournal:
    return OrderJournal(db, clock, broker="paper", trading_day=TRADING_DAY)


def _intent(instrument: Instrument) -> OrderIntent:
    return OrderIntent(client_order_id="AT240604ETESTORDER01", instrument=instrument, side=Side.BUY, quantity=5)


def test_every_status_has_a_row_and_terminal_statuses_lead_nowhere() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    for status in OrderStatus:
        assert (TRANSITIONS[status] == frozenset()) is status.is_terminal
    assert can_transition(S.PENDING, S.SUBMITTED) and not can_transition(S.PENDING, S.FILLED)
    assert can_transition(S.PARTIALLY_FILLED, S.FILLED) and not can_transition(S.PARTIALLY_FILLED, S.OPEN)
    assert not can_transition(S.FILLED, S.OPEN) and can_transition(S.FILLED, S.FILLED)


def test_intent_is_written_pending_with_an_event_before_anything_else(
    journal: OrderJournal, instrument: Instrument
) -> None:
    journal.record_intent(_intent(instrument), setup_id=7)
    row = journal.get("AT240604ETESTORDER01")
    assert row is not None and row.status == "PENDING" and row.setup_id == 7 and row.broker == "paper"
    events = journal.events(row.client_order_id)
    assert [e.kind for e in events] == ["INTENT"]
    assert json.loads(events[0].detail_json)["quantity"] == 5


def test_illegal_transition_raises_and_is_recorded(journal: OrderJournal, instrument: Instrument) -> None:
    journal.record_intent(_intent(instrument))
    journal.transition("AT240604ETESTORDER01", S.SUBMITTED)
    journal.transition("AT240604ETESTORDER01", S.FILLED, filled_quantity=5, average_price=10.0)
    with pytest.raises(IllegalTransition):
        journal.transition("AT240604ETESTORDER01", S.OPEN)
    row = journal.get("AT240604ETESTORDER01")
    assert row is not None and row.status == "FILLED"
    kinds = [e.kind for e in journal.events("AT240604ETESTORDER01")]
    assert kinds == ["INTENT", "STATUS", "STATUS", "ILLEGAL"]


def test_broker_view_never_moves_an_order_backwards(journal: OrderJournal, instrument: Instrument) -> None:
    journal.record_intent(_intent(instrument))
    journal.transition("AT240604ETESTORDER01", S.SUBMITTED)
    filled = Order("AT240604ETESTORDER01", instrument.instrument_key, Side.BUY, 5, S.FILLED, broker_order_id="B1",
                   filled_quantity=5, average_price=10.0)
    journal.apply("AT240604ETESTORDER01", filled)
    stale = Order("AT240604ETESTORDER01", instrument.instrument_key, Side.BUY, 5, S.OPEN, broker_order_id="B1",
                  filled_quantity=0)
    before_filled, _, row = journal.apply("AT240604ETESTORDER01", stale)
    assert before_filled == 5
    assert (row.status, row.filled_quantity, row.average_price) == ("FILLED", 5, 10.0)
    assert "ILLEGAL" in [e.kind for e in journal.events("AT240604ETESTORDER01")]
