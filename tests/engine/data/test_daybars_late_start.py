"""A session that connects late (or is retried) still gets the day's true open and low: the feed client's first
connect backfills the day from `backfill_from` (the open) through the intraday candle API of the replay server."""

from __future__ import annotations

import asyncio
from datetime import datetime, time
from pathlib import Path

import pytest

from engine.clock import Lockstep, VirtualClock
from engine.feed.client import MarketDataClient
from engine.feed.replay import ReplayServer
from engine.models import IST, Tick
from engine.storage.bars import BarStore
from tests.engine.feed.conftest import REPLAY_DAY, REPLAY_KEYS, REPLAY_SYMBOLS, REPLAY_TOKEN, write_replay_fixture

LATE = time(10, 30)
UNTIL = datetime.combine(REPLAY_DAY, time(10, 33), IST)
OPEN = datetime.combine(REPLAY_DAY, time(9, 15), IST)


async def _stream(data_dir: Path, backfill_from: datetime | None) -> dict[str, list[Tick]]:
    """The replayed day from LATE to UNTIL in lockstep (deterministic, as fast as the CPU allows)."""
    lockstep = Lockstep(VirtualClock(datetime.combine(REPLAY_DAY, LATE, IST)))
    server = ReplayServer(data_dir=data_dir, day=REPLAY_DAY, token=REPLAY_TOKEN, lockstep=lockstep)
    await server.start()
    ticks: dict[str, list[Tick]] = {key: [] for key in REPLAY_KEYS}

    async def collect(batch: list[Tick]) -> None:
        for tick in batch:
            ticks[tick.instrument_key].append(tick)

    try:
        client = MarketDataClient(api_url=server.api_url, token_provider=lambda: REPLAY_TOKEN, clock=lockstep.clock,
                                  on_ticks=collect, watchdog_seconds=300.0, backfill_from=backfill_from,
                                  on_raw_frame=lockstep.frame_received)
        await client.subscribe(REPLAY_KEYS, "full")
        await asyncio.wait_for(client.run(until=UNTIL), timeout=20)
    finally:
        await server.stop()
    return ticks


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_replay_fixture(tmp_path)


async def test_a_late_first_connect_backfills_the_day_from_the_open(data_dir: Path) -> None:
    ticks = await _stream(data_dir, backfill_from=OPEN)
    store = BarStore(data_dir / "bars")
    for key, symbol in zip(REPLAY_KEYS, REPLAY_SYMBOLS, strict=True):
        bars = store.read(symbol, "5min", datetime.combine(REPLAY_DAY, time(9, 15), IST),
                          datetime.combine(REPLAY_DAY, LATE, IST))
        before_late = [t for t in ticks[key] if t.time < datetime.combine(REPLAY_DAY, LATE, IST)]
        assert before_late[0].time.date() == REPLAY_DAY and before_late[0].time.time() < time(9, 16)
        assert before_late[0].ltp == bars["open"].iloc[0]  # the day's open, not the price at 10:30
        assert min(t.ltp for t in before_late) == bars["low"].min()
        assert max(t.ltp for t in before_late) == bars["high"].max()


async def test_without_backfill_from_a_late_start_misses_the_morning(data_dir: Path) -> None:
    ticks = await _stream(data_dir, backfill_from=None)
    today = [t for t in ticks[REPLAY_KEYS[0]] if t.time.date() == REPLAY_DAY]
    assert today and min(t.time for t in today).time() >= time(10, 29)
