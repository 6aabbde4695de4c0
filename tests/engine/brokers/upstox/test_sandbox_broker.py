"""`AUTOTRADER_BROKER=upstox-sandbox`: the real adapter against an embedded
sandbox whose prices come from the engine's ticks."""

from __future__ import annotations

from datetime import date

import pytest

from engine.brokers.base import ConfigError
from engine.brokers.factory import make_broker
from engine.brokers.upstox.sandbox import SandboxUpstoxBroker
from engine.clock import SteppedClock
from engine.execution import exit_request_for, make_client_order_id
from engine.models import ExitStatus, Instrument, OrderIntent, OrderStatus, Side, Tick
from engine.settings import Credentials, load_settings


def _tick(instrument: Instrument, clock: SteppedClock, price: float) -> Tick:
    return Tick(instrument.instrument_key, price, clock.now_ms())


async def test_sandbox_broker_trades_on_ticks_and_stops_with_close(clock: SteppedClock, instrument: Instrument) -> None:
    broker = make_broker(  # the [paper] fill model: next-tick fills, here without slippage
        load_settings(broker="upstox-sandbox", paper={"slippage_bps": 0.0}, database_url="sqlite://"),
        Credentials(),
        clock=clock,
        instruments=[instrument],
    )
    assert isinstance(broker, SandboxUpstoxBroker)
    try:
        await broker.connect()
        intent = OrderIntent(make_client_order_id(date(2024, 6, 4), "sandboxed"), instrument, Side.BUY, 10)
        await broker.on_tick(_tick(instrument, clock, 100.0))
        await broker.place_order(intent)
        await broker.on_tick(_tick(instrument, clock, 100.0))
        found = await broker.find_order(intent.client_order_id)
        assert found is not None and found.status is OrderStatus.FILLED and found.average_price == 100.0
        assert broker.sandbox.orders_tagged(intent.client_order_id)[0]["trading_symbol"] == "RELIANCE"
        request = exit_request_for(instrument, 10, stop=95.0, target=110.0, last_price=100.0, tag="SBX")
        placed = await broker.place_exit_oco(request)
        await broker.on_tick(_tick(instrument, clock, 110.5))
        [fired] = await broker.list_exits()
        assert (fired.exit_id, fired.status, fired.exit_price) == (placed.exit_id, ExitStatus.TRIGGERED_TARGET, 110.5)
        assert await broker.positions() == []
    finally:
        await broker.close()
    with pytest.raises(RuntimeError, match="not running"):
        _ = broker.sandbox.url


def test_missing_token_names_the_sandbox_alternative(clock: SteppedClock) -> None:
    with pytest.raises(ConfigError, match="AUTOTRADER_BROKER=upstox-sandbox"):
        make_broker(load_settings(broker="upstox"), Credentials(upstox_access_token=None), clock=clock, replay=False)
