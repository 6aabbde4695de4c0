from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engine.brokers.paper import PaperBroker
from engine.clock import SteppedClock
from engine.models import Instrument, Tick
from tests.engine.brokers.conftest import FeedPrice


@pytest.fixture
async def broker(clock: SteppedClock) -> AsyncIterator[PaperBroker]:
    paper = PaperBroker(clock, slippage_bps=5.0)
    await paper.connect()
    yield paper
    await paper.close()


@pytest.fixture
def feed_price(broker: PaperBroker, clock: SteppedClock) -> FeedPrice:
    async def feed(instrument: Instrument, price: float) -> None:
        clock.advance(1)
        await broker.on_tick(Tick(instrument.instrument_key, price, clock.now_ms()))

    return feed
