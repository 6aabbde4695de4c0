"""MarketDataClient against the protocol engineer's Upstox-compatible replay server (`engine.feed.replay`):
a replayed day with every fault mode of its FaultPlan, and 200 instruments of the shipped data.

The replay's ticks are DERIVED from 5-minute bars (about one every 43 s per key), so the watchdog runs at 200 s of
replay time here. Assertions: ltt strictly increasing per key (no duplicate reached the engine), every minute
present, and each minute's OHLC of what the client delivered equals the server's own 1-minute candle."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.clock import SimulatedClock
from engine.feed.client import FeedState, MarketDataClient
from engine.feed.replay import FaultPlan, ReplayServer
from engine.models import IST, MarketStatus, Tick
from tests.engine.feed.conftest import REPLAY_DAY, REPLAY_KEYS, REPLAY_TOKEN

ROOT = Path(__file__).resolve().parents[3]
# Five quiet pre-open minutes absorb the wall milliseconds of connecting (at speed 600, 100 ms is a minute).
START = time(9, 10)
END = datetime.combine(REPLAY_DAY, time(9, 30), IST)
SPEED = 600.0
WATCHDOG_SECONDS = 200.0  # derived ticks come every ~43 s; 200 s of replay is 1/3 s of wall at speed 600


@contextlib.asynccontextmanager
async def replay(
    data_dir: Path,
    keys: Sequence[str],
    *,
    instruments: pd.DataFrame | None = None,
    faults: FaultPlan | None = None,
    speed: float = SPEED,
    start: time = START,
) -> AsyncIterator[ReplayServer]:
    """A started replay server whose tape is loaded BEFORE its clock starts (loading 200 keys' bars takes
    wall seconds, which at speed 600 would swallow the first half hour)."""
    server = ReplayServer(
        data_dir=data_dir, day=REPLAY_DAY, instruments=instruments, token=REPLAY_TOKEN, faults=faults, speed=speed,
        start=start,
    )
    for key in keys:
        server.tape.latest(key, 0)
    server.clock = SimulatedClock(datetime.combine(REPLAY_DAY, start, IST), speed)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Collector:
    def __init__(self) -> None:
        self.ticks: dict[str, list[Tick]] = defaultdict(list)
        self.statuses: list[dict[str, MarketStatus]] = []
        self.token_calls = 0

    async def on_ticks(self, ticks: list[Tick]) -> None:
        for tick in ticks:
            self.ticks[tick.instrument_key].append(tick)

    async def on_market_status(self, status: dict[str, MarketStatus]) -> None:
        self.statuses.append(status)

    def token(self) -> str:
        self.token_calls += 1
        return REPLAY_TOKEN


async def stream(
    server: ReplayServer, keys: Sequence[str], mode: str = "full", end: datetime = END, **kwargs: Any
) -> tuple[MarketDataClient, Collector]:
    collector = Collector()
    client = MarketDataClient(
        api_url=server.api_url, token_provider=collector.token, clock=server.clock, on_ticks=collector.on_ticks,
        on_market_status=collector.on_market_status, watchdog_seconds=WATCHDOG_SECONDS, **kwargs,
    )
    await client.subscribe(keys, mode)
    await asyncio.wait_for(client.run(until=end), timeout=60)
    return client, collector


def today(ticks: list[Tick]) -> list[Tick]:
    return [tick for tick in ticks if tick.time.date() == REPLAY_DAY]


def assert_no_missing_minute(
    server: ReplayServer, collector: Collector, keys: Sequence[str], end: datetime = END
) -> None:
    open_minute = int(datetime.combine(REPLAY_DAY, time(9, 15), IST).timestamp()) // 60
    end_minute = int(end.timestamp()) // 60
    for key in keys:
        ticks = collector.ticks[key]
        ltts = [tick.ltt_ms for tick in ticks]
        assert all(a < b for a, b in itertools.pairwise(ltts)), f"{key}: duplicate or out-of-order tick"
        volumes = [tick.volume for tick in today(ticks)]
        assert volumes == sorted(volumes), f"{key}: cumulative volume went down"
        by_minute: dict[int, list[float]] = defaultdict(list)
        for tick in today(ticks):
            by_minute[tick.ltt_ms // 60_000].append(tick.ltp)
        missing = sorted(set(range(open_minute, end_minute)) - set(by_minute))
        assert not missing, f"{key}: minutes without a tick: {missing}"
        candles = {
            int(datetime.fromisoformat(row[0]).timestamp()) // 60: row[1:5]
            for row in server.intraday_candles(key, "minutes", 1)
        }
        for minute in range(open_minute, end_minute):
            prices = by_minute[minute]
            assert [prices[0], max(prices), min(prices), prices[-1]] == candles[minute], f"{key} minute {minute}"


def assert_exactly_the_tape(
    server: ReplayServer, collector: Collector, keys: Sequence[str], mode: str = "full"
) -> None:
    """Without a gap the client delivers exactly the server's ticks: same times, same prices, none twice
    (ltpc mode carries no cumulative volume)."""
    for key in keys:
        delivered = today(collector.ticks[key])
        tape = [tick for tick in server.tape.ticks(key) if tick.ltt_ms <= delivered[-1].ltt_ms]
        with_volume = mode != "ltpc"
        assert [(t.ltt_ms, t.ltp, t.volume if with_volume else 0) for t in delivered] == [
            (t.ltt_ms, t.ltp, t.volume if with_volume else 0) for t in tape
        ]


async def test_replayed_day_streams_exactly_the_tape(replay_data_dir: Path) -> None:
    async with replay(replay_data_dir, REPLAY_KEYS) as server:
        client, collector = await stream(server, REPLAY_KEYS)
    assert client.state is FeedState.STOPPED
    assert_exactly_the_tape(server, collector, REPLAY_KEYS)
    assert_no_missing_minute(server, collector, REPLAY_KEYS)
    assert client.stats.reconnects == 0 and client.stats.watchdog_timeouts == 0  # quiet pre-open: no false alarm
    assert [status["NSE_EQ"] for status in collector.statuses] == [MarketStatus.PRE_OPEN_END, MarketStatus.NORMAL_OPEN]


@pytest.mark.parametrize("kind", ["drop", "stall"])
async def test_lost_connection_recovers_with_no_missing_minute(replay_data_dir: Path, kind: str) -> None:
    faults = FaultPlan(**{f"{kind}_at": (time(9, 20, 10),)})  # type: ignore[arg-type]
    async with replay(replay_data_dir, REPLAY_KEYS, faults=faults) as server:
        client, collector = await stream(server, REPLAY_KEYS)
    assert [fired for _, fired in server.fired] == [kind]
    stats = client.stats
    assert stats.reconnects == 1 and stats.backfill_failures == 0
    # A stall misses minutes (the watchdog waits 200 s); a drop is back within the second it happened in, where
    # the snapshot and the live ticks cover all there was: a backfilled tick would only repeat one of them.
    assert stats.backfilled_bars >= (len(REPLAY_KEYS) if kind == "stall" else 0)
    assert stats.watchdog_timeouts == (1 if kind == "stall" else 0)
    assert collector.token_calls == 3  # connect, reconnect (authorized again) and the backfill's candle requests
    assert_no_missing_minute(server, collector, REPLAY_KEYS)


async def test_malformed_frame_is_skipped(replay_data_dir: Path) -> None:
    faults = FaultPlan(malformed_at=(time(9, 20), time(9, 25)))
    async with replay(replay_data_dir, REPLAY_KEYS, faults=faults) as server:
        client, collector = await stream(server, REPLAY_KEYS)
    assert client.stats.malformed_frames == 2 and client.stats.reconnects == 0
    assert_exactly_the_tape(server, collector, REPLAY_KEYS)
    assert_no_missing_minute(server, collector, REPLAY_KEYS)


@pytest.mark.parametrize("fault", ["duplicate_rate", "out_of_order_rate"])
async def test_duplicated_and_out_of_order_ticks_are_dropped(replay_data_dir: Path, fault: str) -> None:
    async with replay(replay_data_dir, REPLAY_KEYS, faults=FaultPlan(**{fault: 0.3, "seed": 3})) as server:  # type: ignore[arg-type]
        client, collector = await stream(server, REPLAY_KEYS, mode="ltpc")
    stats = client.stats
    dropped = stats.duplicates_dropped if fault == "duplicate_rate" else stats.out_of_order_dropped
    other = stats.out_of_order_dropped if fault == "duplicate_rate" else stats.duplicates_dropped
    assert dropped >= 10 and other == 0
    assert_exactly_the_tape(server, collector, REPLAY_KEYS, mode="ltpc")
    assert_no_missing_minute(server, collector, REPLAY_KEYS)


async def test_rejected_token_ends_in_token_expired_without_retry_storm(replay_data_dir: Path) -> None:
    faults = FaultPlan(reject_token_at=(time(9, 20),))
    async with replay(replay_data_dir, REPLAY_KEYS, faults=faults) as server:
        client, collector = await stream(server, REPLAY_KEYS)
        stopped_at = server.clock.now()
    assert client.state is FeedState.TOKEN_EXPIRED
    assert collector.token_calls == 2  # the first connection, then one refused authorize: no retry storm
    assert "401" in client.stats.last_error
    assert stopped_at < END  # run() returned on its own, well before `until`


def replicated_universe(count: int) -> pd.DataFrame:
    """The shipped instrument table, rows replicated with a key suffix to reach `count` keys (181 symbols)."""
    table = pd.read_parquet(ROOT / "data" / "instruments.parquet")
    rows = [table.iloc[i % len(table)].copy() for i in range(count)]
    for i, row in enumerate(rows):
        if i >= len(table):
            row["instrument_key"] = f"{row['instrument_key']}-{i // len(table)}"
    return pd.DataFrame(rows).reset_index(drop=True)


@pytest.mark.e2e
@pytest.mark.skipif(not (ROOT / "data" / "instruments.parquet").exists(), reason="shipped data not built")
async def test_200_instruments_of_a_shipped_day_survive_a_drop() -> None:
    universe = replicated_universe(200)
    keys = list(universe["instrument_key"])
    assert len(set(keys)) == 200
    faults = FaultPlan(drop_at=(time(9, 20),))
    end = datetime.combine(REPLAY_DAY, time(9, 32), IST)
    # Speed 200: backfilling 200 keys through the SDK takes ~2 s of wall time, i.e. minutes of replay time.
    async with replay(ROOT / "data", keys, instruments=universe, faults=faults, speed=200.0,
                      start=time(9, 13)) as server:
        client, collector = await stream(server, keys, end=end)
    # Back within seconds of the drop: the snapshot and the held live ticks cover the gap, so the backfill may add
    # nothing (a backfilled tick only ever fills what was missed); every minute is checked below either way.
    assert client.stats.reconnects == 1 and client.stats.backfill_failures == 0
    assert_no_missing_minute(server, collector, keys, end=end)
    assert sum(len(today(collector.ticks[key])) for key in keys) >= 200 * 17  # 17 minutes, >= 1 tick each
