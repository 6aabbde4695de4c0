"""Reconciliation against the loopback Kite server: database vs broker orders, positions, GTTs."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from engine.brokers.paper import PaperBroker
from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.brokers.zerodha.sandbox import KiteSandbox
from engine.clock import SteppedClock
from engine.execution import OrderManager, exit_request_for, make_client_order_id
from engine.execution.ids import triggered_order_id
from engine.models import ExitStatus, Instrument, OrderIntent, OrderStatus, OrderType, Side, Tick
from engine.settings import load_settings
from engine.storage.db import session_scope
from engine.storage.tables import PositionRow, TradeRow
from engine.strategy.window import SessionHours
from engine.trader import TradingEngine
from tests.engine.execution.conftest import FAST_RETRY, TRADING_DAY, kite_broker, open_position
from tests.engine.strategy.support import AlwaysLong, seeded_indicators


def _entry(instrument: Instrument, key: str = "setup-1", **kwargs: object) -> OrderIntent:
    return OrderIntent(make_client_order_id(TRADING_DAY, key), instrument, Side.BUY, 10, **kwargs)  # type: ignore[arg-type]


async def _protected_position(manager: OrderManager, sandbox: KiteSandbox, db: Engine, instrument: Instrument) -> str:
    sandbox.set_last_price("RELIANCE", 2900.0)
    entry = await manager.submit(_entry(instrument))
    await manager.refresh(entry.client_order_id)
    position_id = open_position(db, instrument, 10, client_order_id=entry.client_order_id)
    placed = await manager.place_exit(
        exit_request_for(instrument, 10, stop=2850.0, target=3000.0, last_price=2900.0, tag="RECONEXIT1"),
        position_id=position_id)
    with session_scope(db) as session:  # as the guard's PositionBook.set_exit records it
        row = session.get(PositionRow, position_id)
        assert row is not None
        row.exit_id = placed.exit_id
        session.add(row)
    return placed.exit_id


async def _restarted(sandbox: KiteSandbox, clock: SteppedClock, db: Engine, instrument: Instrument) -> OrderManager:
    return OrderManager(kite_broker(sandbox, clock, instrument), db, clock, trading_day=TRADING_DAY, retry=FAST_RETRY)


async def test_clean_state_reports_no_difference(
    kite_manager: OrderManager, sandbox: KiteSandbox, db: Engine, instrument: Instrument
) -> None:
    await _protected_position(kite_manager, sandbox, db, instrument)
    report = await kite_manager.reconcile()
    assert report.clean, report.differences
    assert (report.positions_checked, report.exits_checked) == (1, 1)


async def test_gtt_that_fired_while_we_were_down_is_settled_and_explains_the_closed_position(
    kite_manager: OrderManager, sandbox: KiteSandbox, clock: SteppedClock, db: Engine, instrument: Instrument
) -> None:
    exit_id = await _protected_position(kite_manager, sandbox, db, instrument)
    sandbox.set_last_price("RELIANCE", 2840.0)  # while no process was watching
    manager = await _restarted(sandbox, clock, db, instrument)
    report = await manager.reconcile()
    assert sorted(report.kinds()) == ["EXIT_SETTLED", "POSITION_BY_EXIT"]
    assert [(e.exit_id, e.status, e.exit_price) for e in report.settled_exits] == [
        (exit_id, ExitStatus.TRIGGERED_STOP, 2840.0)]
    assert manager.journal.gtt(exit_id).status == "TRIGGERED_STOP"  # type: ignore[union-attr]
    leg = manager.journal.get(triggered_order_id(exit_id))
    assert leg is not None and leg.status == "FILLED"
    again = await manager.reconcile()
    assert "EXIT_SETTLED" not in again.kinds()
    await manager.broker.close()


async def test_position_sold_by_its_fired_exit_is_not_taken_for_closed_by_hand_before_the_exit_settles(
    kite_manager: OrderManager, sandbox: KiteSandbox, db: Engine, instrument: Instrument
) -> None:
    exit_id = await _protected_position(kite_manager, sandbox, db, instrument)
    sandbox.set_last_price("RELIANCE", 2840.0)  # the stop fires and its SELL fills
    with sandbox._lock:  # Kite has not yet written the fired leg's order id into the GTT
        for gtt in sandbox.exchange.gtts.values():
            for leg in gtt.legs:
                leg.order_id = None
    report = await kite_manager.reconcile()
    assert "POSITION_CLOSED" not in report.kinds()
    assert "POSITION_BY_EXIT" in report.kinds()
    with session_scope(db) as session:
        assert session.exec(select(PositionRow)).one().status == "OPEN"  # the trade is the exit's, once settled
    assert kite_manager.journal.gtt(exit_id).status == "ACTIVE"  # type: ignore[union-attr]


async def test_position_closed_by_hand_is_reported_for_the_portfolio_its_exit_cancelled_and_the_order_reported(
    kite_manager: OrderManager, sandbox: KiteSandbox, db: Engine, instrument: Instrument
) -> None:
    exit_id = await _protected_position(kite_manager, sandbox, db, instrument)
    manual = sandbox.place_manual_order("RELIANCE", "SELL", 10)
    report = await kite_manager.reconcile()
    assert sorted(report.kinds()) == ["POSITION_CLOSED", "UNKNOWN_ORDER"]
    closed = next(d for d in report.differences if d.kind == "POSITION_CLOSED")
    assert "cancelled" in closed.resolution
    unknown = next(d for d in report.differences if d.kind == "UNKNOWN_ORDER")
    assert unknown.key == manual and "not adopted" in unknown.resolution
    [sale] = report.closed_by_hand  # the portfolio closes it (tests/engine/execution/test_reconcile_by_hand.py)
    assert (sale.instrument_key, sale.left) == (instrument.instrument_key, 0) and sale.price is not None
    with session_scope(db) as session:
        assert session.exec(select(PositionRow)).one().status == "OPEN"  # reconciliation writes no position
    assert sandbox.gtts()[0]["status"] == "deleted"
    assert kite_manager.journal.gtt(exit_id).status == "CANCELLED"  # type: ignore[union-attr]
    assert kite_manager.journal.get(manual) is None  # never adopted


async def test_order_filled_while_down_takes_the_broker_status_and_fills(
    kite_manager: OrderManager, sandbox: KiteSandbox, clock: SteppedClock, db: Engine, instrument: Instrument
) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    order = await kite_manager.submit(_entry(instrument, order_type=OrderType.LIMIT, price=2880.0))
    assert order.status is OrderStatus.OPEN
    sandbox.set_last_price("RELIANCE", 2875.0)
    manager = await _restarted(sandbox, clock, db, instrument)
    report = await manager.reconcile()
    assert report.kinds() == ["ORDER_STATUS", "POSITION_UNRECORDED"]
    assert order.client_order_id in report.differences[1].resolution
    row = manager.journal.get(order.client_order_id)
    assert row is not None and (row.status, row.filled_quantity, row.average_price) == ("FILLED", 10, 2875.0)
    assert [f.fill_id for f in manager.journal.fills(order.client_order_id)] == [f"T{order.broker_order_id}"]
    await manager.broker.close()


async def test_submitted_order_missing_at_the_broker_waits_then_is_rejected_as_lost(
    kite_manager: OrderManager, clock: SteppedClock, instrument: Instrument
) -> None:
    intent = _entry(instrument)
    kite_manager.journal.record_intent(intent)
    kite_manager.journal.transition(intent.client_order_id, OrderStatus.SUBMITTED)
    assert (await kite_manager.reconcile()).kinds() == ["ORDER_UNCONFIRMED"]
    clock.advance(kite_manager.submitted_grace_seconds + 1)
    assert (await kite_manager.reconcile()).kinds() == ["ORDER_LOST"]
    assert kite_manager.journal.get(intent.client_order_id).status == "REJECTED"  # type: ignore[union-attr]


async def test_unknown_exits_and_positions_are_reported_not_adopted(
    kite_manager: OrderManager, sandbox: KiteSandbox, instrument: Instrument
) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    sandbox.place_manual_order("RELIANCE", "BUY", 5)
    await kite_manager.broker.place_exit_oco(
        exit_request_for(instrument, 5, stop=2800.0, target=3100.0, last_price=2900.0, tag="BYHAND"))
    report = await kite_manager.reconcile()
    assert sorted(report.kinds()) == ["UNKNOWN_EXIT", "UNKNOWN_ORDER", "UNKNOWN_POSITION"]
    assert kite_manager.journal.gtts() == []
    assert report.to_dict()["clean"] is False


async def test_stale_intents_are_never_sent_late_and_earlier_days_orders_are_reported(
    paper_manager: OrderManager, db: Engine, clock: SteppedClock, instrument: Instrument
) -> None:
    from datetime import timedelta

    from engine.brokers.paper import PaperBroker

    never_sent = _entry(instrument, "never-sent")
    paper_manager.journal.record_intent(never_sent)
    yesterday = OrderManager(PaperBroker(clock), db, clock, trading_day=TRADING_DAY - timedelta(days=1))
    old = _entry(instrument, "yesterday")
    yesterday.journal.record_intent(old)
    yesterday.journal.transition(old.client_order_id, OrderStatus.SUBMITTED)
    yesterday.journal.transition(old.client_order_id, OrderStatus.OPEN, broker_order_id="P-OLD")
    clock.advance(paper_manager.submitted_grace_seconds + 1)
    report = await paper_manager.reconcile()
    assert sorted(report.kinds()) == ["ORDER_NEVER_SENT", "ORDER_STALE"]
    assert paper_manager.journal.get(never_sent.client_order_id).status == "CANCELLED"  # type: ignore[union-attr]
    assert paper_manager.journal.get(old.client_order_id).status == "OPEN"  # type: ignore[union-attr]
    assert (await paper_manager.submit(never_sent)).status is OrderStatus.CANCELLED  # not sent after all


async def test_exit_changed_at_the_broker_is_reported_and_the_intent_kept(
    kite_manager: OrderManager, sandbox: KiteSandbox, db: Engine, instrument: Instrument
) -> None:
    exit_id = await _protected_position(kite_manager, sandbox, db, instrument)
    moved = exit_request_for(instrument, 10, stop=2800.0, target=3000.0, last_price=2900.0, tag="RECONEXIT1")
    await kite_manager.broker.modify_exit(exit_id, moved)  # by hand, outside the manager
    report = await kite_manager.reconcile()
    assert report.kinds() == ["EXIT_MISMATCH"]
    assert kite_manager.journal.gtt(exit_id).stop_trigger == 2850.0  # type: ignore[union-attr]


# ---- shares bought by hand are not ours (the paper broker and the Kite sandbox alike) ---------------

class Venue:
    """One broker to trade RELIANCE on, with a way to buy outside autotrader and to move the price."""

    def __init__(self, broker: PaperBroker | ZerodhaBroker, clock: SteppedClock, instrument: Instrument,
                 sandbox: KiteSandbox | None = None) -> None:
        self.broker, self.clock, self.instrument, self.sandbox = broker, clock, instrument, sandbox

    async def price(self, price: float) -> Tick:
        """The market trades at `price` (the paper broker fills its working orders on this tick)."""
        self.clock.advance(2)
        tick = Tick(self.instrument.instrument_key, price, self.clock.now_ms())
        if self.sandbox is not None:
            self.sandbox.set_last_price(self.instrument.symbol, price)
        else:
            await self.broker.on_tick(tick)
        return tick

    async def buy_by_hand(self, quantity: int) -> None:
        if self.sandbox is not None:
            self.sandbox.place_manual_order(self.instrument.symbol, "BUY", quantity)
        else:  # a tag the journal never wrote: an order placed outside autotrader
            await self.broker.place_order(OrderIntent("BYHAND1", self.instrument, Side.BUY, quantity))
        await self.price(100.0)

    async def held(self) -> int:
        key = self.instrument.instrument_key
        return sum(p.quantity for p in await self.broker.positions() if p.instrument_key == key)


@pytest.fixture(params=["paper", "kite-sandbox"])
def venue(request: pytest.FixtureRequest, clock: SteppedClock, instrument: Instrument) -> Venue:
    if request.param == "paper":
        return Venue(request.getfixturevalue("paper"), clock, instrument)
    return Venue(request.getfixturevalue("kite"), clock, instrument, request.getfixturevalue("sandbox"))


async def test_shares_bought_by_hand_are_reported_as_surplus_never_adopted_and_a_stop_exit_sells_only_ours(
    venue: Venue, db: Engine, clock: SteppedClock, instrument: Instrument
) -> None:
    manager = OrderManager(venue.broker, db, clock, trading_day=TRADING_DAY, retry=FAST_RETRY)
    await venue.price(100.0)
    entry = await manager.submit(_entry(instrument))
    await venue.price(100.0)
    assert (await manager.refresh(entry.client_order_id)).status is OrderStatus.FILLED
    open_position(db, instrument, 10, client_order_id=entry.client_order_id)  # stop 95, no GTT: the engine watches
    await venue.buy_by_hand(10)
    assert await venue.held() == 20

    report = await manager.reconcile()
    assert sorted(report.kinds()) == ["POSITION_SURPLUS", "UNKNOWN_ORDER"]
    surplus = next(d for d in report.differences if d.kind == "POSITION_SURPLUS")
    assert (surplus.key, surplus.db, surplus.broker) == (instrument.instrument_key, "OPEN 10", "20")
    assert "surplus at broker, not ours" in surplus.resolution and "not adopted" in surplus.resolution
    with session_scope(db) as session:
        assert [(r.status, r.quantity) for r in session.exec(select(PositionRow))] == [("OPEN", 10)]

    engine = TradingEngine(load_settings(), clock, [instrument], {instrument.symbol: seeded_indicators(
        instrument, TRADING_DAY)}, AlwaysLong(), manager, db, TRADING_DAY, venue.broker,
        session=SessionHours(clock.now().replace(hour=9, minute=15), clock.now().replace(hour=15, minute=30)),
        exits_at_broker=False)
    await engine.resume()
    assert engine.positions.open[instrument.instrument_key].quantity == 10
    for _ in range(3):  # the stop is hit; the exit order fills (the paper broker on the next tick)
        await engine.on_ticks([await venue.price(94.0)])
    assert engine.positions.open == {}
    exits = [o for o in manager.journal.orders() if o.purpose == "EXIT"]
    assert [(o.side, o.quantity, o.status) for o in exits] == [("SELL", 10, "FILLED")]
    with session_scope(db) as session:
        assert [(t.quantity, t.exit_reason) for t in session.exec(select(TradeRow))] == [(10, "stop")]
    assert await venue.held() == 10  # the shares bought by hand are still there
    after = await manager.reconcile()  # none of ours left: the rest was never ours
    assert sorted(after.kinds()) == ["UNKNOWN_ORDER", "UNKNOWN_POSITION"]
    assert next(d for d in after.differences if d.kind == "UNKNOWN_POSITION").broker.startswith("10 @")
