"""Client-side rate limit on the injected clock (Kite: 10 orders/s and 400/min)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from engine.brokers.base import BrokerCapabilities
from engine.clock import Clock


class RateLimiter:
    """Sliding windows: at most `count` acquisitions in any `seconds` of clock time, for each
    (count, seconds) pair. `acquire` sleeps on the clock until a slot is free."""

    def __init__(self, clock: Clock, limits: Sequence[tuple[int, float]]) -> None:
        if not limits or any(count < 1 or seconds <= 0 for count, seconds in limits):
            raise ValueError(f"rate limits must be (count >= 1, seconds > 0) pairs, got {list(limits)}")
        self._clock = clock
        self._limits = sorted(limits, key=lambda limit: limit[1])
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()

    @classmethod
    def for_capabilities(cls, clock: Clock, capabilities: BrokerCapabilities) -> RateLimiter:
        per_second = max(1, int(capabilities.orders_per_second))
        return cls(clock, [(per_second, 1.0), (capabilities.orders_per_minute, 60.0)])

    def _wait_needed(self, now: float) -> float:
        longest = self._limits[-1][1]
        while self._stamps and self._stamps[0] <= now - longest:
            self._stamps.popleft()
        wait = 0.0
        for count, seconds in self._limits:
            in_window = [stamp for stamp in self._stamps if stamp > now - seconds]
            if len(in_window) >= count:
                wait = max(wait, in_window[-count] + seconds - now)
        return wait

    async def acquire(self) -> float:
        """Take a slot; return the clock seconds waited for it."""
        waited = 0.0
        async with self._lock:
            while True:
                now = self._clock.now().timestamp()
                wait = self._wait_needed(now)
                if wait <= 0:
                    self._stamps.append(now)
                    return waited
                await self._clock.sleep(wait)
                waited += wait
