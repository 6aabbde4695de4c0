"""Clocks. Everything in the engine that reads the time takes a `Clock`; nothing calls
`datetime.now()` directly, so replayed days can run faster than real time and tests are
deterministic."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta
from typing import Any

from engine.models import IST

_log = logging.getLogger(__name__)


def wall_seconds() -> float:
    """Monotonic wall-clock seconds, for measuring how long something took in real time (never a time of day)."""
    return time.monotonic()


class Clock(ABC):
    """Tells the time (tz-aware, Asia/Kolkata) and sleeps in its own time."""

    @abstractmethod
    def now(self) -> datetime: ...

    @abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of this clock's time."""

    def now_ms(self) -> int:
        return int(self.now().timestamp() * 1000)

    def today(self) -> date:
        return self.now().date()

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            await self.sleep(delay)

    def hold(self) -> AbstractContextManager[None]:
        """Work that must finish before time moves on (a reconnect, a backfill): only a driven clock
        (`VirtualClock`) waits for it; any other clock runs on regardless."""
        return contextlib.nullcontext()

    async def sleep_until_or(self, when: datetime, event: asyncio.Event) -> None:
        """Sleep until `when` on this clock, or until `event` is set, whichever comes first."""
        sleeper = asyncio.ensure_future(self.sleep_until(when))
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()


class LiveClock(Clock):
    """Wall-clock time in Asia/Kolkata."""

    def now(self) -> datetime:
        return datetime.now(IST)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SimulatedClock(Clock):
    """Starts at `start` and runs `speed` times faster than the wall clock."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs a tz-aware start time")
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self._start = start.astimezone(IST)
        self._speed = speed
        self._wall_start = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._wall_start) * self._speed
        return self._start + timedelta(seconds=elapsed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._speed)


class SteppedClock(Clock):
    """Moves only when told to (`set`/`advance`) or when something sleeps on it: stepped by
    events, as in a backtest or a unit test. `sleep` advances the clock without waiting."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SteppedClock needs a tz-aware start time")
        self._now = start.astimezone(IST)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("SteppedClock.set needs a tz-aware time")
        when = when.astimezone(IST)
        if when < self._now:
            raise ValueError(f"clock cannot go back from {self._now} to {when}")
        self._now = when

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


class VirtualClock(Clock):
    """Time that moves only when a driver moves it (`advance_to`): a replayed day in lockstep.

    `sleep`/`sleep_until` wait (asyncio) until the driver has moved time to or past the deadline;
    sleepers wake in deadline order (ties in the order they went to sleep). Work that must finish
    before time moves on (a callback processing ticks, the entry window) runs inside `hold()`:
    the driver waits until every holder is done or itself asleep on this clock (`busy`)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs a tz-aware start time")
        self._now = start.astimezone(IST)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._sequence = 0
        self._holds: dict[asyncio.Task[Any] | None, int] = {}
        self._sleeping: dict[asyncio.Task[Any] | None, int] = {}
        self._changed: asyncio.Event | None = None

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        deadline = self._now + timedelta(seconds=seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sequence += 1
        heapq.heappush(self._sleepers, (deadline, self._sequence, future))
        task = asyncio.current_task()
        self._sleeping[task] = self._sleeping.get(task, 0) + 1
        self.notify()  # a holder going to sleep lets the driver move on
        try:
            await future
        finally:
            _decrement(self._sleeping, task)
            if not future.done():
                future.cancel()  # cancelled while asleep: the heap entry is skipped when reached

    async def sleep_until(self, when: datetime) -> None:
        await self.sleep((when - self._now).total_seconds())

    def next_deadline(self) -> datetime | None:
        """The earliest deadline of a sleeper still waiting (None: nobody sleeps)."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def advance_to(self, when: datetime) -> int:
        """Move time to `when` (never back) and wake every sleeper due by then, earliest first.
        Returns how many woke. To give each sleeper its own deadline as `now`, step through
        `next_deadline()` (as `Lockstep.advance_to` does)."""
        if when.tzinfo is None:
            raise ValueError("VirtualClock.advance_to needs a tz-aware time")
        when = when.astimezone(IST)
        if when > self._now:
            self._now = when
        woken = 0
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
                woken += 1
        return woken

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Mark the current task busy: a driver does not move time while it runs (unless it sleeps here)."""
        task = asyncio.current_task()
        self._holds[task] = self._holds.get(task, 0) + 1
        try:
            yield
        finally:
            _decrement(self._holds, task)
            self.notify()

    @property
    def busy(self) -> bool:
        """A holder is running (not asleep on this clock)."""
        return any(task not in self._sleeping for task in self._holds)

    @property
    def holders_asleep(self) -> bool:
        return any(task in self._sleeping for task in self._holds)

    def notify(self) -> None:
        """Wake `wait_changed()` (something a driver looks at changed)."""
        if self._changed is not None:
            self._changed.set()

    async def wait_changed(self, timeout: float) -> bool:
        """Wait (real time, at most `timeout` s) until `notify()`; False on timeout."""
        if self._changed is None:
            self._changed = asyncio.Event()
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True


def _decrement(counts: dict[Any, int], key: Any) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


class Lockstep:
    """IN-PROCESS LOCKSTEP ONLY: couples a replay server (the driver) with the consumer of its frames
    in the same event loop, so a replayed day is deterministic and runs as fast as the CPU allows.

    The driver calls `frame_sent()` for every frame it sends and `advance_to(t)` before sending the
    frames of time t. The consumer calls `frame_received()` for every frame it reads (the feed
    client's `on_raw_frame`) and processes each frame inside `clock.hold()`. `advance_to` first
    `settle()`s (every frame sent has been read and processed, no holder is running, the event loop
    has nothing ready), then steps the clock through each sleeper due by t, settling after each, so
    a task sleeping until 15:10 runs to completion at exactly 15:10 before time moves on.

    Never hangs: a settle that sees no progress for `stall_seconds` of real time (a holder blocked on
    something that itself waits for time) logs a warning, counts it in `stalls` and lets time move."""

    def __init__(self, clock: VirtualClock, *, stall_seconds: float = 5.0) -> None:
        self.clock = clock
        self.stall_seconds = stall_seconds
        self.sent = 0
        self.received = 0
        self.stalls = 0
        self._lock: asyncio.Lock | None = None

    def frame_sent(self) -> None:
        self.sent += 1

    def forget_unread(self) -> None:
        """The consumer's connection is gone: frames sent and not read will never be."""
        self.sent = min(self.sent, self.received)

    async def frame_received(self, *_frame: Any) -> None:
        """Count a frame read by the consumer (signature of `MarketDataClient.on_raw_frame`)."""
        self.received += 1
        self.clock.notify()

    def settled(self) -> bool:
        clock = self.clock
        return not clock.busy and (self.received >= self.sent or clock.holders_asleep)

    async def settle(self) -> None:
        """Wait until the consumer has processed everything sent and nothing runnable is left."""
        while True:
            await _loop_quiet()
            if self.settled():
                return
            if not await self.clock.wait_changed(self.stall_seconds) and not self.settled():
                self.stalls += 1
                _log.warning("lockstep: no progress for %.1f s at %s (sent %d, received %d, busy %s); moving on",
                             self.stall_seconds, self.clock.now(), self.sent, self.received, self.clock.busy)
                return

    async def advance_to(self, when: datetime) -> None:
        """Settle, then move the clock to `when`, waking (and settling) each sleeper due by then in order."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self.settle()
            while (deadline := self.clock.next_deadline()) is not None and deadline <= when:
                self.clock.advance_to(deadline)
                await self.settle()
            self.clock.advance_to(when)


QUIET_ROUNDS = 64


async def _loop_quiet() -> None:
    """Yield until the event loop has no other callback ready (tasks woken by the clock have run up
    to their next wait). Reads the loop's ready queue (CPython's asyncio); without one, yields a while."""
    loop = asyncio.get_running_loop()
    for _ in range(QUIET_ROUNDS):
        await asyncio.sleep(0)
        ready = getattr(loop, "_ready", None)
        if ready is not None and not ready:
            return


class ReplayClock(Clock):
    """Simulated time at `speed`× that holds still at `start` until `run()`: opening the session
    (broker, reconciliation, indicators) costs no replayed time, so no minute of the day is skipped."""

    def __init__(self, start: datetime, speed: float) -> None:
        if start.tzinfo is None or speed <= 0:
            raise ValueError(f"ReplayClock needs a tz-aware start and speed > 0, got {start!r}, {speed}")
        self.start = start
        self.speed = speed
        self._wall_start: float | None = None

    def run(self) -> None:
        if self._wall_start is None:
            self._wall_start = time.monotonic()

    def now(self) -> datetime:
        if self._wall_start is None:
            return self.start
        return self.start + timedelta(seconds=(time.monotonic() - self._wall_start) * self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)
