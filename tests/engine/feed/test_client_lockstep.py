"""MarketDataClient against the replay server in LOCKSTEP with faults (`FaultPlan.chaos`): faults fire at replay-clock
times, the watchdog and the backoff run on the replay clock, and recovery (reconnect, resubscribe, backfill) hands
the consumer the same prices in the same order as a clean run. Two runs of one seed are identical, to the tick."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from datetime import datetime, time
from pathlib import Path

import pytest

from engine.clock import Lockstep, VirtualClock
from engine.feed.client import MarketDataClient
from engine.feed.replay import CHAOS_KINDS, FaultPlan, ReplayServer
from engine.models import IST, Tick
from tests.engine.feed.conftest import REPLAY_DAY, REPLAY_KEYS, REPLAY_TOKEN

START = datetime.combine(REPLAY_DAY, time(9, 13), IST)
END = datetime.combine(REPLAY_DAY, time(11, 0), IST)
WATCHDOG_SECONDS = 120.0  # derived ticks come every ~43 s per key


class Run:
    """What one lockstep run handed to the consumer, with the client's and the server's counts."""

    def __init__(self) -> None:
        self.ticks: dict[str, list[Tick]] = defaultdict(list)
        self.client: MarketDataClient | None = None
        self.server: ReplayServer | None = None

    async def on_ticks(self, ticks: list[Tick]) -> None:
        for tick in ticks:
            self.ticks[tick.instrument_key].append(tick)

    def prices(self) -> dict[str, list[float]]:
        """Each key's prices of the day in delivery order (a price repeated by the next tick counted once)."""
        result = {}
        for key, ticks in self.ticks.items():
            prices: list[float] = []
            for tick in ticks:
                if tick.time.date() == REPLAY_DAY and (not prices or prices[-1] != tick.ltp):
                    prices.append(tick.ltp)
            result[key] = prices
        return result


async def lockstep_run(data_dir: Path, faults: FaultPlan | None) -> Run:
    lockstep = Lockstep(VirtualClock(START))
    run = Run()
    server = ReplayServer(data_dir=data_dir, day=REPLAY_DAY, token=REPLAY_TOKEN, lockstep=lockstep, faults=faults)
    await server.start()
    client = MarketDataClient(
        api_url=server.api_url, token_provider=lambda: REPLAY_TOKEN, clock=lockstep.clock, on_ticks=run.on_ticks,
        on_raw_frame=lockstep.frame_received, watchdog_seconds=WATCHDOG_SECONDS, backoff_seed=1,
    )
    try:
        await client.subscribe(REPLAY_KEYS, "full")
        await asyncio.wait_for(client.run(until=END), timeout=60)
    finally:
        await server.stop()
    run.client, run.server = client, server
    assert lockstep.stalls == 0  # time never waited on a real-time timeout
    return run


@pytest.mark.parametrize("seed", [3, 11])
async def test_a_chaos_morning_hands_on_the_same_prices_as_a_clean_one(replay_data_dir: Path, seed: int) -> None:
    clean = await lockstep_run(replay_data_dir, None)
    plan = FaultPlan.chaos(30, seed=seed)  # about 8 of them before 11:00, every kind
    chaos = await lockstep_run(replay_data_dir, plan)
    assert chaos.client is not None and chaos.server is not None
    fired = [when for when, _ in chaos.server.fired if when <= END]
    assert fired and all(when.second or when.microsecond for when in fired)  # seeded moments, not whole minutes
    assert sum(chaos.server.injected.values()) >= 1
    stats = chaos.client.stats
    assert stats.reconnects >= 1 and stats.backfill_failures == 0
    assert chaos.prices() == clean.prices()  # the same prices in the same order: nothing missed, nothing twice
    for key, ticks in chaos.ticks.items():  # and never an older or repeated tick
        assert all(a.ltt_ms < b.ltt_ms for a, b in itertools.pairwise(ticks)), key
    figures = stats.recovery_figures()
    assert set(figures) <= set(CHAOS_KINDS) and figures
    for kind, figure in figures.items():
        assert figure["count"] >= 1 and figure["session_seconds_max"] >= 0, kind
    if "stall" in figures:  # a stall is seen once the watchdog gives up: longer than it, with minutes backfilled
        assert figures["stall"]["session_seconds_max"] >= WATCHDOG_SECONDS
        assert figures["stall"]["minutes_backfilled"] >= 1
    again = await lockstep_run(replay_data_dir, plan)
    assert again.ticks == chaos.ticks  # deterministic: one seed, one day, the same ticks to the millisecond


def test_chaos_plans_share_the_faults_between_the_kinds() -> None:
    plan = FaultPlan.chaos(12, seed=5)
    kinds = [kind for _, kind in plan.schedule(REPLAY_DAY)]
    assert {kind: kinds.count(kind) for kind in CHAOS_KINDS} == {
        "drop": 3, "stall": 3, "malformed": 2, "duplicate": 2, "out_of_order": 2,
    }
    assert plan.schedule(REPLAY_DAY) == FaultPlan.chaos(12, seed=5).schedule(REPLAY_DAY)
    assert plan.schedule(REPLAY_DAY) != FaultPlan.chaos(12, seed=6).schedule(REPLAY_DAY)
