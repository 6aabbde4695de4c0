from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.brokers.zerodha.sandbox import KiteSandbox
from engine.clock import SteppedClock
from engine.models import Instrument
from tests.engine.brokers.conftest import FeedPrice

CLIENT_TIMEOUT = 0.4  # seconds; the sandbox's "timeout after accept" fault sleeps past it


@pytest.fixture
def sandbox(clock: SteppedClock) -> Iterator[KiteSandbox]:
    with KiteSandbox(clock=clock, timeout_fault_seconds=CLIENT_TIMEOUT + 0.4) as server:
        yield server


@pytest.fixture
async def broker(sandbox: KiteSandbox, clock: SteppedClock, instrument: Instrument) -> AsyncIterator[ZerodhaBroker]:
    kite = ZerodhaBroker(sandbox.config(timeout=CLIENT_TIMEOUT), clock, instruments=[instrument])
    await kite.connect()
    yield kite
    await kite.close()


@pytest.fixture
def feed_price(sandbox: KiteSandbox) -> FeedPrice:
    async def feed(instrument: Instrument, price: float) -> None:
        sandbox.set_last_price(instrument.symbol, price)

    return feed
