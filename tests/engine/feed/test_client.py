"""MarketDataClient against a loopback Upstox stand-in (`test_client_stub.StubUpstox`): streaming, limits,
every fault mode, token handling and the watchdog. Assertions are on values: per-minute OHLC of what the client
delivered equals the server's own 1-minute candles, ltt strictly increasing per key, exact counters."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from engine.clock import SimulatedClock
from engine.feed.client import FeedState, MarketDataClient, SubscriptionLimitError
from engine.feed.limits import UnknownModeError
from engine.models import IST, MarketStatus, Tick
from tests.engine.feed.test_client_stub import StubUpstox

START = datetime(2024, 6, 4, 10, 0, 0, tzinfo=IST)
SPEED = 100.0
ROOT = Path(__file__).resolve().parents[3]


def make_keys(count: int) -> list[str]:
    """The shipped universe's instrument keys (181), replicated with a suffix to reach `count`."""
    shipped: list[str] = []
    path = ROOT / "data" / "instruments.parquet"
    if path.exists():
        import pyarrow.parquet as pq

        shipped = sorted(pq.read_table(path, columns=["instrument_key"]).column(0).to_pylist())
    shipped = shipped or [f"NSE_EQ|INE{n:06d}01010" for n in range(count)]
    return [shipped[i % len(shipped)] + ("" if i < len(shipped) else f"-{i // len(shipped)}") for i in range(count)]


class Collector:
    def __init__(self) -> None:
        self.ticks: dict[str, list[Tick]] = defaultdict(list)
        self.states: list[FeedState] = []
        self.statuses: list[dict[str, MarketStatus]] = []

    async def on_ticks(self, ticks: list[Tick]) -> None:
        for tick in ticks:
            self.ticks[tick.instrument_key].append(tick)

    async def on_state(self, state: FeedState) -> None:
        self.states.append(state)

    async def on_market_status(self, status: dict[str, MarketStatus]) -> None:
        self.statuses.append(status)


def make_client(stub: StubUpstox, collector: Collector, token: Callable[[], str] | None = None, **kwargs: object):
    return MarketDataClient(
        api_url=stub.api_url,
        token_provider=token or (lambda: "token-1"),
        clock=stub.clock,
        on_ticks=collector.on_ticks,
        on_state=collector.on_state,
        on_market_status=collector.on_market_status,
        reconnect_base_seconds=0.5,
        reconnect_max_seconds=5.0,
        # 10 s of clock is 100 ms of wall at speed 100: a busy CI box would trip it. Watchdog tests pass their own.
        **{"watchdog_seconds": 60.0, **kwargs},  # type: ignore[arg-type]
    )


async def run_for(
    client: MarketDataClient,
    seconds: float,
    actions: Sequence[tuple[float, Callable[[], object]]] = (),
    tail_seconds: float = 5.0,
) -> FeedState:
    """Run the client; once it first streams, fire `actions` at their clock offsets; after `seconds` of clock
    time, wait until it streams again (reconnect + backfill done) plus `tail_seconds`, then stop it.
    Offsets count from the first STREAMING because connecting costs tens of wall ms (seconds at speed 100)."""
    clock = client.clock

    async def streaming() -> None:
        while client.state is not FeedState.STREAMING:
            await asyncio.sleep(0.002)

    async def driver() -> None:
        await streaming()
        streaming_at = clock.now()
        for offset, action in actions:
            await clock.sleep_until(streaming_at + timedelta(seconds=offset))
            result = action()
            if isinstance(result, Awaitable):
                await result
        await clock.sleep_until(streaming_at + timedelta(seconds=seconds))
        await streaming()
        await clock.sleep(tail_seconds)
        await client.stop()

    driving = asyncio.create_task(driver())
    try:
        return await asyncio.wait_for(client.run(), timeout=60)
    finally:
        driving.cancel()


def assert_complete(stub: StubUpstox, collector: Collector, keys: list[str]) -> None:
    """No duplicate / out-of-order tick, no missing minute up to the end of the run, and every minute's OHLC
    equals the server's candle (the first and last minutes are partial by construction and skipped)."""
    end_minute = int(stub.clock.now().timestamp()) // 60
    for key in keys:
        ticks = collector.ticks[key]
        assert ticks, f"no ticks for {key}"
        ltts = [tick.ltt_ms for tick in ticks]
        assert all(a < b for a, b in itertools.pairwise(ltts)), f"{key}: ltt not strictly increasing"
        volumes = [tick.volume for tick in ticks]
        assert volumes == sorted(volumes), f"{key}: cumulative volume went down"
        by_minute: dict[int, list[float]] = defaultdict(list)
        for tick in ticks:
            by_minute[tick.ltt_ms // 60_000].append(tick.ltp)
        first, last = min(by_minute), max(by_minute)
        assert last >= end_minute - 1, f"{key}: ticks stop at minute {last}, the run ended in {end_minute}"
        assert sorted(by_minute) == list(range(first, last + 1)), f"{key}: missing minutes"
        candles = {
            int(datetime.fromisoformat(row[0]).timestamp()) // 60: row[1:5]
            for row in stub.candles(key, ltts[-1] // 1000)
        }
        for minute in range(first + 1, last):
            prices = by_minute[minute]
            assert [prices[0], max(prices), min(prices), prices[-1]] == candles[minute], f"{key} minute {minute}"


@pytest.fixture
async def stub():
    keys = make_keys(20)
    async with StubUpstox(keys=keys, clock=SimulatedClock(START, speed=SPEED)) as server:
        yield server


# ---- limits ------------------------------------------------------------------------------------------------


async def test_subscription_limits_raise_and_change_nothing() -> None:
    client = MarketDataClient(api_url="http://127.0.0.1:9", token_provider=lambda: "t", clock=SimulatedClock(START))
    await client.subscribe([f"NSE_EQ|K{i}" for i in range(2000)], "full")
    with pytest.raises(SubscriptionLimitError, match="individual limit of 2000"):
        await client.subscribe(["NSE_EQ|ONE-MORE"], "full")
    with pytest.raises(SubscriptionLimitError, match="combined"):  # 2000 full + 1 ltpc → full capped at 1500
        await client.subscribe(["NSE_EQ|LTPC-1"], "ltpc")
    assert {mode: len(keys) for mode, keys in client.subscriptions.items()} == {"full": 2000}

    await client.unsubscribe([f"NSE_EQ|K{i}" for i in range(500)])
    await client.subscribe([f"NSE_EQ|L{i}" for i in range(2000)], "ltpc")  # 1500 full + 2000 ltpc: at both caps
    with pytest.raises(SubscriptionLimitError, match="'ltpc'"):
        await client.subscribe(["NSE_EQ|L-X"], "ltpc")
    await client.change_mode([f"NSE_EQ|K{i}" for i in range(500, 550)], "full_d30")
    with pytest.raises(SubscriptionLimitError, match="limit of 50"):
        await client.change_mode(["NSE_EQ|K600"], "full_d30")
    assert {mode: len(keys) for mode, keys in client.subscriptions.items()} == {
        "full": 1450, "ltpc": 2000, "full_d30": 50,
    }
    with pytest.raises(UnknownModeError):
        await client.subscribe(["NSE_EQ|K1"], "full_d5")
    with pytest.raises(ValueError, match="not subscribed"):
        await client.change_mode(["NSE_EQ|NOPE"], "ltpc")


async def test_ltpc_alone_allows_5000_keys() -> None:
    client = MarketDataClient(api_url="http://127.0.0.1:9", token_provider=lambda: "t", clock=SimulatedClock(START))
    await client.subscribe([f"NSE_EQ|K{i}" for i in range(5000)], "ltpc")
    with pytest.raises(SubscriptionLimitError):
        await client.subscribe(["NSE_EQ|K5000"], "ltpc")


# ---- streaming -----------------------------------------------------------------------------------------------


async def test_streams_every_tick_and_sends_v3_binary_json_requests(stub: StubUpstox) -> None:
    collector = Collector()
    client = make_client(stub, collector)
    await client.subscribe(stub.keys, "full")
    state = await run_for(client, 130)
    assert state is FeedState.STOPPED
    assert_complete(stub, collector, stub.keys)
    for key in stub.keys:  # one tick per key per second, none missing
        seconds = [tick.ltt_ms // 1000 for tick in collector.ticks[key]]
        assert seconds == list(range(seconds[0], seconds[0] + len(seconds))) and len(seconds) >= 130
    assert client.stats.ticks == sum(len(ticks) for ticks in collector.ticks.values())
    assert (client.stats.reconnects, client.stats.duplicates_dropped, client.stats.malformed_frames) == (0, 0, 0)
    request = stub.requests[0]
    assert request["method"] == "sub" and request["data"]["mode"] == "full"
    assert sorted(request["data"]["instrumentKeys"]) == sorted(stub.keys) and request["guid"]
    assert stub.authorize_calls == ["Bearer token-1"]
    assert collector.statuses[0] == {"NSE_EQ": MarketStatus.NORMAL_OPEN}
    assert collector.states == [FeedState.CONNECTING, FeedState.STREAMING, FeedState.STOPPED]
    tick = collector.ticks[stub.keys[3]][10]
    assert tick.ltp == stub.tick(stub.keys[3], tick.ltt_ms // 1000).ltp
    assert tick.volume == stub.tick(stub.keys[3], tick.ltt_ms // 1000).volume


async def test_200_instruments_stream_through_an_outage_without_a_missing_minute() -> None:
    keys = make_keys(200)
    assert len(set(keys)) == 200
    # A tick every 5 s per key keeps the loopback pair light enough for 2 cores; backfill is wall-time bound.
    async with StubUpstox(keys=keys, clock=SimulatedClock(START, speed=SPEED), tick_seconds=5) as stub:
        collector = Collector()
        # At 100x, 10 s of clock is 100 ms of wall: the SDK's backfill threads share the GIL with the in-process
        # server, so a looser watchdog keeps this test about the outage alone.
        client = make_client(stub, collector, watchdog_seconds=60.0)
        await client.subscribe(keys, "full")
        await run_for(client, 120, [(40, lambda: stub.outage(75))])
    assert_complete(stub, collector, keys)
    # one reconnect for the outage; on a loaded machine the watchdog may fire once more right after it (100x clock)
    assert 1 <= client.stats.reconnects <= 2 and client.stats.backfill_failures == 0
    assert client.stats.backfilled_bars >= 200 * 75 // 60  # at least the fully missed minutes of every key


# ---- faults --------------------------------------------------------------------------------------------------


async def test_dropped_connection_reconnects_resubscribes_and_backfills(stub: StubUpstox) -> None:
    collector = Collector()
    client = make_client(stub, collector)
    await client.subscribe(stub.keys[:12], "full")
    await client.subscribe(stub.keys[12:], "ltpc")
    await run_for(client, 140, [(30, lambda: stub.outage(100))])
    assert_complete(stub, collector, stub.keys)
    stats = client.stats
    assert stats.reconnects == 1 and stats.backfill_failures == 0
    # 100 s outage: at least one whole minute missed per key, filled from candles.
    assert stats.backfilled_bars >= len(stub.keys) and stats.backfilled_ticks > 0
    subs = [r for r in stub.requests if r["method"] == "sub"]
    assert [(r["data"]["mode"], len(r["data"]["instrumentKeys"])) for r in subs] == [("full", 12), ("ltpc", 8)] * 2
    assert stub.candle_calls == len(stub.keys)
    assert FeedState.RECONNECTING in collector.states and FeedState.BACKFILLING in collector.states
    assert collector.states[-1] is FeedState.STOPPED


async def test_stalled_socket_is_reconnected_by_the_watchdog(stub: StubUpstox) -> None:
    collector = Collector()
    client = make_client(stub, collector, watchdog_seconds=10.0)
    await client.subscribe(stub.keys, "full")
    await run_for(client, 120, [(30, lambda: stub.stall(80))])
    assert client.stats.watchdog_timeouts >= 1
    assert client.stats.reconnects >= 1
    assert_complete(stub, collector, stub.keys)


async def test_malformed_frame_is_counted_and_skipped(stub: StubUpstox) -> None:
    collector = Collector()
    client = make_client(stub, collector)
    await client.subscribe(stub.keys, "full")
    await run_for(client, 20, [(5, lambda: stub.inject("malformed"))])
    assert client.stats.malformed_frames == 1 and client.stats.reconnects == 0
    assert_complete(stub, collector, stub.keys)


async def test_duplicated_ticks_are_dropped_and_counted(stub: StubUpstox) -> None:
    collector = Collector()
    client = make_client(stub, collector)
    await client.subscribe(stub.keys, "full")
    await run_for(client, 20, [(5, lambda: stub.inject("duplicate")), (10, lambda: stub.inject("duplicate"))])
    assert client.stats.duplicates_dropped == 2 * len(stub.keys)
    assert client.stats.out_of_order_dropped == 0
    assert_complete(stub, collector, stub.keys)


async def test_out_of_order_ticks_are_dropped_and_counted(stub: StubUpstox) -> None:
    collector = Collector()
    client = make_client(stub, collector)
    await client.subscribe(stub.keys, "ltpc")
    await run_for(client, 20, [(5, lambda: stub.inject("out_of_order"))])
    assert client.stats.out_of_order_dropped == len(stub.keys)
    assert client.stats.duplicates_dropped == 0
    assert_complete(stub, collector, stub.keys)


async def test_rejected_token_stops_in_token_expired_without_a_retry_storm(stub: StubUpstox) -> None:
    collector = Collector()
    client = make_client(stub, collector)  # provider keeps returning the now-stale token-1
    await client.subscribe(stub.keys, "full")

    def revoke() -> None:
        stub.token = "token-2"
        stub.drop()

    state = await run_for(client, 600, [(10, revoke)])  # returns on its own, long before 600 s
    assert state is FeedState.TOKEN_EXPIRED and client.state is FeedState.TOKEN_EXPIRED
    assert stub.authorize_calls == ["Bearer token-1", "Bearer token-1"]  # first connect + one refused retry
    assert collector.states[-1] is FeedState.TOKEN_EXPIRED
    assert "401" in client.stats.last_error


async def test_handshake_403_is_token_expired(stub: StubUpstox) -> None:
    stub.reject_ws = True
    client = make_client(stub, Collector())
    await client.subscribe(stub.keys[:2], "ltpc")
    assert await run_for(client, 600) is FeedState.TOKEN_EXPIRED
    assert "403" in client.stats.last_error and stub.connections == 0


async def test_reconnect_authorizes_with_the_current_token(stub: StubUpstox) -> None:
    token = {"value": "token-1"}
    collector = Collector()
    client = make_client(stub, collector, token=lambda: token["value"])
    await client.subscribe(stub.keys, "full")

    def rotate() -> None:
        token["value"] = stub.token = "token-2"
        stub.drop()

    assert await run_for(client, 60, [(15, rotate)]) is FeedState.STOPPED
    assert stub.authorize_calls == ["Bearer token-1", "Bearer token-2"]
    assert client.stats.reconnects == 1
    assert_complete(stub, collector, stub.keys)


async def test_backoff_grows_while_the_server_refuses(stub: StubUpstox) -> None:
    collector = Collector()
    client = make_client(stub, collector)
    await client.subscribe(stub.keys[:2], "full")
    await run_for(client, 80, [(5, lambda: stub.outage(60))])
    refused = len(stub.authorize_calls) - 2  # minus the first connect and the successful reconnect
    # Full-jitter exponential backoff capped at 5 s: a handful of attempts in 60 s, not hundreds.
    assert 3 <= refused <= 40
    assert client.stats.reconnects == 1
    assert_complete(stub, collector, stub.keys[:2])


# ---- watchdog and market state -------------------------------------------------------------------------------


async def test_no_watchdog_alarm_when_market_info_says_closed(stub: StubUpstox) -> None:
    stub.status = MarketStatus.NORMAL_CLOSE
    collector = Collector()
    client = make_client(stub, collector, watchdog_seconds=5.0)
    await client.subscribe(stub.keys[:2], "full")
    await run_for(client, 60, [(5, lambda: stub.stall(50))])
    assert client.stats.watchdog_timeouts == 0 and client.stats.reconnects == 0
    assert client.market_status == {"NSE_EQ": MarketStatus.NORMAL_CLOSE}


class ClosedCalendar:
    def session(self, day: date) -> None:
        return None


async def test_no_watchdog_alarm_when_the_calendar_says_closed(stub: StubUpstox) -> None:
    client = make_client(stub, Collector(), watchdog_seconds=5.0, calendar=ClosedCalendar())
    await client.subscribe(stub.keys[:2], "full")
    await run_for(client, 40, [(5, lambda: stub.stall(30))])
    assert client.stats.watchdog_timeouts == 0 and client.stats.reconnects == 0


async def test_market_info_updates_reach_the_callback(stub: StubUpstox) -> None:
    collector = Collector()
    client = make_client(stub, collector)
    await client.subscribe(stub.keys[:2], "full")
    await run_for(client, 10, [(5, lambda: stub.set_status(MarketStatus.CLOSING_START))])
    statuses = [status["NSE_EQ"] for status in collector.statuses]
    assert statuses == [MarketStatus.NORMAL_OPEN, MarketStatus.CLOSING_START]
    assert not client.segment_open(stub.clock.now())


async def test_nse_calendar_drives_segment_open() -> None:
    from engine.calendar import load_calendar

    client = MarketDataClient(
        api_url="http://127.0.0.1:9", token_provider=lambda: "t", clock=SimulatedClock(START), calendar=load_calendar()
    )
    assert client.segment_open(datetime(2024, 6, 4, 10, 0, tzinfo=IST))
    assert not client.segment_open(datetime(2024, 6, 4, 16, 0, tzinfo=IST))
    assert not client.segment_open(datetime(2024, 6, 8, 10, 0, tzinfo=IST))  # Saturday


async def test_a_failing_callback_is_counted_not_fatal(stub: StubUpstox) -> None:
    async def explode(ticks: list[Tick]) -> None:
        raise RuntimeError("strategy bug")

    client = MarketDataClient(
        api_url=stub.api_url, token_provider=lambda: "token-1", clock=stub.clock, on_ticks=explode
    )
    await client.subscribe(stub.keys[:2], "full")
    assert await run_for(client, 20) is FeedState.STOPPED
    assert client.stats.callback_errors >= 5 and client.stats.ticks >= 10


async def test_subscribe_while_streaming_sends_a_request(stub: StubUpstox) -> None:
    collector = Collector()
    client = make_client(stub, collector)
    await client.subscribe(stub.keys[:2], "full")
    await run_for(client, 30, [(5, lambda: client.subscribe(stub.keys[2:4], "ltpc")),
                              (10, lambda: client.unsubscribe(stub.keys[:1]))])
    methods = [(r["method"], r["data"].get("mode"), r["data"]["instrumentKeys"]) for r in stub.requests]
    assert methods == [("sub", "full", stub.keys[:2]), ("sub", "ltpc", stub.keys[2:4]), ("unsub", None, stub.keys[:1])]
    assert len(collector.ticks[stub.keys[1]]) - len(collector.ticks[stub.keys[0]]) >= 10  # key 0 stopped at 10 s
    assert len(collector.ticks[stub.keys[3]]) >= 8
    assert json.loads(json.dumps(stub.requests[0]))["data"]["instrumentKeys"] == stub.keys[:2]


async def test_a_token_provider_that_fails_means_token_expired(stub: StubUpstox) -> None:
    def no_token() -> str:
        raise KeyError("UPSTOX_ACCESS_TOKEN")

    client = make_client(stub, Collector(), token=no_token)
    await client.subscribe(stub.keys[:2], "full")
    assert await run_for(client, 600) is FeedState.TOKEN_EXPIRED
    assert "token provider failed" in client.stats.last_error and stub.authorize_calls == []


async def test_stop_while_connecting_ends_run_instead_of_streaming_on(stub: StubUpstox) -> None:
    client: MarketDataClient

    def token_then_stop() -> str:
        asyncio.get_running_loop().create_task(client.stop())  # runs while authorize is in flight: no socket yet
        return "token-1"

    client = make_client(stub, Collector(), token=token_then_stop)
    await client.subscribe(stub.keys[:2], "full")
    assert await asyncio.wait_for(client.run(), timeout=10) is FeedState.STOPPED
    assert client.stats.ticks == 0
