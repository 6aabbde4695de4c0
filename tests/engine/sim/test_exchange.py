"""The simulated exchange on its own: order types, fill model, GTTs, holdings, rejections, the
per-instrument index, determinism and persistence."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import pytest

from engine.clock import SteppedClock
from engine.models import IST, Instrument, OrderStatus, OrderType, Side, Tick
from engine.sim import (
    FillModel,
    GttLeg,
    LegState,
    MatchingCore,
    RejectCode,
    SimulatedExchange,
    SimulatorError,
    TriggerDirection,
    TurnoverFees,
    VenueRules,
)

A, B = "NSE_EQ|A", "NSE_EQ|B"


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(datetime(2024, 6, 4, 10, 0, tzinfo=IST))


def _exchange(clock: SteppedClock, **kwargs: object) -> SimulatedExchange:
    return SimulatedExchange(clock, instruments=[Instrument(A, "A", ""), Instrument(B, "B", "")], **kwargs)  # type: ignore[arg-type]


def test_market_order_fills_on_arrival_at_the_last_price(clock: SteppedClock) -> None:
    exchange = _exchange(clock)
    exchange.on_price(A, 100.0)
    order = exchange.place_order(A, Side.BUY, 10, OrderType.MARKET, "CNC")
    assert (order.status, order.filled_quantity, order.average_price) == (OrderStatus.FILLED, 10, 100.0)
    assert [(f.quantity, f.price) for f in exchange.fills] == [(10, 100.0)]


def test_with_fills_at_next_tick_an_order_waits_and_pays_slippage_against_it(clock: SteppedClock) -> None:
    exchange = _exchange(clock, fill_model=FillModel(slippage_bps=10, fills_at_next_tick=True))
    exchange.on_price(A, 100.0)
    buy = exchange.place_order(A, Side.BUY, 10, OrderType.MARKET, "CNC")
    assert buy.status is OrderStatus.OPEN  # never at the price that made us decide
    exchange.on_price(A, 101.0)
    assert (buy.status, buy.average_price) == (OrderStatus.FILLED, 101.15)  # 101.101 rounded up to the grid
    sell = exchange.place_order(A, Side.SELL, 10, OrderType.MARKET, "CNC")
    exchange.on_price(A, 101.0)
    assert sell.average_price == 100.85  # 100.899 rounded down


def test_partial_fills_take_a_fraction_per_price_in_whole_lots(clock: SteppedClock) -> None:
    exchange = _exchange(clock, fill_model=FillModel(partial_fill_ratio=0.4))
    order = exchange.place_order(A, Side.BUY, 10, OrderType.MARKET, "CNC")
    seen = []
    for price in (100.0, 102.0, 104.0):
        exchange.on_price(A, price)
        seen.append((order.status, order.filled_quantity))
    assert seen == [(OrderStatus.PARTIALLY_FILLED, 4), (OrderStatus.PARTIALLY_FILLED, 8), (OrderStatus.FILLED, 10)]
    assert order.average_price == pytest.approx((4 * 100 + 4 * 102 + 2 * 104) / 10)


def test_limit_order_waits_for_its_price_and_fills_at_the_limit_or_better(clock: SteppedClock) -> None:
    exchange = _exchange(clock, fill_model=FillModel(slippage_bps=50))
    exchange.on_price(A, 100.0)
    buy = exchange.place_order(A, Side.BUY, 10, OrderType.LIMIT, "CNC", price=99.0)
    assert buy.status is OrderStatus.OPEN
    exchange.on_price(A, 98.9)
    assert buy.average_price == 99.0  # 98.9 + 50 bps is 99.4: capped at the limit
    exchange.on_price(A, 90.0)
    sell = exchange.place_order(A, Side.SELL, 10, OrderType.LIMIT, "CNC", price=95.0)
    assert sell.status is OrderStatus.OPEN
    exchange.on_price(A, 96.0)
    assert sell.average_price == 95.5  # 96 - 50 bps = 95.52, rounded down to the grid


def test_sl_order_remembers_its_trigger_when_the_price_comes_back(clock: SteppedClock) -> None:
    exchange = _exchange(clock)
    exchange.on_price(A, 100.0)
    order = exchange.place_order(A, Side.BUY, 10, OrderType.SL, "MIS", price=106.0, trigger_price=105.0)
    assert order.trigger_pending
    exchange.on_price(A, 107.0)  # triggered, but above its limit
    assert order.triggered and order.status is OrderStatus.OPEN
    exchange.on_price(A, 104.0)  # back below the trigger: the triggered LIMIT fills
    assert (order.status, order.average_price) == (OrderStatus.FILLED, 104.0)


def test_sl_m_sell_fills_at_market_once_the_price_is_at_or_below_its_trigger(clock: SteppedClock) -> None:
    exchange = _exchange(clock)
    exchange.set_holding(A, "CNC", 10, 100.0)
    exchange.on_price(A, 100.0)
    order = exchange.place_order(A, Side.SELL, 10, OrderType.SL_M, "CNC", trigger_price=95.0)
    exchange.on_price(A, 95.5)
    assert order.status is OrderStatus.OPEN
    exchange.on_price(A, 94.0)
    assert (order.status, order.average_price) == (OrderStatus.FILLED, 94.0)


def test_market_protection_bounds_the_fill_and_can_be_required(clock: SteppedClock) -> None:
    exchange = _exchange(clock, fill_model=FillModel(fills_at_next_tick=True))
    exchange.on_price(A, 100.0)
    protected = exchange.place_order(A, Side.BUY, 10, OrderType.MARKET, "MIS", market_protection=1.0)
    exchange.on_price(A, 102.0)  # beyond last + 1%
    assert protected.status is OrderStatus.OPEN and protected.protection_bound == 101.0
    exchange.on_price(A, 100.5)
    assert (protected.status, protected.average_price) == (OrderStatus.FILLED, 100.5)
    unprotected = exchange.place_order(A, Side.BUY, 10, OrderType.MARKET, "MIS")
    assert unprotected.status is OrderStatus.OPEN  # the rule is off by default

    strict = _exchange(clock, rules=VenueRules(require_market_protection=True, market_protection_message="needs MP"))
    refused = strict.place_order(A, Side.BUY, 10, OrderType.SL_M, "MIS", trigger_price=101.0)
    assert (refused.status, refused.reject_code, refused.reason) == (
        OrderStatus.REJECTED, RejectCode.MARKET_PROTECTION, "needs MP")


def _exit_legs() -> list[GttLeg]:
    return [GttLeg("stop", TriggerDirection.BELOW, 95.0, Side.SELL, 94.5),
            GttLeg("target", TriggerDirection.ABOVE, 110.0, Side.SELL, 109.45)]


def test_gtt_leg_that_gapped_below_its_limit_stays_open_until_the_price_allows(clock: SteppedClock) -> None:
    exchange = _exchange(clock)
    exchange.set_holding(A, "CNC", 10, 100.0)
    exchange.on_price(A, 100.0)
    gtt = exchange.place_gtt(A, 10, "CNC", _exit_legs())
    exchange.on_price(A, 93.0)  # gaps through the stop trigger and its limit
    stop, target = gtt.legs
    assert (stop.state, target.state) == (LegState.TRIGGERED, LegState.CANCELLED)
    leg_order = exchange.orders[stop.order_id or ""]
    assert (leg_order.order_type, leg_order.price, leg_order.status) == (OrderType.LIMIT, 94.5, OrderStatus.OPEN)
    exchange.on_price(A, 94.6)
    assert (leg_order.status, leg_order.average_price, stop.state) == (OrderStatus.FILLED, 94.6, LegState.COMPLETED)
    assert exchange.held(A, "CNC") == 0


def test_a_gtt_leg_fills_in_part_then_rests_and_a_chase_cancels_the_rest(clock: SteppedClock) -> None:
    exchange = _exchange(clock, fill_model=FillModel(partial_fill_ratio=0.5))
    exchange.set_holding(A, "CNC", 10, 100.0)
    exchange.on_price(A, 100.0)
    gtt = exchange.place_gtt(A, 10, "CNC", _exit_legs())
    exchange.on_price(A, 94.9)  # fires the stop: its LIMIT 94.5 fills half at once
    stop = gtt.legs[0]
    leg_order = exchange.orders[stop.order_id or ""]
    assert (leg_order.status, leg_order.filled_quantity, stop.state) == (
        OrderStatus.PARTIALLY_FILLED, 5, LegState.TRIGGERED)
    exchange.on_price(A, 90.0)  # gaps below the limit: the other half rests
    assert (leg_order.filled_quantity, exchange.held(A, "CNC")) == (5, 5)
    exchange.cancel_order(leg_order.order_id)  # chased
    exchange.on_price(A, 90.0)
    assert (leg_order.status, leg_order.filled_quantity, stop.state) == (OrderStatus.CANCELLED, 5, LegState.FAILED)
    assert exchange.held(A, "CNC") == 5  # what it did not sell is still held


def test_fired_gtt_legs_are_not_requests_and_never_hit_the_rate_limit(clock: SteppedClock) -> None:
    exchange = _exchange(clock, rules=VenueRules(orders_per_second=1))
    exchange.set_holding(A, "CNC", 10, 100.0)
    exchange.on_price(A, 100.0)
    gtt = exchange.place_gtt(A, 10, "CNC", _exit_legs())
    assert exchange.place_order(B, Side.BUY, 1, OrderType.LIMIT, "CNC", price=1.0).reject_code is None
    exchange.on_price(A, 94.9)  # in the same second as the request: the leg is placed all the same
    assert exchange.orders[gtt.legs[0].order_id or ""].status is OrderStatus.FILLED
    refused = exchange.place_order(B, Side.BUY, 1, OrderType.LIMIT, "CNC", price=1.0)
    assert refused.reject_code is RejectCode.RATE_LIMIT
    exchange.withdraw(refused.order_id)  # a venue that answers 429 books nothing
    assert refused.order_id not in exchange.orders
    with pytest.raises(SimulatorError, match="only a refusal is withdrawn"):
        exchange.withdraw(gtt.legs[0].order_id or "")


def test_gtt_entry_leg_arms_its_exits_once_filled(clock: SteppedClock) -> None:
    exchange = _exchange(clock)
    exchange.on_price(A, 8.0)
    legs = [GttLeg("ENTRY", TriggerDirection.BELOW, 7.5, Side.BUY),
            GttLeg("TARGET", TriggerDirection.ABOVE, 8.5, Side.SELL),
            GttLeg("STOPLOSS", TriggerDirection.BELOW, 7.0, Side.SELL)]
    gtt = exchange.place_gtt(A, 100, "MIS", legs, has_entry=True)
    exchange.on_price(A, 8.6)
    assert [leg.state for leg in gtt.legs] == [LegState.SCHEDULED, LegState.PENDING, LegState.PENDING]
    exchange.on_price(A, 7.4)
    assert [leg.state for leg in gtt.legs] == [LegState.COMPLETED, LegState.SCHEDULED, LegState.SCHEDULED]
    exchange.on_price(A, 8.55)
    assert [leg.state for leg in gtt.legs] == [LegState.COMPLETED, LegState.COMPLETED, LegState.CANCELLED]


def test_delivery_sell_beyond_the_holding_is_rejected_as_a_status_never_raised(clock: SteppedClock) -> None:
    exchange = _exchange(clock, rules=VenueRules(insufficient_holdings_message="No holdings:"))
    exchange.on_price(A, 100.0)
    refused = exchange.place_order(A, Side.SELL, 10, OrderType.MARKET, "CNC")
    assert (refused.status, refused.reject_code) == (OrderStatus.REJECTED, RejectCode.INSUFFICIENT_HOLDINGS)
    assert refused.reason == "No holdings: 0 available to sell, 10 ordered"
    exchange.set_holding(A, "CNC", 6, 90.0)
    working = exchange.place_order(A, Side.SELL, 4, OrderType.LIMIT, "CNC", price=120.0)
    assert working.status is OrderStatus.OPEN
    assert exchange.place_order(A, Side.SELL, 4, OrderType.MARKET, "CNC").status is OrderStatus.REJECTED  # 2 left
    assert exchange.place_order(A, Side.SELL, 4, OrderType.MARKET, "MIS").status is OrderStatus.FILLED  # intraday
    assert exchange.place_order(A, Side.BUY, 3, OrderType.MARKET, "CNC").reject_code is None
    lot = SimulatedExchange(clock, instruments=[Instrument(B, "B", "", lot_size=5)])
    assert lot.place_order(B, Side.BUY, 7, OrderType.MARKET, "CNC").reject_code is RejectCode.LOT_SIZE


class CountingCore(MatchingCore):
    """A matching core that counts how often it is asked to match an order."""

    matched = 0

    def fill_price(self, order, price):  # type: ignore[no-untyped-def]
        CountingCore.matched += 1
        return super().fill_price(order, price)


def test_a_tick_only_touches_its_own_instruments_book(clock: SteppedClock) -> None:
    exchange = _exchange(clock)
    exchange.cores[B] = CountingCore(exchange.instrument(B), exchange.fill_model, exchange.rng)
    exchange.on_price(B, 50.0)
    resting = exchange.place_order(B, Side.BUY, 10, OrderType.LIMIT, "CNC", price=40.0)
    CountingCore.matched = 0
    for price in (100.0, 101.0, 102.0):
        exchange.on_price(A, price)
    assert CountingCore.matched == 0
    assert list(exchange.cores[A].working) == [] and list(exchange.cores[B].working) == [resting.order_id]
    exchange.on_price(B, 49.0)
    assert CountingCore.matched == 1


def _random_run(clock: SteppedClock, seed: int) -> list[float]:
    exchange = _exchange(clock, fill_model=FillModel(random_slippage_bps=20, seed=seed), fee_model=TurnoverFees(3))
    exchange.on_price(A, 100.0)
    for _ in range(5):
        exchange.place_order(A, Side.BUY, 10, OrderType.MARKET, "MIS")
    return [f.price for f in exchange.fills] + [f.fee for f in exchange.fills]


def test_fills_are_deterministic_for_a_seed(clock: SteppedClock) -> None:
    assert _random_run(clock, seed=7) == _random_run(clock, seed=7)
    assert _random_run(clock, seed=7) != _random_run(clock, seed=8)


def test_the_order_rate_limit_rejects_beyond_its_orders_per_second(clock: SteppedClock) -> None:
    exchange = _exchange(clock, rules=VenueRules(orders_per_second=2))
    statuses = [exchange.place_order(A, Side.BUY, 1, OrderType.MARKET, "MIS").reject_code for _ in range(3)]
    assert statuses == [None, None, RejectCode.RATE_LIMIT]
    clock.advance(1)
    assert exchange.place_order(A, Side.BUY, 1, OrderType.MARKET, "MIS").reject_code is None
    assert _exchange(clock).rate_limit.orders_per_second is None  # unlimited by default


def test_daily_books_move_positions_to_holdings_and_the_snapshot_restores(clock: SteppedClock) -> None:
    exchange = _exchange(clock, rules=VenueRules(daily_books=True))
    exchange.on_price(A, 100.0)
    exchange.place_order(A, Side.BUY, 10, OrderType.MARKET, "CNC")
    exchange.place_order(A, Side.BUY, 10, OrderType.LIMIT, "CNC", price=90.0)  # expires overnight
    gtt = exchange.place_gtt(A, 10, "CNC", _exit_legs())
    restored = _exchange(clock, rules=VenueRules(daily_books=True))
    restored.restore(json.loads(json.dumps(exchange.snapshot())))
    assert restored.snapshot() == exchange.snapshot()
    clock.set(datetime(2024, 6, 5, 9, 15, tzinfo=IST))
    restored.on_price(A, 94.8)  # a new day: the book rolls, then the stop fires on the holding
    assert [(k, p, h.quantity, h.average_price) for (k, p), h in restored.holdings.items()] == [(A, "CNC", 10, 100.0)]
    assert [o.gtt_id for o in restored.orders.values()] == [gtt.gtt_id]
    assert restored.gtts[gtt.gtt_id].legs[0].state is LegState.COMPLETED
    assert restored.held(A, "CNC") == 0



def test_a_tick_feed_fills_and_fires_as_on_tick_does_checking_the_day_once(clock: SteppedClock) -> None:
    """A batch's feed: the same fills and GTT legs as `on_tick` per tick, with the day checked once
    per batch (at `tick_feed`) instead of on every tick."""
    results = []
    for batched in (False, True):
        exchange = _exchange(clock, fill_model=FillModel(slippage_bps=10, fills_at_next_tick=True))
        exchange.on_price(A, 100.0)
        exchange.place_order(A, Side.BUY, 10, OrderType.MARKET, "CNC")
        gtt = exchange.place_gtt(A, 10, "CNC", _exit_legs())
        day_checks = 0
        roll_day = exchange.roll_day

        def counted_roll_day(roll_day: Callable[[], None] = roll_day) -> None:
            nonlocal day_checks
            day_checks += 1
            roll_day()

        exchange.roll_day = counted_roll_day  # type: ignore[method-assign]
        ticks = [Tick(A, price, 0) for price in (100.5, 96.0, 94.8)] + [Tick(B, 50.0, 0)]
        feed = exchange.tick_feed() if batched else exchange.on_tick
        for tick in ticks:
            feed(tick)
        results.append((exchange.snapshot(), gtt.legs[0].state, day_checks))
    (per_tick, per_tick_stop, per_tick_checks), (batch, batch_stop, batch_checks) = results
    assert batch == per_tick and batch_stop is per_tick_stop is LegState.COMPLETED
    assert batch["prices"] == {A: 94.8, B: 50.0} and [f["price"] for f in batch["fills"]] == [100.65, 94.7]
    assert (per_tick_checks, batch_checks) == (5, 2)  # one per tick, or one per batch; and the fired leg's order


def test_a_price_traded_before_an_order_never_fills_it(clock: SteppedClock) -> None:
    """A backfilled minute can arrive after an order sent meanwhile: its prices are older than the order."""
    exchange = _exchange(clock)
    exchange.on_price(A, 100.0)
    placed = clock.now()
    order = exchange.place_order(A, Side.BUY, 10, OrderType.LIMIT, "CNC", price=99.0)
    gtt = exchange.place_gtt(A, 10, "CNC", _exit_legs())
    before_ms = int(placed.timestamp() * 1000) - 60_000
    exchange.on_tick(Tick(A, 94.0, before_ms))  # below the limit and the stop, but a minute before them
    assert order.status is OrderStatus.OPEN and gtt.legs[0].state is LegState.SCHEDULED
    exchange.on_tick(Tick(A, 94.0, before_ms + 120_000))  # the same price after them: the order fills, the stop fires
    assert order.status is OrderStatus.FILLED and gtt.legs[0].state is not LegState.SCHEDULED
