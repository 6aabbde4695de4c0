from __future__ import annotations

from datetime import date, datetime

import pytest

from engine.brokers.base import BrokerCapabilities
from engine.clock import SteppedClock
from engine.execution import RateLimiter, exit_request_for, make_client_order_id
from engine.execution.ids import is_our_tag
from engine.models import IST, Instrument, OrderPurpose


def test_client_order_ids_are_deterministic_short_alphanumeric_and_distinct() -> None:
    day = date(2024, 6, 4)
    first = make_client_order_id(day, "setup-17")
    assert first == make_client_order_id(day, "setup-17")
    assert len(first) == 20 and first.isalnum() and first.startswith("AT240604E")
    assert is_our_tag(first) and not is_our_tag("manual") and not is_our_tag(None)
    others = {make_client_order_id(day, "setup-18"), make_client_order_id(date(2024, 6, 5), "setup-17"),
              make_client_order_id(day, "setup-17", OrderPurpose.EXIT)}
    assert first not in others and len(others) == 3
    with pytest.raises(ValueError):
        make_client_order_id(day, "")


def test_exit_limits_sit_below_their_triggers_on_the_tick_grid() -> None:
    instrument = Instrument("NSE_EQ|X", "X", "X", tick_size=0.05)
    request = exit_request_for(instrument, 10, stop=95.03, target=110.0, last_price=100.0, tag="T",
                               limit_offset_pct=0.5)
    assert (request.stop_trigger, request.stop_limit) == (95.05, 94.55)
    assert (request.target_trigger, request.target_limit) == (110.0, 109.45)
    with pytest.raises(ValueError):
        exit_request_for(instrument, 10, stop=101.0, target=110.0, last_price=100.0, tag="T")


async def test_rate_limiter_holds_kite_limits_on_the_clock() -> None:
    clock = SteppedClock(datetime(2024, 6, 4, 10, 0, tzinfo=IST))
    limiter = RateLimiter.for_capabilities(clock, BrokerCapabilities(orders_per_second=10, orders_per_minute=400))
    start = clock.now()
    stamps = []
    for _ in range(25):
        await limiter.acquire()
        stamps.append((clock.now() - start).total_seconds())
    assert stamps[9] == 0.0 and stamps[10] == pytest.approx(1.0) and stamps[20] == pytest.approx(2.0)
    for i in range(len(stamps) - 10):
        assert stamps[i + 10] - stamps[i] >= 1.0 - 1e-9  # never 11 in one second


async def test_rate_limiter_per_minute_window() -> None:
    clock = SteppedClock(datetime(2024, 6, 4, 10, 0, tzinfo=IST))
    limiter = RateLimiter(clock, [(100, 1.0), (5, 60.0)])
    for _ in range(5):
        assert await limiter.acquire() == 0.0
    assert await limiter.acquire() == pytest.approx(60.0)
    with pytest.raises(ValueError):
        RateLimiter(clock, [(0, 1.0)])


def test_journal_ids_of_fired_exits_never_collide() -> None:
    from engine.execution.ids import triggered_order_id

    assert triggered_order_id("123456") == "GTT123456"  # Kite trigger ids fit as they are
    same_second = ["PG24060509142400005", "PG24060509142400006"]  # paper ids placed in one second
    upstox = ["GTT-C240604000000002+GTT-C240604000000003", "GTT-C240604000000004+GTT-C240604000000005"]
    ids = [triggered_order_id(exit_id) for exit_id in [*same_second, *upstox]]
    assert len(set(ids)) == 4
    assert all(len(i) <= 20 and i.isalnum() and i.startswith("GTT") for i in ids)
    assert triggered_order_id(upstox[0]) == triggered_order_id(upstox[0])
