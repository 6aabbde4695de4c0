"""The paper broker as an adapter over the simulated exchange: what it maps beyond the contract."""

from __future__ import annotations

from datetime import date

from engine.brokers.paper import PaperBroker
from engine.clock import SteppedClock
from engine.execution import exit_request_for, make_client_order_id
from engine.models import ExitStatus, Instrument, OrderIntent, OrderStatus, Product, Side, Tick


async def _feed(paper: PaperBroker, clock: SteppedClock, instrument: Instrument, price: float) -> None:
    clock.advance(1)
    await paper.on_tick(Tick(instrument.instrument_key, price, clock.now_ms()))


async def test_an_intraday_position_is_sold_by_its_exit_and_reported_once(
    clock: SteppedClock, instrument: Instrument
) -> None:
    paper = PaperBroker(clock, slippage_bps=0.0)
    await _feed(paper, clock, instrument, 100.0)
    await paper.place_order(OrderIntent(make_client_order_id(date(2024, 6, 4), "mis"), instrument, Side.BUY, 10,
                                        product=Product.MIS))
    await _feed(paper, clock, instrument, 100.0)
    assert [(p.quantity, p.average_price) for p in await paper.positions()] == [(10, 100.0)]
    placed = await paper.place_exit_oco(exit_request_for(instrument, 10, stop=95.0, target=110.0, last_price=100.0,
                                                         tag="MISEXIT"))
    await _feed(paper, clock, instrument, 94.9)
    [fired] = await paper.list_exits()
    assert (fired.exit_id, fired.status) == (placed.exit_id, ExitStatus.TRIGGERED_STOP)
    leg = await paper.get_order(fired.triggered_order_id or "")
    assert leg is not None and (leg.status, leg.average_price) == (OrderStatus.FILLED, 94.9)
    assert await paper.positions() == []


async def test_a_refused_order_comes_back_rejected_with_the_reason(clock: SteppedClock, instrument: Instrument) -> None:
    paper = PaperBroker(clock)
    await _feed(paper, clock, instrument, 100.0)
    intent = OrderIntent(make_client_order_id(date(2024, 6, 4), "oversell"), instrument, Side.SELL, 10)
    placed = await paper.place_order(intent)
    assert placed.status is OrderStatus.REJECTED
    assert placed.message == "Insufficient holdings for a delivery sell. 0 available to sell, 10 ordered"
    assert await paper.find_order(intent.client_order_id) == placed
