"""Upstox venue fixtures: the real upstox-python-sdk against the loopback `UpstoxSandbox`, with
the API host and the order (HFT) host on two different ports of one sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.brokers.upstox import UpstoxBroker, UpstoxConfig
from engine.brokers.upstox.sandbox import UpstoxSandbox
from engine.clock import SteppedClock
from engine.models import Instrument
from tests.engine.brokers.conftest import FeedPrice

TOKEN = "upstox-test-token"
CLIENT_READ_TIMEOUT = 0.4  # seconds; the "timeout after accept" fault holds its answer past it
RESOURCES = Path(__file__).parent / "resources"


def load_resource(name: str) -> Any:
    import json

    return json.loads((RESOURCES / name).read_text())


@pytest.fixture
def sandbox(clock: SteppedClock) -> Iterator[UpstoxSandbox]:
    server = UpstoxSandbox(access_token=TOKEN, clock=clock, hold_seconds=CLIENT_READ_TIMEOUT + 1.0).start()
    yield server
    server.stop()


@pytest.fixture
def order_url(sandbox: UpstoxSandbox) -> str:
    """A second port of the same sandbox, standing in for api-hft.upstox.com."""
    return sandbox.listen()


def make_config(sandbox: UpstoxSandbox, order_url: str, token: str = TOKEN) -> UpstoxConfig:
    return sandbox.config(order_url, access_token=token, connect_timeout=1.0, read_timeout=CLIENT_READ_TIMEOUT)


@pytest.fixture
async def broker(
    sandbox: UpstoxSandbox, order_url: str, clock: SteppedClock, instrument: Instrument
) -> AsyncIterator[UpstoxBroker]:
    upstox = UpstoxBroker(make_config(sandbox, order_url), clock, instruments=[instrument])
    await upstox.connect()
    yield upstox
    await upstox.close()


@pytest.fixture
def feed_price(sandbox: UpstoxSandbox) -> FeedPrice:
    async def feed(instrument: Instrument, price: float) -> None:
        sandbox.set_last_price(instrument.instrument_key, price)

    return feed
