"""record_frames: raw frames with receive times into a frame file, which the replay server replays."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest

from engine.feed.client import MarketDataClient, SubscriptionLimitError, TokenRejectedError
from engine.feed.decoder import FrameKind, decode_frame
from engine.feed.framefile import read_frames
from engine.feed.recorder import record_frames
from engine.models import IST, Tick
from tests.engine.feed.conftest import REPLAY_DAY, REPLAY_KEYS, REPLAY_TOKEN, MakeReplayServer


async def test_recorded_frames_hold_the_stream_and_replay_identically(
    make_replay_server: MakeReplayServer, tmp_path: Path
) -> None:
    server = await make_replay_server(start=time(9, 10), speed=600.0)
    out = tmp_path / "day.frames"
    started = server.clock.now()
    count = await asyncio.wait_for(
        record_frames(server.api_url, REPLAY_TOKEN, list(REPLAY_KEYS), "full", out, server.clock, 1200.0), timeout=30
    )
    records = list(read_frames(out))
    assert count == len(records) > 10
    recv = [recv_ms for recv_ms, _ in records]
    assert recv == sorted(recv)
    assert started.timestamp() * 1000 <= recv[0] and recv[-1] <= (started + timedelta(seconds=1260)).timestamp() * 1000
    frames = [decode_frame(data) for _, data in records]
    assert frames[0].kind is FrameKind.MARKET_INFO
    recorded: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for frame in frames:
        for tick in frame.ticks:
            recorded[tick.instrument_key].append((tick.ltt_ms, tick.ltp))
    for key in REPLAY_KEYS:
        today = [item for item in recorded[key] if datetime.fromtimestamp(item[0] / 1000, IST).date() == REPLAY_DAY]
        tape = [(t.ltt_ms, t.ltp) for t in server.tape.ticks(key) if t.ltt_ms <= today[-1][0]]
        assert today == tape and len(today) >= 7 * 3  # 09:15..09:30: three 5-minute bars, 7 points each

    # The replay server plays the file back; our client receives the same ticks.
    replayed = await make_replay_server(frames=out, speed=600.0)
    received: dict[str, list[tuple[int, float]]] = defaultdict(list)

    async def on_ticks(ticks: list[Tick]) -> None:
        for tick in ticks:
            received[tick.instrument_key].append((tick.ltt_ms, tick.ltp))

    client = MarketDataClient(
        api_url=replayed.api_url, token_provider=lambda: REPLAY_TOKEN, clock=replayed.clock, on_ticks=on_ticks,
        watchdog_seconds=600.0, backfill=False,
    )
    await client.subscribe(list(REPLAY_KEYS), "full")
    await asyncio.wait_for(client.run(until=datetime.fromtimestamp(recv[-1] / 1000 + 5, IST)), timeout=30)
    for key in REPLAY_KEYS:
        live = [item for item in recorded[key] if item[0] > received[key][0][0] - 1]
        assert received[key] == live[: len(received[key])] and len(received[key]) >= len(live) - 1


async def test_rejected_token_raises_and_keeps_an_empty_file(
    make_replay_server: MakeReplayServer, tmp_path: Path
) -> None:
    server = await make_replay_server()
    out = tmp_path / "rejected.frames"
    with pytest.raises(TokenRejectedError, match="401"):
        await asyncio.wait_for(
            record_frames(server.api_url, "stale", list(REPLAY_KEYS), "ltpc", out, server.clock, 60.0), timeout=30
        )
    assert list(read_frames(out)) == []


async def test_subscription_limit_is_checked_before_connecting(tmp_path: Path) -> None:
    from engine.clock import SimulatedClock

    keys = [f"NSE_EQ|K{i}" for i in range(51)]
    clock = SimulatedClock(datetime(2024, 6, 4, 9, 15, tzinfo=IST))
    with pytest.raises(SubscriptionLimitError, match="limit of 50"):
        await record_frames("http://127.0.0.1:9", "t", keys, "full_d30", tmp_path / "x.frames", clock, 10.0)
    with pytest.raises(ValueError, match="duration_seconds"):
        await record_frames("http://127.0.0.1:9", "t", keys[:1], "ltpc", tmp_path / "y.frames", clock, 0)
