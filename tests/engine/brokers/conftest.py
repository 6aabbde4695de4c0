"""Contract-suite fixtures. `broker` and `feed_price` raise NotImplementedError here; each venue's
conftest.py (paper/, zerodha/, upstox/) overrides them, and its test_contract.py star-imports the
one contract module (`tests/engine/brokers/contract.py`), so every venue runs the same tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import pytest

from engine.clock import SteppedClock
from engine.models import IST, Instrument

FeedPrice = Callable[[Instrument, float], Awaitable[None]]


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(datetime(2024, 6, 4, 10, 0, tzinfo=IST))


@pytest.fixture
def instrument() -> Instrument:
    return Instrument(instrument_key="NSE_EQ|INE002A01018", symbol="RELIANCE", isin="INE002A01018",
                      tick_size=0.05, lot_size=1, kite_token=738561)


@pytest.fixture
def broker():  # type: ignore[no-untyped-def]
    """A connected `Broker` of the venue under test (async fixture yielding it, closed after)."""
    raise NotImplementedError("each venue's conftest.py overrides the `broker` fixture")


@pytest.fixture
def feed_price() -> FeedPrice:
    """`async (instrument, price) -> None`: make the venue see a traded price."""
    raise NotImplementedError("each venue's conftest.py overrides the `feed_price` fixture")
