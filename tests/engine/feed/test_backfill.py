"""Backfill: candle parsing, tick synthesis inside each candle, and the SDK-backed candle source against the
replay server's intraday candle endpoint."""

from __future__ import annotations

from datetime import datetime, time

import pytest
import upstox_client

from engine.feed.backfill import MINUTE_MS, Candle, UpstoxIntradayCandles, parse_candles, synthesize_ticks
from engine.models import IST, Tick
from tests.engine.feed.conftest import REPLAY_KEYS, REPLAY_TOKEN, MakeReplayServer

T0 = datetime(2024, 6, 4, 10, 0, tzinfo=IST)
T0_MS = int(T0.timestamp() * 1000)
KEY = "NSE_EQ|INE002A01018"


def candle(minute: int, o: float, h: float, low: float, c: float, v: int = 100) -> Candle:
    return Candle(KEY, datetime.fromtimestamp((T0_MS + minute * MINUTE_MS) / 1000, IST), o, h, low, c, v)


def test_parse_candles_orders_oldest_first_and_skips_bad_rows() -> None:
    rows = [
        ["2024-06-04T10:02:00+05:30", 101, 103, 100, 102, 300, 0],
        ["2024-06-04T10:01:00+05:30", 100, 101.5, 99.5, 101, 200, 0],
        ["not a time", 1, 1, 1, 1, 1, 0],
        ["2024-06-04T10:03:00+05:30", 100, 99, 98, 100, 10, 0],  # high below open: inconsistent
        ["2024-06-04T10:04:00+05:30", 100, 101],  # short row
    ]
    parsed = parse_candles(KEY, rows)
    assert [(c.start.time(), c.open, c.high, c.low, c.close, c.volume) for c in parsed] == [
        (time(10, 1), 100.0, 101.5, 99.5, 101.0, 200),
        (time(10, 2), 101.0, 103.0, 100.0, 102.0, 300),
    ]
    assert parsed[0].start.tzinfo is not None and parsed[0].end_ms - parsed[0].start_ms == MINUTE_MS


def test_whole_missed_minutes_become_ticks_inside_their_candles() -> None:
    candles = [candle(0, 100, 102, 99, 101, 50), candle(1, 101, 101.5, 98, 98.5, 70), candle(2, 98.5, 99, 98, 99, 30)]
    template = Tick(KEY, 100.0, T0_MS - 1, volume=1000, close_prev=97.0, day_open=95.0, day_high=100.5, day_low=94.0)
    ticks = synthesize_ticks(candles, after_ms=T0_MS - 1, before_ms=T0_MS + 3 * MINUTE_MS, template=template)
    by_minute: dict[int, list[Tick]] = {}
    for tick in ticks:
        by_minute.setdefault((tick.ltt_ms - T0_MS) // MINUTE_MS, []).append(tick)
    # rising candle: open, low, high, close; falling: open, high, low, close
    assert [t.ltp for t in by_minute[0]] == [100, 99, 102, 101]
    assert [t.ltp for t in by_minute[1]] == [101, 101.5, 98, 98.5]
    assert [t.ltp for t in by_minute[2]] == [98.5, 98, 99]  # low == close collapses
    ltts = [t.ltt_ms for t in ticks]
    assert ltts == sorted(set(ltts)) and ltts[0] == T0_MS and ltts[-1] < T0_MS + 3 * MINUTE_MS
    # each whole minute's volume lands once, on its close tick; cumulative volume continues the template's
    assert [t.ltq for t in ticks if t.ltq] == [50, 70, 30]
    assert ticks[-1].volume == 1000 + 150
    assert (ticks[-1].close_prev, ticks[-1].day_open, ticks[-1].day_high, ticks[-1].day_low) == (97.0, 95.0, 102, 94.0)


def test_partly_seen_minutes_get_only_their_missed_part_and_no_volume() -> None:
    candles = [candle(0, 100, 102, 99, 101), candle(1, 101, 103, 100, 102), candle(2, 102, 104, 101, 103)]
    after = T0_MS + 30_000  # last tick seen at 10:00:30
    before = T0_MS + 2 * MINUTE_MS + 20_000  # first live tick after the gap at 10:02:20
    ticks = synthesize_ticks(candles, after_ms=after, before_ms=before)
    assert all(after < t.ltt_ms < before for t in ticks)
    first_minute = [t.ltp for t in ticks if t.ltt_ms < T0_MS + MINUTE_MS]
    assert first_minute == [99, 102, 101]  # no open (seen already), extremes then close
    assert [t.ltq for t in ticks if t.ltq] == [100]  # only 10:01 was missed whole
    last_minute = [t for t in ticks if t.ltt_ms >= T0_MS + 2 * MINUTE_MS]
    assert [t.ltp for t in last_minute] == [102, 101, 104, 103] and last_minute[-1].ltt_ms == before - 1


def test_no_room_means_no_ticks_and_tiny_room_keeps_the_close() -> None:
    c = candle(0, 100, 102, 99, 101)
    assert synthesize_ticks([c], after_ms=T0_MS + 59_999, before_ms=T0_MS + 60_000) == []
    squeezed = synthesize_ticks([c], after_ms=T0_MS + 59_997, before_ms=T0_MS + 60_000)
    assert [t.ltp for t in squeezed] == [102, 101] and [t.ltt_ms for t in squeezed] == [T0_MS + 59_998, T0_MS + 59_999]


def test_what_was_seen_and_what_came_live_of_a_minute_is_not_backfilled_again() -> None:
    """A replayed minute holds two derived ticks (open, close): one seen before the gap, the other after it."""
    seen_open = candle(0, 100, 101, 100, 101)  # 10:00 seen up to its open (100), its close (101) missed
    seen_whole = candle(1, 101, 101, 100.5, 100.5)  # 10:01 seen in full before the gap: nothing to add
    live_close = candle(2, 102, 103, 102, 103)  # 10:02: its open missed, its close (103) came live
    template = Tick(KEY, 100.0, T0_MS + 1_000, volume=500)
    ticks = synthesize_ticks([seen_open], after_ms=T0_MS + 1_000, before_ms=T0_MS + MINUTE_MS, template=template,
                             seen_prices=[100.0])
    assert [t.ltp for t in ticks] == [101.0]  # the missed close only, not the open again
    assert synthesize_ticks([seen_whole], after_ms=T0_MS + MINUTE_MS + 50_000, before_ms=T0_MS + 3 * MINUTE_MS,
                            seen_prices=[101.0, 100.5]) == []
    ticks = synthesize_ticks([live_close], after_ms=T0_MS + MINUTE_MS, before_ms=T0_MS + 2 * MINUTE_MS + 40_000,
                             live_prices=[103.0])
    assert [t.ltp for t in ticks] == [102.0]  # its open; the close comes live
    unmatched = synthesize_ticks([live_close], after_ms=T0_MS + MINUTE_MS, before_ms=T0_MS + 2 * MINUTE_MS + 40_000,
                                 live_prices=[102.5])
    assert [t.ltp for t in unmatched] == [102.0, 103.0]  # live prices that are not the path's end: path kept


async def test_sdk_candle_source_reads_the_replay_server(make_replay_server: MakeReplayServer) -> None:
    server = await make_replay_server(start=time(9, 40))
    default_host = upstox_client.Configuration().host
    source = UpstoxIntradayCandles(server.api_url, lambda: REPLAY_TOKEN)
    fetched = await source.fetch([*REPLAY_KEYS, "NSE_EQ|UNKNOWN"])
    assert sorted(fetched) == sorted(REPLAY_KEYS)  # the unknown key's 400 is skipped, not fatal
    for key in REPLAY_KEYS:
        expected = server.intraday_candles(key, "minutes", 1)[::-1]
        got = fetched[key]
        assert len(got) >= 24  # 09:15 .. 09:39 complete minutes
        assert [[c.start.isoformat(), c.open, c.high, c.low, c.close, c.volume] for c in got] == [
            row[:6] for row in expected[: len(got)]
        ]
    # a fresh Configuration per fetch: the SDK's shared default host is untouched
    assert upstox_client.Configuration().host == default_host == "https://api.upstox.com"


@pytest.mark.parametrize("interval", [1, 5])
async def test_sdk_candle_source_interval(make_replay_server: MakeReplayServer, interval: int) -> None:
    server = await make_replay_server(start=time(9, 40))
    source = UpstoxIntradayCandles(server.api_url, lambda: REPLAY_TOKEN, interval_minutes=interval)
    fetched = await source.fetch([REPLAY_KEYS[0]])
    candles = fetched[REPLAY_KEYS[0]]
    assert {c.interval_ms for c in candles} == {interval * MINUTE_MS}
    assert all(c.start.minute % interval == 0 for c in candles)


async def test_refused_token_stops_the_candle_requests_at_the_first_refusal() -> None:
    from upstox_client.rest import ApiException

    class RefusingApi:
        calls = 0

        def get_intra_day_candle_data(self, *_args: object, **_kwargs: object) -> None:
            RefusingApi.calls += 1
            raise ApiException(status=401, reason="Unauthorized")

    class RefusedCandles(UpstoxIntradayCandles):
        def _api(self, token: str) -> RefusingApi:
            return RefusingApi()

    source = RefusedCandles("http://127.0.0.1:9", lambda: "stale", max_concurrency=1)
    keys = [f"NSE_EQ|K{n}" for n in range(50)]
    assert await source.fetch(keys) == {}
    assert RefusingApi.calls == 1  # a dead token is not tried once per key
