"""The execution engineer's OrderManager on UpstoxBroker and the sandbox: faults during submit and
exit placement leave exactly one order and one pair of legs, and fired exits settle."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import Engine

from engine.brokers.upstox import UpstoxBroker
from engine.brokers.upstox.sandbox import Fault, UpstoxSandbox
from engine.clock import SteppedClock
from engine.execution import OrderManager, RetryPolicy, exit_request_for, make_client_order_id
from engine.models import ExitStatus, Instrument, OrderIntent, OrderPurpose, OrderStatus, Side
from engine.storage.db import init_db

DAY = date(2024, 6, 4)
INFY = Instrument("NSE_EQ|INE009A01021", "INFY", "INE009A01021")


@pytest.fixture
def db() -> Iterator[Engine]:
    engine = init_db("sqlite://")
    yield engine
    engine.dispose()


@pytest.fixture
def manager(broker: UpstoxBroker, db: Engine, clock: SteppedClock) -> OrderManager:
    return OrderManager(broker, db, clock, trading_day=DAY, retry=RetryPolicy(attempts=4, backoff_seconds=0.0))


@pytest.mark.parametrize("fault", [Fault.TIMEOUT_AFTER_ACCEPT, Fault.DROP_RESPONSE, Fault.RATE_LIMIT, 500])
async def test_submit_and_exit_through_faults_exist_once(
    manager: OrderManager, sandbox: UpstoxSandbox, instrument: Instrument, fault: Fault | int
) -> None:
    sandbox.set_last_price(instrument.instrument_key, 100.0)
    sandbox.inject_fault("POST", "/v3/order/place", fault)
    intent = OrderIntent(make_client_order_id(DAY, "om"), instrument, Side.BUY, 10)
    order = await manager.submit(intent)
    assert order.status in (OrderStatus.OPEN, OrderStatus.FILLED)  # the answer, or what the lookup found
    assert (await manager.refresh(intent.client_order_id)).status is OrderStatus.FILLED
    assert len(sandbox.orders_tagged(intent.client_order_id)) == 1
    sandbox.inject_fault("POST", "/v3/order/gtt/place", fault, after=1)
    tag = make_client_order_id(DAY, "om", OrderPurpose.EXIT)
    placed = await manager.place_exit(
        exit_request_for(instrument, 10, stop=95.0, target=110.0, last_price=100.0, tag=tag)
    )
    assert placed.status is ExitStatus.ACTIVE
    assert len(sandbox.gtts) == 2 and set(placed.exit_id.split("+")) == set(sandbox.gtts)


async def test_fired_exits_of_two_positions_settle_with_their_own_prices(
    manager: OrderManager, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    exits = {}
    for stock, price in ((instrument, 100.0), (INFY, 1500.0)):
        sandbox.set_last_price(stock.instrument_key, price)
        key = f"two-{stock.symbol}"
        await manager.submit(OrderIntent(make_client_order_id(DAY, key), stock, Side.BUY, 10))
        request = exit_request_for(
            stock,
            10,
            stop=price * 0.95,
            target=price * 1.1,
            last_price=price,
            tag=make_client_order_id(DAY, key, OrderPurpose.EXIT),
        )
        exits[stock.instrument_key] = await manager.place_exit(request)
    sandbox.set_last_price(instrument.instrument_key, 94.8)  # between stop limit and trigger
    sandbox.set_last_price(INFY.instrument_key, 1420.0)
    settled = {e.exit_id: e for e in await manager.sync_exits()}
    assert settled[exits[instrument.instrument_key].exit_id].exit_price == 94.8
    assert settled[exits[INFY.instrument_key].exit_id].exit_price == 1420.0
    assert all(e.status is ExitStatus.TRIGGERED_STOP for e in settled.values())
    legs = {row.broker_order_id: row.average_price for row in manager.journal.orders() if row.side == "SELL"}
    assert legs == {e.triggered_order_id: e.exit_price for e in settled.values()}
