"""The replay server against real clients: `requests`, `websockets`, and upstox-python-sdk (HistoryV3Api,
WebsocketApi, MarketDataStreamerV3). Values are checked against the derived tick path of the fixture bars."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import threading
import time as wall
import types
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import upstox_client
import websocket
import websockets
from upstox_client.feeder import market_data_feeder_v3
from upstox_client.rest import ApiException

from engine.clock import Lockstep, VirtualClock
from engine.feed.decoder import DecodedFrame, FrameDecodeError, FrameKind, decode_frame, encode_ticks
from engine.feed.framefile import write_frames
from engine.feed.replay import BarTape, FaultPlan, ReplayError, ReplayServer, market_status_at
from engine.feed.synth import MINUTE_MS, candles, day_ticks
from engine.models import IST, MarketStatus, Tick, Timeframe
from engine.storage.bars import BarStore
from tests.engine.feed.conftest import (
    REPLAY_DAY,
    REPLAY_KEYS,
    REPLAY_START,
    REPLAY_SYMBOLS,
    REPLAY_TOKEN,
    MakeReplayServer,
)

AUTH = {"Authorization": f"Bearer {REPLAY_TOKEN}"}
KEY = REPLAY_KEYS[0]


def expected_ticks(data_dir: Path, index: int = 0) -> list[Tick]:
    store = BarStore(data_dir / "bars")
    bars = store.read_bars(REPLAY_SYMBOLS[index], Timeframe.MIN5, REPLAY_DAY, datetime(2024, 6, 5, tzinfo=IST))
    previous = store.read(REPLAY_SYMBOLS[index], Timeframe.MIN5, datetime(2024, 6, 3, tzinfo=IST), REPLAY_DAY)
    return day_ticks(REPLAY_KEYS[index], bars, close_prev=float(previous["close"].iloc[-1]), tick_size=0.05)


def request(method: str, mode: str | None = None, keys: tuple[str, ...] = REPLAY_KEYS) -> bytes:
    data: dict[str, Any] = {"instrumentKeys": list(keys)}
    if mode is not None:
        data["mode"] = mode
    return json.dumps({"guid": "g-1", "method": method, "data": data}).encode()


async def authorized_uri(server: ReplayServer, token: str = REPLAY_TOKEN) -> str:
    response = await asyncio.to_thread(
        requests.get, server.api_url + "/v3/feed/market-data-feed/authorize",
        headers={"Authorization": f"Bearer {token}"}, timeout=5,
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]["authorized_redirect_uri"]


async def recv_bytes(ws: Any, timeout: float = 5.0) -> bytes:
    """The next frame; the V3 feed sends binary protobuf only."""
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, bytes), f"text frame on the feed: {message!r}"
    return message


async def recv_frame(ws: Any, timeout: float = 5.0) -> DecodedFrame:
    return decode_frame(await recv_bytes(ws, timeout))


async def until(ws: Any, predicate: Callable[[Any], bool], limit: int = 200) -> list[Any]:
    frames = []
    for _ in range(limit):
        frame = await recv_frame(ws)
        frames.append(frame)
        if predicate(frame):
            return frames
    raise AssertionError(f"no matching frame in {limit}")


# ---- HTTP --------------------------------------------------------------------------------------------------


async def test_authorize_answers_the_redirect_uri_and_rejects_a_bad_token(replay_server: ReplayServer) -> None:
    uri = await authorized_uri(replay_server)
    assert uri.startswith(replay_server.ws_url + "?") and "code=" in uri
    bad = await asyncio.to_thread(
        requests.get, replay_server.api_url + "/v3/feed/market-data-feed/authorize",
        headers={"Authorization": "Bearer wrong"}, timeout=5,
    )
    assert bad.status_code == 401
    body = bad.json()
    assert body["status"] == "error"
    assert body["errors"][0]["errorCode"] == "UDAPI100050"
    assert body["errors"][0]["message"] == "Invalid token used to access API"


def _sdk_client(server: ReplayServer, token: str = REPLAY_TOKEN) -> upstox_client.ApiClient:
    configuration = upstox_client.Configuration()  # a fresh one: the SDK shares defaults across instances
    configuration.host = server.api_url
    configuration.access_token = token
    return upstox_client.ApiClient(configuration)


async def test_sdk_websocket_api_reads_the_authorize_answer(replay_server: ReplayServer) -> None:
    api = upstox_client.WebsocketApi(_sdk_client(replay_server))
    response = await asyncio.to_thread(api.get_market_data_feed_authorize_v3)
    assert response.status == "success"
    assert response.data.authorized_redirect_uri.startswith(replay_server.ws_url)
    bad = upstox_client.WebsocketApi(_sdk_client(replay_server, "wrong"))
    with pytest.raises(ApiException) as caught:
        await asyncio.to_thread(bad.get_market_data_feed_authorize_v3)
    assert caught.value.status == 401


async def test_intraday_candles_through_the_sdk_are_the_complete_minutes_of_the_tick_path(
    make_replay_server: MakeReplayServer, replay_data_dir: Path
) -> None:
    server = await make_replay_server(start=time(10, 0, 30), speed=1.0)
    api = upstox_client.HistoryV3Api(_sdk_client(server))
    response = await asyncio.to_thread(api.get_intra_day_candle_data, KEY, "minutes", 1)
    rows = response.data.candles
    origin = int(datetime(2024, 6, 4, 9, 15, tzinfo=IST).timestamp() * 1000)
    now_ms = server.clock.now_ms()
    ticks = [t for t in expected_ticks(replay_data_dir) if t.ltt_ms <= now_ms]
    expected = [c for c in candles(ticks, interval_ms=MINUTE_MS, origin_ms=origin) if c.start_ms + MINUTE_MS <= now_ms]
    assert len(rows) == 45  # 09:15 .. 09:59, none missing, the running 10:00 minute not served
    assert rows == [
        [datetime.fromtimestamp(c.start_ms / 1000, IST).isoformat(), c.open, c.high, c.low, c.close, c.volume, 0]
        for c in reversed(expected)
    ]
    assert rows[0][0] == "2024-06-04T09:59:00+05:30"

    five = await asyncio.to_thread(api.get_intra_day_candle_data, KEY, "minutes", 5)
    bars = BarStore(replay_data_dir / "bars").read_bars(REPLAY_SYMBOLS[0], Timeframe.MIN5, REPLAY_DAY)
    assert [row[1:6] for row in reversed(five.data.candles)] == [
        [b.open, b.high, b.low, b.close, b.volume] for b in bars[:9]
    ]  # 5-minute candles of the derived path are the real bars


async def test_intraday_candles_reject_unknown_keys_and_intervals(replay_server: ReplayServer) -> None:
    base = replay_server.api_url + "/v3/historical-candle/intraday/"
    unknown = await asyncio.to_thread(requests.get, base + "NSE_EQ%7CNOPE/minutes/1", timeout=5)
    assert unknown.status_code == 400 and unknown.json()["status"] == "error"
    bad_unit = await asyncio.to_thread(requests.get, base + KEY.replace("|", "%7C") + "/weeks/1", timeout=5)
    assert bad_unit.status_code == 400


# ---- WebSocket protocol ------------------------------------------------------------------------------------


async def test_stream_market_info_first_then_snapshot_then_live_ticks_of_the_bar_path(
    replay_server: ReplayServer, replay_data_dir: Path
) -> None:
    expected = {tick.ltt_ms: tick for tick in expected_ticks(replay_data_dir)}
    async with websockets.connect(await authorized_uri(replay_server)) as ws:
        first = await recv_frame(ws)
        assert first.kind is FrameKind.MARKET_INFO
        assert first.market_status is not None and first.market_status["NSE_EQ"] is MarketStatus.PRE_OPEN_END
        await ws.send(request("sub", "full"))
        snapshot = await recv_frame(ws)
        assert snapshot.kind is FrameKind.INITIAL_FEED
        assert sorted(t.instrument_key for t in snapshot.ticks) == sorted(REPLAY_KEYS)
        frames = await until(ws, lambda f: f.kind is FrameKind.LIVE_FEED and f.ticks[0].ltt_ms >= max(
            t.ltt_ms for t in expected.values() if t.ltt_ms < 1_717_473_000_000))
        statuses = [f.market_status["NSE_EQ"] for f in frames if f.kind is FrameKind.MARKET_INFO]
        assert statuses == [MarketStatus.NORMAL_OPEN]
        live = [tick for f in frames if f.kind is FrameKind.LIVE_FEED for tick in f.ticks if tick.instrument_key == KEY]
        assert live and live == [expected[tick.ltt_ms] for tick in live]  # every value as derived from the bars
        assert [t.ltt_ms for t in live] == sorted(expected)[: len(live)]  # none missing, in order


async def test_unsub_and_change_mode(replay_server: ReplayServer) -> None:
    async with websockets.connect(await authorized_uri(replay_server)) as ws:
        await recv_frame(ws)
        await ws.send(request("sub", "full"))
        await until(ws, lambda f: f.kind is FrameKind.LIVE_FEED)
        await ws.send(request("unsub", keys=REPLAY_KEYS[1:]))
        await ws.send(request("change_mode", "ltpc", keys=(KEY,)))
        snapshot = await until(ws, lambda f: f.kind is FrameKind.INITIAL_FEED)
        assert [t.instrument_key for t in snapshot[-1].ticks] == [KEY]
        raw = await recv_bytes(ws)
        while decode_frame(raw).kind is not FrameKind.LIVE_FEED:
            raw = await recv_bytes(ws)
        from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as sdk

        parsed = sdk.FeedResponse.FromString(raw)
        assert list(parsed.feeds) == [KEY]
        assert parsed.feeds[KEY].WhichOneof("FeedUnion") == "ltpc"


async def test_websocket_refuses_a_bad_token_and_accepts_the_bearer_header(replay_server: ReplayServer) -> None:
    with pytest.raises(websockets.InvalidStatus) as caught:
        async with websockets.connect(replay_server.ws_url, additional_headers={"Authorization": "Bearer no"}):
            pass
    assert caught.value.response.status_code == 401
    async with websockets.connect(replay_server.ws_url, additional_headers=AUTH) as ws:
        assert (await recv_frame(ws)).kind is FrameKind.MARKET_INFO


async def test_market_status_follows_the_session_boundaries(make_replay_server: MakeReplayServer) -> None:
    assert market_status_at(datetime(2024, 6, 4, 8, 59, tzinfo=IST)) is MarketStatus.NORMAL_CLOSE
    assert market_status_at(datetime(2024, 6, 4, 9, 0, tzinfo=IST)) is MarketStatus.PRE_OPEN_START
    assert market_status_at(datetime(2024, 6, 4, 15, 30, tzinfo=IST)) is MarketStatus.NORMAL_CLOSE
    server = await make_replay_server(start=time(9, 7, 30), speed=200.0)
    async with websockets.connect(await authorized_uri(server)) as ws:
        statuses = []
        for _ in range(3):
            frame = await recv_frame(ws, timeout=10)
            statuses.append((frame.market_status or {})["NSE_EQ"])
    assert statuses == [MarketStatus.PRE_OPEN_START, MarketStatus.PRE_OPEN_END, MarketStatus.NORMAL_OPEN]


# ---- the real SDK streamer ---------------------------------------------------------------------------------


async def test_upstox_sdk_streamer_connects_subscribes_and_decodes_the_bar_path(
    make_replay_server: MakeReplayServer, replay_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await make_replay_server(start=time(9, 14), speed=300.0)
    # The SDK dials a fixed wss://api.upstox.com URL; only that URL is redirected, the rest is the SDK's own code.
    shim = types.SimpleNamespace(
        WebSocketApp=lambda _url, **kwargs: websocket.WebSocketApp(server.ws_url, **kwargs), ABNF=websocket.ABNF
    )
    monkeypatch.setattr(market_data_feeder_v3, "websocket", shim)
    messages: list[dict[str, Any]] = []
    errors: list[Any] = []
    enough = threading.Event()

    def on_message(message: dict[str, Any]) -> None:
        messages.append(message)
        if sum(1 for m in messages if m.get("type") == "live_feed") >= 4:
            enough.set()

    streamer = upstox_client.MarketDataStreamerV3(_sdk_client(server), list(REPLAY_KEYS), "full")
    streamer.on("message", on_message)
    streamer.on("error", errors.append)
    streamer.auto_reconnect(False)
    streamer.connect()
    try:
        assert await asyncio.to_thread(enough.wait, 20), f"no live feed; errors {errors}"
    finally:
        streamer.disconnect()
    assert not errors
    assert messages[0]["type"] == "market_info"
    assert messages[0]["marketInfo"]["segmentStatus"]["NSE_EQ"] == "PRE_OPEN_END"
    # proto3 JSON leaves out enum defaults: no "type" means initial_feed (0)
    assert "type" not in messages[1] and set(messages[1]["feeds"]) == set(REPLAY_KEYS)
    expected = {tick.ltt_ms: tick for tick in expected_ticks(replay_data_dir)}
    live = [m for m in messages if m.get("type") == "live_feed"]
    for message in live:
        market = message["feeds"][KEY]["fullFeed"]["marketFF"]
        tick = expected[int(market["ltpc"]["ltt"])]
        assert market["ltpc"]["ltp"] == tick.ltp
        assert int(market["vtt"]) == tick.volume
        assert market["ltpc"]["cp"] == tick.close_prev
        day = next(c for c in market["marketOHLC"]["ohlc"] if c["interval"] == "1d")
        assert (day.get("open", 0.0), day.get("high", 0.0), day.get("low", 0.0)) == (
            tick.day_open, tick.day_high, tick.day_low
        )
        assert message["feeds"][KEY]["requestMode"] == "full_d5"


async def test_upstox_sdk_streamer_reports_401_on_a_bad_token(
    make_replay_server: MakeReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await make_replay_server()
    shim = types.SimpleNamespace(
        WebSocketApp=lambda _url, **kwargs: websocket.WebSocketApp(server.ws_url, **kwargs), ABNF=websocket.ABNF
    )
    monkeypatch.setattr(market_data_feeder_v3, "websocket", shim)
    errors: list[Any] = []
    failed = threading.Event()
    streamer = upstox_client.MarketDataStreamerV3(_sdk_client(server, "expired"), [KEY], "ltpc")

    def on_error(error: Any) -> None:
        errors.append(error)
        failed.set()

    streamer.on("error", on_error)
    streamer.connect()
    assert await asyncio.to_thread(failed.wait, 10)
    assert "401" in str(errors[0])
    assert streamer.disconnect_valid  # the SDK stops retrying on 401


# ---- faults ------------------------------------------------------------------------------------------------


async def _subscribed(server: ReplayServer) -> Any:
    ws = await websockets.connect(await authorized_uri(server))
    await recv_frame(ws)
    await ws.send(request("sub", "full"))
    return ws


async def test_drop_cuts_the_connection_without_a_close_frame(make_replay_server: MakeReplayServer) -> None:
    server = await make_replay_server(start=time(9, 14, 58), faults=FaultPlan(drop_at=(time(9, 16),)))
    ws = await _subscribed(server)
    with pytest.raises(websockets.ConnectionClosedError):
        for _ in range(100):
            await recv_frame(ws)
    assert ws.close_code == 1006
    assert [kind for _, kind in server.fired] == ["drop"]
    ws2 = await _subscribed(server)  # a reconnect works
    assert (await until(ws2, lambda f: f.kind is FrameKind.LIVE_FEED))[-1].ticks
    await ws2.close()


async def test_stall_keeps_the_socket_but_sends_nothing(make_replay_server: MakeReplayServer) -> None:
    server = await make_replay_server(start=time(9, 14, 58), faults=FaultPlan(stall_at=(time(9, 16),)))
    ws = await _subscribed(server)
    received = await until(ws, lambda f: f.kind is FrameKind.LIVE_FEED and f.ticks[0].ltt_ms >= 1_717_472_742_857)
    assert received
    with pytest.raises(TimeoutError):
        while True:
            frame = await recv_frame(ws, timeout=2.0)  # 200 replay seconds at speed 100
            assert frame.ticks[0].time.time() < time(9, 16)
    await ws.ping()  # the socket is still alive
    await ws.close()


async def test_malformed_frame_is_not_a_feed_response(make_replay_server: MakeReplayServer) -> None:
    from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as sdk

    server = await make_replay_server(start=time(9, 14, 58), faults=FaultPlan(malformed_at=(time(9, 15, 30),)))
    ws = await _subscribed(server)
    for _ in range(100):
        raw = await recv_bytes(ws)
        try:
            decode_frame(raw)
        except FrameDecodeError:
            with pytest.raises(Exception, match=r"(?i)error|truncated|parse"):
                sdk.FeedResponse.FromString(raw)
            break
    else:
        raise AssertionError("no malformed frame")
    assert (await until(ws, lambda f: f.kind is FrameKind.LIVE_FEED)).pop().ticks  # the stream goes on
    await ws.close()


async def test_duplicate_and_out_of_order_ticks(make_replay_server: MakeReplayServer) -> None:
    server = await make_replay_server(start=time(9, 14, 58), faults=FaultPlan(duplicate_rate=1.0, seed=3))
    ws = await _subscribed(server)
    # until 09:18:20: enough pairs even when a slow subscription gets the first ticks in its snapshot
    frames = await until(ws, lambda f: f.kind is FrameKind.LIVE_FEED and f.ticks[0].ltt_ms > 1_717_472_900_000)
    live = [f for f in frames if f.kind is FrameKind.LIVE_FEED]
    seen = [tick.ltt_ms for f in live for tick in f.ticks if tick.instrument_key == KEY]
    assert len(seen) >= 4 and all(seen[i] == seen[i + 1] for i in range(0, len(seen) - 1, 2))
    await ws.close()

    server = await make_replay_server(start=time(9, 14, 58), faults=FaultPlan(out_of_order_rate=1.0, seed=3))
    ws = await _subscribed(server)
    frames = await until(ws, lambda f: f.kind is FrameKind.LIVE_FEED and f.ticks[0].ltt_ms > 1_717_472_800_000)
    # the snapshot counts as sent: a slow subscription (a loaded machine) gets the 09:15:00 tick there
    sent = [f for f in frames if f.kind in (FrameKind.INITIAL_FEED, FrameKind.LIVE_FEED)]
    seen = [tick.ltt_ms for f in sent for tick in f.ticks if tick.instrument_key == KEY]
    assert any(later < earlier for earlier, later in itertools.pairwise(seen))
    late = [(i, ltt) for i, ltt in enumerate(seen) if i and ltt < max(seen[:i])]
    assert late and all(seen.index(ltt) < i for i, ltt in late)  # each late tick is an older one, sent before
    await ws.close()


async def test_token_rejected_at_a_time_closes_sockets_and_refuses_reauthorization(
    make_replay_server: MakeReplayServer,
) -> None:
    server = await make_replay_server(start=time(9, 14, 58), faults=FaultPlan(reject_token_at=(time(9, 15, 30),)))
    ws = await _subscribed(server)
    with pytest.raises(websockets.ConnectionClosed):
        for _ in range(100):
            await recv_frame(ws)
    assert ws.close_code == 1008
    refused = await asyncio.to_thread(
        requests.get, server.api_url + "/v3/feed/market-data-feed/authorize", headers=AUTH, timeout=5
    )
    assert refused.status_code == 401
    server.set_token("fresh")
    assert (await authorized_uri(server, "fresh")).startswith(server.ws_url)


async def test_reject_token_from_the_start(make_replay_server: MakeReplayServer) -> None:
    server = await make_replay_server(faults=FaultPlan(reject_token=True))
    refused = await asyncio.to_thread(
        requests.get, server.api_url + "/v3/feed/market-data-feed/authorize", headers=AUTH, timeout=5
    )
    assert refused.status_code == 401


def test_random_fault_times_are_seeded_and_inside_the_session() -> None:
    plan = FaultPlan(random_drops=3, random_stalls=2, random_malformed=1, seed=7)
    first, again = plan.schedule(REPLAY_DAY), plan.schedule(REPLAY_DAY)
    assert first == again and len(first) == 6
    assert all(time(9, 15) <= when.time() <= time(15, 30) for when, _ in first)
    assert FaultPlan(random_drops=3, seed=8).schedule(REPLAY_DAY) != FaultPlan(random_drops=3, seed=7).schedule(
        REPLAY_DAY
    )
    with pytest.raises(ReplayError):
        FaultPlan(duplicate_rate=1.5)


# ---- recorded frames ---------------------------------------------------------------------------------------


async def test_frame_file_is_replayed_at_its_receive_times(
    make_replay_server: MakeReplayServer, tmp_path: Path
) -> None:
    path = tmp_path / "day.frames"
    base = int(datetime(2024, 6, 4, 9, 15, tzinfo=IST).timestamp() * 1000)
    sent = [encode_ticks([Tick(KEY, 100.0 + i, base + i * 1000)], current_ts_ms=base + i * 1000) for i in range(5)]
    with write_frames(path) as out:
        for i, frame in enumerate(sent):
            out.write(base + i * 1000, frame)
    server = await make_replay_server(frames=path, speed=50.0)
    async with websockets.connect(await authorized_uri(server)) as ws:
        assert (await recv_frame(ws)).kind is FrameKind.MARKET_INFO
        received = [await recv_bytes(ws) for _ in range(4)]
    assert received == sent[1:]  # the first frame is at the clock start, before the connection


# ---- CLI ---------------------------------------------------------------------------------------------------


@pytest.mark.e2e
async def test_cli_feed_serve_prints_its_urls_and_serves(replay_data_dir: Path) -> None:
    import sys

    command = [
        str(Path(sys.executable).with_name("autotrader")), "feed", "serve", "--port", "0", "--date", "2024-06-04",
        "--data-dir", str(replay_data_dir), "--start", "09:14:30", "--speed", "100", "--require-token",
        "--duplicate-rate", "0.5", "--seed", "7",
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, env={**os.environ, "AUTOTRADER_FEED_SERVE_TOKEN": REPLAY_TOKEN}
    )
    try:
        assert process.stdout is not None
        lines = {}
        while "ws_url" not in lines:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert line, "the server exited early"
            name, _, value = line.partition(": ")
            lines[name] = value.strip()
        server = types.SimpleNamespace(api_url=lines["api_url"], ws_url=lines["ws_url"])
        assert server.api_url.startswith("http://127.0.0.1:")
        async with websockets.connect(await authorized_uri(server)) as ws:  # type: ignore[arg-type]
            assert (await recv_frame(ws)).kind is FrameKind.MARKET_INFO
            await ws.send(request("sub", "ltpc"))
            assert (await until(ws, lambda f: f.kind is FrameKind.LIVE_FEED))[-1].ticks
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


def test_cli_feed_serve_needs_a_source() -> None:
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["feed", "serve"])
    assert result.exit_code == 2
    assert "--date" in result.output
    bad_time = CliRunner().invoke(app, ["feed", "serve", "--date", "2024-06-04", "--drop-at", "25:99"])
    assert bad_time.exit_code == 2 and "HH:MM" in bad_time.output


async def test_bad_requests_are_ignored_and_the_stream_goes_on(replay_server: ReplayServer) -> None:
    async with websockets.connect(await authorized_uri(replay_server)) as ws:
        await recv_frame(ws)
        await ws.send(b"{not json")
        await ws.send(json.dumps({"guid": "g", "method": "subscribe-all"}).encode())
        await ws.send(request("sub", "full_d99"))
        await ws.send(request("sub", "full", keys=("NSE_EQ|UNKNOWN", KEY)))
        snapshot = await until(ws, lambda f: f.kind is FrameKind.INITIAL_FEED)
        assert [t.instrument_key for t in snapshot[-1].ticks] == [KEY]
        live = await until(ws, lambda f: f.kind is FrameKind.LIVE_FEED)
        assert {t.instrument_key for t in live[-1].ticks} == {KEY}
    missing = await asyncio.to_thread(requests.get, replay_server.api_url + "/v2/nothing", timeout=5)
    assert missing.status_code == 404 and missing.json()["status"] == "error"


@pytest.mark.e2e
async def test_cli_feed_record_writes_frames_the_server_replays(
    make_replay_server: MakeReplayServer, tmp_path: Path
) -> None:
    import sys

    from engine.feed.framefile import read_frames

    server = await make_replay_server(speed=100.0)
    out = tmp_path / "recorded.frames"
    command = [
        str(Path(sys.executable).with_name("autotrader")), "feed", "record", "--out", str(out), "--key", KEY,
        "--mode", "full", "--duration", "3", "--api-url", server.api_url,
    ]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE,
                                                   env={**os.environ, "UPSTOX_ACCESS_TOKEN": REPLAY_TOKEN})
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    recorded = list(read_frames(out))
    kinds = [decode_frame(frame).kind for _, frame in recorded]
    assert kinds[0] is FrameKind.MARKET_INFO and FrameKind.LIVE_FEED in kinds
    assert [recv for recv, _ in recorded] == sorted(recv for recv, _ in recorded)

    replay = await make_replay_server(frames=out, speed=1.0)
    async with websockets.connect(await authorized_uri(replay)) as ws:
        first = await recv_bytes(ws)
        assert decode_frame(first).kind is FrameKind.MARKET_INFO
        following = [await recv_bytes(ws) for _ in range(2)]
    frames = [frame for _, frame in recorded]
    start = frames.index(following[0])  # frames recorded before the connection opened are skipped
    assert start >= 1 and following == frames[start : start + 2]  # byte for byte, in order


async def test_a_day_without_bars_is_a_clear_error(replay_data_dir: Path) -> None:
    server = ReplayServer(data_dir=replay_data_dir, day=datetime(2024, 6, 9).date())
    with pytest.raises(ReplayError, match="no 5-minute bars on 2024-06-09"):
        await server.start()
    await server.stop()


# ---- lifecycle: tasks, loading, limits ---------------------------------------------------------------------


async def _no_tasks_left(baseline: set[asyncio.Task[Any]], seconds: float = 3.0) -> None:
    """Wait (briefly: client sockets finish closing) until no task beyond `baseline` and this test is pending."""
    deadline = wall.monotonic() + seconds
    while True:
        left = asyncio.all_tasks() - baseline - {asyncio.current_task()}
        if not left:
            return
        if wall.monotonic() > deadline:
            raise AssertionError(f"tasks left pending: {[task.get_coro() for task in left]}")
        await asyncio.sleep(0.02)


async def test_no_task_outlives_its_connection_or_the_server(make_replay_server: MakeReplayServer) -> None:
    loop = asyncio.get_running_loop()
    reports: list[dict[str, Any]] = []  # asyncio reports "Task was destroyed but it is pending!" here
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    try:
        server = await make_replay_server(start=time(9, 14, 58))
        await asyncio.sleep(0)  # the fault loop has no fault to wait for: let it end
        assert server.tasks == frozenset()
        baseline = asyncio.all_tasks()
        for leave in ("close", "drop", "close"):  # clients reconnecting, politely or cut off
            ws = await _subscribed(server)
            await until(ws, lambda f: f.kind is FrameKind.LIVE_FEED)
            assert len(server.tasks) == 1  # the connection's pump
            if leave == "drop":
                await server.inject("drop")
            await ws.close()
            for _ in range(200):
                if not server.connections:
                    break
                await asyncio.sleep(0.01)
            assert server.connections == 0
            assert server.tasks == frozenset()
            await _no_tasks_left(baseline)
        ws = await _subscribed(server)  # still streaming when the server stops
        await until(ws, lambda f: f.kind is FrameKind.LIVE_FEED)
        await server.stop()
        assert server.tasks == frozenset() and server.connections == 0
        with pytest.raises(websockets.ConnectionClosed):
            for _ in range(100):
                await recv_frame(ws)
        assert ws.close_code == 1001
        await _no_tasks_left(baseline)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous_handler)
    assert [report.get("message") for report in reports] == []


async def test_loading_runs_in_worker_threads_before_the_clock_starts(
    make_replay_server: MakeReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[tuple[str, int]] = []
    derive = BarTape._load

    def slow_load(tape: BarTape, key: str) -> list[Tick]:
        loads.append((key, threading.get_ident()))
        wall.sleep(0.3)  # a big Parquet read: 0.9 s of wall time for 3 keys, 90 s of replay at speed 100
        return derive(tape, key)

    monkeypatch.setattr(BarTape, "_load", slow_load)
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            await asyncio.sleep(0.01)
            beats += 1

    beating = asyncio.create_task(heartbeat())
    try:
        server = await make_replay_server(start=time(9, 14, 30), speed=100.0)
    finally:
        beating.cancel()
    assert sorted(key for key, _ in loads) == sorted(REPLAY_KEYS)
    assert threading.get_ident() not in {thread for _, thread in loads}
    assert beats >= 20  # the event loop kept running while the day loaded
    lag = server.clock.now() - datetime.combine(REPLAY_DAY, time(9, 14, 30), IST)
    assert timedelta(0) <= lag < timedelta(seconds=30)  # the clock started after loading, not 90 s before


async def test_explicit_preload_and_lazy_loads_stay_off_the_event_loop(
    replay_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[str, int] = {}
    derive = BarTape._load

    def recording_load(tape: BarTape, key: str) -> list[Tick]:
        threads[key] = threading.get_ident()
        return derive(tape, key)

    monkeypatch.setattr(BarTape, "_load", recording_load)
    server = ReplayServer(data_dir=replay_data_dir, day=REPLAY_DAY, token=REPLAY_TOKEN, start=time(10, 0, 30),
                          speed=1.0, preload=False)
    await server.preload([KEY])
    assert isinstance(server.tape, BarTape)
    assert [server.tape.loaded(key) for key in REPLAY_KEYS] == [True, False, False]
    await server.preload([KEY])  # already loaded: no second read
    assert list(threads) == [KEY]
    await server.start()
    try:
        assert server.clock.now() - datetime.combine(REPLAY_DAY, time(10, 0, 30), IST) < timedelta(seconds=5)
        async with websockets.connect(await authorized_uri(server)) as ws:
            await recv_frame(ws)
            await ws.send(request("sub", "ltpc", keys=(REPLAY_KEYS[1],)))
            snapshot = await until(ws, lambda f: f.kind is FrameKind.INITIAL_FEED)
            assert [t.instrument_key for t in snapshot[-1].ticks] == [REPLAY_KEYS[1]]
        candles_url = server.api_url + "/v3/historical-candle/intraday/" + REPLAY_KEYS[2].replace("|", "%7C")
        response = await asyncio.to_thread(requests.get, candles_url + "/minutes/5", timeout=5)
        assert response.status_code == 200 and len(response.json()["data"]["candles"]) == 9  # 09:15..09:55
        assert set(threads) == set(REPLAY_KEYS)
        assert threading.get_ident() not in threads.values()
    finally:
        await server.stop()


def _feed_union(raw: bytes, key: str) -> str | None:
    from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as sdk

    parsed = sdk.FeedResponse.FromString(raw)
    return parsed.feeds[key].WhichOneof("FeedUnion") if key in parsed.feeds else None


async def _next_live_union(ws: Any, key: str) -> str | None:
    for _ in range(100):
        raw = await recv_bytes(ws)
        frame = decode_frame(raw)
        if frame.kind is FrameKind.LIVE_FEED and any(t.instrument_key == key for t in frame.ticks):
            return _feed_union(raw, key)
    raise AssertionError(f"no live tick of {key}")


async def test_subscriptions_over_upstox_limits_are_refused_whole(make_replay_server: MakeReplayServer) -> None:
    server = await make_replay_server(start=time(9, 14, 58))
    unknown = tuple(f"NSE_EQ|INE{i:06d}Z0" for i in range(1501))
    async with websockets.connect(await authorized_uri(server)) as ws:
        await recv_frame(ws)
        await ws.send(request("sub", "full"))
        await until(ws, lambda f: f.kind is FrameKind.INITIAL_FEED)
        # individual limit: full_d30 alone allows 50 keys; 51 are refused, the 3 known keys are not moved
        await ws.send(request("sub", "full_d30", keys=REPLAY_KEYS + unknown[:48]))
        await ws.send(request("sub", "full", keys=(KEY,)))  # a valid request right after it
        snapshot = await until(ws, lambda f: f.kind is FrameKind.INITIAL_FEED)
        assert [t.instrument_key for t in snapshot[-1].ticks] == [KEY]  # none for the refused request
        assert await _next_live_union(ws, REPLAY_KEYS[1]) == "fullFeed"  # still streaming, still in full mode
        assert len(server.refused) == 1
        assert "51 instrument keys in mode 'full_d30'" in server.refused[0][1]
        assert "individual limit of 50" in server.refused[0][1]

        # combined limit: with keys in two modes, full is capped at 1500
        await ws.send(request("change_mode", "ltpc", keys=(KEY,)))
        await until(ws, lambda f: f.kind is FrameKind.INITIAL_FEED)
        await ws.send(request("sub", "full", keys=unknown))  # 2 known + 1501 = 1503 in full, 1 in ltpc
        await ws.send(request("sub", "full", keys=unknown[:1498]))  # 2 + 1498 = 1500: allowed
        await ws.send(request("change_mode", "ltpc", keys=(REPLAY_KEYS[2],)))
        snapshot = await until(ws, lambda f: f.kind is FrameKind.INITIAL_FEED)
        assert [t.instrument_key for t in snapshot[-1].ticks] == [REPLAY_KEYS[2]]
        assert len(server.refused) == 2
        assert "1503 instrument keys in mode 'full'" in server.refused[1][1]
        assert "combined (more than one mode subscribed) limit of 1500" in server.refused[1][1]
        assert await _next_live_union(ws, REPLAY_KEYS[1]) == "fullFeed"
        assert await _next_live_union(ws, KEY) == "ltpc"


# ---- lockstep --------------------------------------------------------------------------------------------


async def test_lockstep_moves_time_only_when_the_consumer_has_processed_every_frame(
    make_replay_server: MakeReplayServer, replay_data_dir: Path
) -> None:
    clock = VirtualClock(datetime.combine(REPLAY_DAY, REPLAY_START, IST))
    lockstep = Lockstep(clock)
    server = await make_replay_server(lockstep=lockstep)
    assert server.clock is clock
    expected = sorted(tick.ltt_ms for tick in expected_ticks(replay_data_dir))
    woke_at: list[datetime] = []

    async def at_ten() -> None:  # another clock sleeper: runs at exactly 10:00, whatever the load
        await clock.sleep_until(datetime.combine(REPLAY_DAY, time(10, 0), IST))
        woke_at.append(clock.now())

    sleeper = asyncio.ensure_future(at_ten())
    seen: list[tuple[int, DecodedFrame]] = []
    async with websockets.connect(await authorized_uri(server)) as ws:
        await asyncio.sleep(0.05)
        assert clock.now() == datetime.combine(REPLAY_DAY, REPLAY_START, IST)  # waits for the subscription
        await ws.send(request("sub", "full"))
        while True:
            frame = await recv_frame(ws)
            seen.append((clock.now_ms(), frame))
            await asyncio.sleep(0.001)  # slow processing: the server must wait for it
            await lockstep.frame_received()
            if frame.kind is FrameKind.MARKET_INFO and frame.market_status == {
                segment: MarketStatus.NORMAL_CLOSE for segment in frame.market_status
            }:
                break
    await sleeper
    assert woke_at == [datetime.combine(REPLAY_DAY, time(10, 0), IST)]
    live = [(now_ms, tick) for now_ms, frame in seen if frame.kind is FrameKind.LIVE_FEED for tick in frame.ticks]
    assert all(tick.ltt_ms == now_ms for now_ms, tick in live)  # each frame read at exactly its own time
    assert [tick.ltt_ms for _, tick in live if tick.instrument_key == KEY] == expected  # none skipped
    assert lockstep.sent == lockstep.received == len(seen) and lockstep.stalls == 0


async def test_lockstep_takes_no_other_clock(make_replay_server: MakeReplayServer) -> None:
    lockstep = Lockstep(VirtualClock(datetime.combine(REPLAY_DAY, REPLAY_START, IST)))
    with pytest.raises(ReplayError, match="lockstep's own clock"):
        await make_replay_server(lockstep=lockstep, clock=VirtualClock(datetime.combine(REPLAY_DAY, REPLAY_START, IST)))


async def test_lockstep_time_still_moves_when_the_consumer_is_gone(make_replay_server: MakeReplayServer) -> None:
    clock = VirtualClock(datetime.combine(REPLAY_DAY, REPLAY_START, IST))
    lockstep = Lockstep(clock)
    server = await make_replay_server(lockstep=lockstep)
    async with websockets.connect(await authorized_uri(server)) as ws:
        await ws.send(request("sub", "ltpc"))
        await recv_frame(ws)  # market_info, then never acknowledged: the connection goes away
    backoff = datetime.combine(REPLAY_DAY, time(9, 20), IST)  # a client waiting to reconnect
    await asyncio.wait_for(clock.sleep_until(backoff), 10)
    assert clock.now() == backoff and lockstep.stalls == 0
