"""The broker contract, run for every venue (see conftest.py). Not collected by itself: each venue's
`test_contract.py` star-imports it."""

from __future__ import annotations

from datetime import date

import pytest

from engine.brokers.base import Broker, OrderRejected
from engine.execution import exit_request_for, make_client_order_id
from engine.models import ExitStatus, Instrument, OrderIntent, OrderStatus, OrderType, Side
from tests.engine.brokers.conftest import FeedPrice


def _intent(
    instrument: Instrument, key: str, side: Side = Side.BUY, quantity: int = 10, **kwargs: object
) -> OrderIntent:
    return OrderIntent(client_order_id=make_client_order_id(date(2024, 6, 4), key), instrument=instrument, side=side,
                       quantity=quantity, **kwargs)  # type: ignore[arg-type]


async def _buy_and_hold(broker: Broker, feed_price: FeedPrice, instrument: Instrument, quantity: int = 10) -> None:
    await feed_price(instrument, 100.0)
    await broker.place_order(_intent(instrument, "hold", quantity=quantity))
    await feed_price(instrument, 100.0)


async def test_market_buy_is_found_by_tag_and_fills_at_the_fed_price(
    broker: Broker, feed_price: FeedPrice, instrument: Instrument
) -> None:
    intent = _intent(instrument, "market-buy")
    placed = await broker.place_order(intent)
    assert placed.broker_order_id
    assert placed.status in (OrderStatus.SUBMITTED, OrderStatus.OPEN, OrderStatus.FILLED)
    await feed_price(instrument, 100.0)
    found = await broker.find_order(intent.client_order_id)
    assert found is not None
    assert found.broker_order_id == placed.broker_order_id
    assert found.client_order_id == intent.client_order_id
    assert found.status is OrderStatus.FILLED
    assert found.filled_quantity == 10
    assert 99.0 <= found.average_price <= 101.0
    positions = {p.instrument_key: p for p in await broker.positions()}
    assert positions[instrument.instrument_key].quantity == 10
    assert intent.client_order_id in {o.client_order_id for o in await broker.list_orders()}


async def test_unknown_tag_is_not_found(broker: Broker) -> None:
    assert await broker.find_order("AT240604ENOSUCHORDER") is None


async def test_working_limit_order_can_be_cancelled_once(
    broker: Broker, feed_price: FeedPrice, instrument: Instrument
) -> None:
    await feed_price(instrument, 100.0)
    intent = _intent(instrument, "limit-buy", order_type=OrderType.LIMIT, price=80.0)
    placed = await broker.place_order(intent)
    await feed_price(instrument, 100.0)
    assert placed.broker_order_id is not None
    await broker.cancel_order(placed.broker_order_id)
    found = await broker.find_order(intent.client_order_id)
    assert found is not None and found.status is OrderStatus.CANCELLED
    assert found.filled_quantity == 0
    with pytest.raises(OrderRejected):
        await broker.cancel_order(placed.broker_order_id)


async def test_invalid_order_is_rejected(broker: Broker, instrument: Instrument) -> None:
    with pytest.raises(OrderRejected):
        await broker.place_order(_intent(instrument, "bad-limit", order_type=OrderType.LIMIT, price=None))


async def test_exit_is_listed_found_modified_and_cancelled(
    broker: Broker, feed_price: FeedPrice, instrument: Instrument
) -> None:
    await _buy_and_hold(broker, feed_price, instrument)
    request = exit_request_for(instrument, 10, stop=95.0, target=110.0, last_price=100.0, tag="EXITCONTRACT1")
    placed = await broker.place_exit_oco(request)
    assert placed.status is ExitStatus.ACTIVE
    listed = {e.exit_id: e for e in await broker.list_exits()}
    assert listed[placed.exit_id].status is ExitStatus.ACTIVE
    assert (listed[placed.exit_id].stop_trigger, listed[placed.exit_id].target_trigger) == (95.0, 110.0)
    assert listed[placed.exit_id].stop_limit < 95.0
    found = await broker.find_exit(request)
    assert found is not None and found.exit_id == placed.exit_id
    moved = exit_request_for(instrument, 10, stop=97.0, target=112.0, last_price=100.0, tag="EXITCONTRACT1")
    await broker.modify_exit(placed.exit_id, moved)
    listed = {e.exit_id: e for e in await broker.list_exits()}
    assert (listed[placed.exit_id].stop_trigger, listed[placed.exit_id].target_trigger) == (97.0, 112.0)
    await broker.cancel_exit(placed.exit_id)
    listed = {e.exit_id: e for e in await broker.list_exits()}
    assert placed.exit_id not in listed or listed[placed.exit_id].status is ExitStatus.CANCELLED
    with pytest.raises(OrderRejected):
        await broker.cancel_exit(placed.exit_id)


@pytest.mark.parametrize(("price", "status", "leg_limit"), [
    (94.8, ExitStatus.TRIGGERED_STOP, 94.5),  # between the stop limit and its trigger
    (111.0, ExitStatus.TRIGGERED_TARGET, 109.45),
])
async def test_exit_fires_when_the_price_crosses_a_trigger_and_sells_the_position(
    broker: Broker, feed_price: FeedPrice, instrument: Instrument, price: float, status: ExitStatus, leg_limit: float
) -> None:
    await _buy_and_hold(broker, feed_price, instrument)
    request = exit_request_for(instrument, 10, stop=95.0, target=110.0, last_price=100.0, tag="EXITCONTRACT2")
    assert leg_limit in (request.stop_limit, request.target_limit)
    placed = await broker.place_exit_oco(request)
    await feed_price(instrument, price)
    await feed_price(instrument, price)
    fired = {e.exit_id: e for e in await broker.list_exits()}[placed.exit_id]
    assert fired.status is status
    assert fired.triggered_order_id is not None
    legs = {o.broker_order_id: o for o in await broker.list_orders()}
    leg = legs[fired.triggered_order_id]
    assert leg.side is Side.SELL and leg.quantity == 10 and leg.status is OrderStatus.FILLED
    assert leg.average_price >= leg_limit
    assert instrument.instrument_key not in {p.instrument_key for p in await broker.positions()}
