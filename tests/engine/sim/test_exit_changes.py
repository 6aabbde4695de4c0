"""`SimulatedExchange.exit_changes` moves with every change of a GTT or of the order its fired leg
placed, and with nothing else: the engine's GTT sync asks a simulated venue only when it moved."""

from __future__ import annotations

from datetime import datetime

from engine.clock import SteppedClock
from engine.models import IST, Instrument, OrderType, Side
from engine.sim import GttLeg, SimulatedExchange, TriggerDirection

A = "NSE_EQ|A"


def _exit_legs(stop: float, target: float) -> list[GttLeg]:
    return [GttLeg("stop", TriggerDirection.BELOW, stop, Side.SELL, stop - 0.5),
            GttLeg("target", TriggerDirection.ABOVE, target, Side.SELL, target - 0.5)]


def test_exit_changes_counts_gtt_changes_but_not_prices_or_other_orders() -> None:
    clock = SteppedClock(datetime(2024, 6, 4, 10, 0, tzinfo=IST))
    exchange = SimulatedExchange(clock, instruments=[Instrument(A, "A", "")])
    exchange.on_price(A, 100.0)
    exchange.place_order(A, Side.BUY, 10, OrderType.MARKET, "CNC")  # an entry: filled, no exit involved
    assert exchange.exit_changes == 0

    gtt = exchange.place_gtt(A, 10, "CNC", _exit_legs(95.0, 110.0))
    placed = exchange.exit_changes
    assert placed == 1
    for price in (99.0, 101.0, 105.0):  # between stop and target: nothing fires
        exchange.on_price(A, price)
    exchange.modify_gtt(gtt.gtt_id, legs={"stop": (96.0, 95.5)})
    assert exchange.exit_changes == placed + 1

    exchange.on_price(A, 95.9)  # the stop fires; its SELL LIMIT 95.5 fills at once
    fired = exchange.exit_changes
    assert fired > placed + 1 and not gtt.active
    exchange.on_price(A, 97.0)
    exchange.place_order(A, Side.BUY, 5, OrderType.MARKET, "CNC")
    assert exchange.exit_changes == fired


def test_a_gapped_legs_later_fill_is_a_change() -> None:
    clock = SteppedClock(datetime(2024, 6, 4, 10, 0, tzinfo=IST))
    exchange = SimulatedExchange(clock, instruments=[Instrument(A, "A", "")])
    exchange.on_price(A, 100.0)
    exchange.place_order(A, Side.BUY, 10, OrderType.MARKET, "CNC")
    exchange.place_gtt(A, 10, "CNC", _exit_legs(95.0, 110.0))
    exchange.on_price(A, 90.0)  # gaps through the stop's limit 94.5: the leg's order rests OPEN
    resting = exchange.exit_changes
    exchange.on_price(A, 91.0)
    assert exchange.exit_changes == resting
    exchange.on_price(A, 94.6)  # the leg's LIMIT fills
    assert exchange.exit_changes > resting
