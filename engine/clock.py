"""Clocks. Everything in the engine that reads the time takes a `Clock`; nothing calls
`datetime.now()` directly, so replayed days can run faster than real time and tests are
deterministic."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from datetime import date, datetime, timedelta

from engine.models import IST


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
