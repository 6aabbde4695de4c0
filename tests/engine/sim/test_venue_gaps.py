"""What was seen (issue #11 item 3): slippage and partial fills only in paper, no stop-trigger
memory in the Kite sandbox, and rejections raised by paper but returned by the sandboxes. Each
venue now fills in the one simulated exchange."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime

import pytest

from engine.brokers.base import Broker
from engine.brokers.paper import PaperBroker
from engine.brokers.upstox.sandbox import SandboxUpstoxBroker
from engine.brokers.zerodha.sandbox import SandboxZerodhaBroker
from engine.clock import SteppedClock
from engine.execution import make_client_order_id
from engine.models import IST, Instrument, OrderIntent, OrderStatus, OrderType, Product, Side, Tick
from engine.sim import FillModel

RELIANCE = Instrument("NSE_EQ|INE002A01018", "RELIANCE", "INE002A01018", tick_size=0.05)
Venue = Callable[[SteppedClock, FillModel], Broker]
VENUES: dict[str, Venue] = {
    "paper": lambda clock, model: PaperBroker(clock, fill_model=model, instruments=[RELIANCE]),
    "zerodha-sandbox": lambda clock, model: SandboxZerodhaBroker.start(clock, instruments=[RELIANCE],
                                                                       fill_model=model),
    "upstox-sandbox": lambda clock, model: SandboxUpstoxBroker.start(clock, instruments=[RELIANCE],
                                                                     fill_model=model),
}
Feed = Callable[[float], Awaitable[None]]


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(datetime(2024, 6, 4, 10, 0, tzinfo=IST))


@pytest.fixture(params=list(VENUES))
async def venue(request: pytest.FixtureRequest, clock: SteppedClock) -> AsyncIterator[tuple[Broker, Feed]]:
    broker = VENUES[request.param](clock, FillModel(slippage_bps=10, partial_fill_ratio=0.5))
    await broker.connect()

    async def feed(price: float) -> None:
        clock.advance(1)
        await broker.on_tick(Tick(RELIANCE.instrument_key, price, clock.now_ms()))

    yield broker, feed
    await broker.close()


def _intent(key: str, side: Side = Side.BUY, **fields: object) -> OrderIntent:
    return OrderIntent(make_client_order_id(date(2024, 6, 4), key), RELIANCE, side, 10, **fields)  # type: ignore[arg-type]


async def _order(broker: Broker, intent: OrderIntent) -> tuple[OrderStatus, int, float]:
    found = await broker.find_order(intent.client_order_id)
    assert found is not None
    return found.status, found.filled_quantity, found.average_price


async def test_every_venue_fills_with_slippage_and_partial_fills(venue: tuple[Broker, Feed]) -> None:
    broker, feed = venue
    await feed(100.0)
    intent = _intent("slip")
    await broker.place_order(intent)
    assert await _order(broker, intent) == (OrderStatus.PARTIALLY_FILLED, 5, 100.1)  # 100 + 10 bps, half
    await feed(101.0)
    assert await _order(broker, intent) == (OrderStatus.FILLED, 10, 100.625)  # then 101.15 for the rest


async def test_every_venue_remembers_a_crossed_stop_trigger(venue: tuple[Broker, Feed]) -> None:
    broker, feed = venue
    await feed(100.0)
    intent = _intent("stop", order_type=OrderType.SL, price=106.0, trigger_price=105.0, product=Product.MIS)
    await broker.place_order(intent)
    await feed(107.0)  # triggered, above the limit: keeps working
    assert (await _order(broker, intent))[0] is OrderStatus.OPEN
    await feed(104.0)
    await feed(104.0)
    assert await _order(broker, intent) == (OrderStatus.FILLED, 10, 104.15)  # 104 + 10 bps, up the grid


async def test_every_venue_returns_a_sell_beyond_the_holding_rejected(venue: tuple[Broker, Feed]) -> None:
    broker, feed = venue
    await feed(100.0)
    intent = _intent("oversell", Side.SELL)
    placed = await broker.place_order(intent)  # never raised
    assert placed.broker_order_id
    found = await broker.find_order(intent.client_order_id)
    assert found is not None and found.status is OrderStatus.REJECTED
    assert "holdings" in found.message.lower()
