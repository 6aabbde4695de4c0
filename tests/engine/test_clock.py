"""VirtualClock (time moves only when driven) and Lockstep (the driver waits for the consumer)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from engine.clock import Lockstep, VirtualClock
from engine.models import IST

START = datetime(2024, 6, 4, 9, 13, tzinfo=IST)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


async def test_virtual_clock_stands_still_until_driven_and_wakes_sleepers_in_deadline_order() -> None:
    clock = VirtualClock(START)
    woke: list[tuple[str, datetime]] = []

    async def sleeper(name: str, minutes: float) -> None:
        await clock.sleep_until(at(minutes))
        woke.append((name, clock.now()))

    tasks = [asyncio.ensure_future(sleeper(name, m)) for name, m in (("late", 3), ("early", 1), ("tie", 1))]
    for _ in range(5):
        await asyncio.sleep(0)
    assert woke == [] and clock.now() == START  # no wall time moves it
    assert clock.next_deadline() == at(1)

    assert clock.advance_to(at(2)) == 2
    await asyncio.sleep(0)
    assert woke == [("early", at(2)), ("tie", at(2))]  # earliest first, ties in the order they slept
    assert clock.advance_to(at(1)) == 0 and clock.now() == at(2)  # never back
    clock.advance_to(at(3))
    await asyncio.gather(*tasks)
    assert woke[-1] == ("late", at(3)) and clock.next_deadline() is None


async def test_a_cancelled_sleeper_is_forgotten_and_zero_sleeps_do_not_wait() -> None:
    clock = VirtualClock(START)
    sleeping = asyncio.ensure_future(clock.sleep(60))
    await asyncio.sleep(0)
    sleeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeping
    assert clock.next_deadline() is None
    await asyncio.wait_for(clock.sleep(0), 1)
    await asyncio.wait_for(clock.sleep_until(START - timedelta(seconds=5)), 1)
    with pytest.raises(ValueError, match="tz-aware"):
        VirtualClock(datetime(2024, 6, 4, 9, 13))


async def test_holders_keep_the_clock_busy_unless_they_sleep_on_it() -> None:
    clock = VirtualClock(START)
    assert not clock.busy
    with clock.hold():
        assert clock.busy
        napping = asyncio.ensure_future(clock.sleep(1))  # another task: this one still holds
        await asyncio.sleep(0)
        assert clock.busy
        napping.cancel()
    assert not clock.busy

    async def hold_then_sleep() -> None:
        with clock.hold():
            await clock.sleep(30)

    task = asyncio.ensure_future(hold_then_sleep())
    await asyncio.sleep(0)
    assert not clock.busy and clock.holders_asleep  # asleep on the clock: time may move
    clock.advance_to(at(1))
    await task
    assert not clock.holders_asleep


async def test_lockstep_runs_each_sleeper_to_completion_at_its_own_time_before_moving_on() -> None:
    clock = VirtualClock(START)
    lockstep = Lockstep(clock)
    seen: list[tuple[str, datetime]] = []

    async def window() -> None:  # like the entry window: sleeps until 15:10, then works (with awaits)
        await clock.sleep_until(at(2))
        with clock.hold():
            for _ in range(3):
                await asyncio.sleep(0.01)  # real waiting (a broker thread, I/O): time must not move meanwhile
            seen.append(("window", clock.now()))

    task = asyncio.ensure_future(window())
    await asyncio.sleep(0)
    await lockstep.advance_to(at(5))
    assert seen == [("window", at(2))] and clock.now() == at(5)
    await task
    assert lockstep.stalls == 0


async def test_lockstep_waits_until_the_consumer_has_received_every_frame_sent() -> None:
    clock = VirtualClock(START)
    lockstep = Lockstep(clock)
    lockstep.frame_sent()
    lockstep.frame_sent()
    advancing = asyncio.ensure_future(lockstep.advance_to(at(1)))
    await asyncio.sleep(0.05)
    assert not advancing.done() and clock.now() == START
    await lockstep.frame_received()
    await asyncio.sleep(0.02)
    assert not advancing.done()
    with clock.hold():  # processing the last frame
        await lockstep.frame_received()
        await asyncio.sleep(0.05)
        assert not advancing.done()
    await asyncio.wait_for(advancing, 1)
    assert clock.now() == at(1)


async def test_a_stuck_consumer_cannot_hang_the_driver() -> None:
    clock = VirtualClock(START)
    lockstep = Lockstep(clock, stall_seconds=0.05)
    lockstep.frame_sent()  # never received
    await asyncio.wait_for(lockstep.advance_to(at(1)), 2)
    assert lockstep.stalls == 1 and clock.now() == at(1)
