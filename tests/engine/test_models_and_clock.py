from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from engine.clock import SimulatedClock, SteppedClock
from engine.models import IST, Instrument, OrderStatus, Side

RELIANCE = Instrument("NSE_EQ|INE002A01018", "RELIANCE", "INE002A01018", tick_size=0.05, lot_size=1)


@pytest.mark.parametrize(
    ("price", "direction", "expected"),
    [(2971.73, "nearest", 2971.75), (2971.73, "down", 2971.70), (2971.71, "up", 2971.75), (2971.70, "up", 2971.70)],
)
def test_round_price_snaps_to_tick_grid(price: float, direction: str, expected: float) -> None:
    assert RELIANCE.round_price(price, direction) == expected
    assert RELIANCE.on_tick_grid(expected)


def test_whole_lots_rounds_down_and_never_negative() -> None:
    lot25 = Instrument("NSE_EQ|X", "X", "X", lot_size=25)
    assert lot25.whole_lots(74.9) == 50
    assert lot25.whole_lots(24) == 0
    assert lot25.whole_lots(-10) == 0


def test_enums_know_their_terminal_states() -> None:
    assert Side.BUY.opposite is Side.SELL
    assert OrderStatus.FILLED.is_terminal and not OrderStatus.OPEN.is_terminal


def test_stepped_clock_moves_only_forward() -> None:
    clock = SteppedClock(datetime(2024, 6, 4, 9, 15, tzinfo=IST))
    asyncio.run(clock.sleep(60))
    assert clock.now() == datetime(2024, 6, 4, 9, 16, tzinfo=IST)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(datetime(2024, 6, 4, 9, 0, tzinfo=IST))


def test_simulated_clock_runs_faster_than_wall_time() -> None:
    clock = SimulatedClock(datetime(2024, 6, 4, 9, 15, tzinfo=IST), speed=1000)
    before = clock.now()
    asyncio.run(clock.sleep(30))  # 30 simulated seconds = 30 ms of wall time
    elapsed = (clock.now() - before).total_seconds()
    assert 30 <= elapsed < 300
    with pytest.raises(ValueError):
        SimulatedClock(datetime(2024, 6, 4, 9, 15), speed=10)
