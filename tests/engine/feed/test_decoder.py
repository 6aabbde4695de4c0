"""The decoders on bytes written by the SDK's own classes (as Upstox sends them) and by our encoder.

Every test runs on `decode_frame_python` and, when the C extension is built, on `decode_frame_native`
(`test_fastfeed.py` checks that the two agree on any input)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import given, settings
from hypothesis import strategies as st
from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as sdk

from engine.feed.decoder import (
    DecodedFrame,
    FeedMode,
    FrameDecodeError,
    FrameKind,
    decode_frame_native,
    decode_frame_python,
    encode_market_info,
    encode_ticks,
)
from engine.models import MarketStatus, Tick

KEY = "NSE_EQ|INE002A01018"
Decode = Callable[[bytes], DecodedFrame]
DECODERS = {"python": decode_frame_python, "native": decode_frame_native}


@pytest.fixture(scope="module", params=[name for name, decode in DECODERS.items() if decode is not None])
def decode(request: pytest.FixtureRequest) -> Decode:
    return DECODERS[request.param]  # type: ignore[return-value]


def _sdk_full_frame(kind: int = sdk.live_feed) -> bytes:
    response = sdk.FeedResponse(type=kind, currentTs=1_717_472_700_123)
    market = response.feeds[KEY].fullFeed.marketFF
    response.feeds[KEY].requestMode = sdk.full_d5
    market.ltpc.ltp, market.ltpc.ltt, market.ltpc.ltq, market.ltpc.cp = 2950.5, 1_717_472_699_000, 25, 2931.0
    market.marketLevel.bidAskQuote.add(bidQ=10, bidP=2950.45, askQ=7, askP=2950.6)
    market.marketLevel.bidAskQuote.add(bidQ=11, bidP=2950.4, askQ=8, askP=2950.65)
    # the intraday candle first, to prove the decoder looks for "1d" rather than taking the first candle
    market.marketOHLC.ohlc.add(interval="I1", open=2949.0, high=2951.0, low=2948.0, close=2950.5, vol=900)
    market.marketOHLC.ohlc.add(interval="1d", open=2935.0, high=2960.0, low=2930.05, close=2950.5, vol=1_200_300)
    market.atp, market.vtt, market.oi, market.tbq, market.tsq = 2944.12, 1_200_300, 0.0, 5000.0, 6000.0
    return response.SerializeToString()


def test_full_mode_frame_from_the_sdk_schema_decodes_every_mapped_field(decode: Decode) -> None:
    frame = decode(_sdk_full_frame())
    assert frame.kind is FrameKind.LIVE_FEED
    assert frame.current_ts_ms == 1_717_472_700_123
    assert frame.market_status is None
    assert frame.ticks == [
        Tick(KEY, ltp=2950.5, ltt_ms=1_717_472_699_000, ltq=25, volume=1_200_300, close_prev=2931.0,
             day_open=2935.0, day_high=2960.0, day_low=2930.05, atp=2944.12, oi=0.0, bid=2950.45, ask=2950.6)
    ]


def test_initial_feed_kind(decode: Decode) -> None:
    assert decode(_sdk_full_frame(sdk.initial_feed)).kind is FrameKind.INITIAL_FEED


def test_ltpc_index_and_option_greeks_feeds(decode: Decode) -> None:
    response = sdk.FeedResponse(type=sdk.live_feed, currentTs=5)
    ltpc = response.feeds["NSE_EQ|A"].ltpc
    ltpc.ltp, ltpc.ltt, ltpc.ltq, ltpc.cp = 101.5, 1000, 3, 100.0
    index = response.feeds["NSE_INDEX|Nifty 50"].fullFeed.indexFF
    index.ltpc.ltp, index.ltpc.ltt, index.ltpc.cp = 22_500.5, 2000, 22_400.0
    index.marketOHLC.ohlc.add(interval="1d", open=22_410.0, high=22_550.0, low=22_390.0, close=22_500.5)
    greeks = response.feeds["NSE_FO|1"].firstLevelWithGreeks
    greeks.ltpc.ltp, greeks.ltpc.ltt = 55.0, 3000
    greeks.firstDepth.bidP, greeks.firstDepth.askP = 54.9, 55.1
    greeks.vtt, greeks.oi, greeks.optionGreeks.delta = 777, 12_000.0, 0.5
    ticks = {tick.instrument_key: tick for tick in decode(response.SerializeToString()).ticks}
    assert ticks["NSE_EQ|A"] == Tick("NSE_EQ|A", 101.5, 1000, ltq=3, close_prev=100.0)
    assert ticks["NSE_INDEX|Nifty 50"] == Tick(
        "NSE_INDEX|Nifty 50", 22_500.5, 2000, close_prev=22_400.0, day_open=22_410.0, day_high=22_550.0,
        day_low=22_390.0,
    )
    assert ticks["NSE_FO|1"] == Tick("NSE_FO|1", 55.0, 3000, volume=777, oi=12_000.0, bid=54.9, ask=55.1)


def test_market_info_maps_segment_status(decode: Decode) -> None:
    response = sdk.FeedResponse(type=sdk.market_info, currentTs=9)
    response.marketInfo.segmentStatus["NSE_EQ"] = sdk.NORMAL_OPEN
    response.marketInfo.segmentStatus["NSE_FO"] = sdk.PRE_OPEN_END
    frame = decode(response.SerializeToString())
    assert frame == DecodedFrame(
        FrameKind.MARKET_INFO, 9, [], {"NSE_EQ": MarketStatus.NORMAL_OPEN, "NSE_FO": MarketStatus.PRE_OPEN_END}
    )


@pytest.mark.parametrize("mode", list(FeedMode))
def test_encoder_round_trips_through_the_sdk_classes(decode: Decode, mode: FeedMode) -> None:
    tick = Tick(KEY, 2950.5, 1_717_472_699_000, 25, 1_200_300, 2931.0, 2935.0, 2960.0, 2930.05, 2944.12, 0.0,
                2950.45, 2950.6)
    data = encode_ticks([tick], current_ts_ms=77, mode=mode, day_start_ms=1_717_439_400_000)
    parsed = sdk.FeedResponse.FromString(data)  # Upstox's own classes accept our bytes
    assert parsed.feeds[KEY].ltpc.ltp == 2950.5 or parsed.feeds[KEY].WhichOneof("FeedUnion") != "ltpc"
    decoded = decode(data)
    assert decoded.kind is FrameKind.LIVE_FEED and decoded.current_ts_ms == 77
    [back] = decoded.ticks
    assert (back.instrument_key, back.ltp, back.ltt_ms, back.ltq, back.close_prev) == (
        KEY, 2950.5, 1_717_472_699_000, 25, 2931.0
    )
    if mode in (FeedMode.FULL, FeedMode.FULL_D30):
        assert back == tick
        assert parsed.feeds[KEY].requestMode == (sdk.full_d5 if mode is FeedMode.FULL else sdk.full_d30)
        assert parsed.feeds[KEY].fullFeed.marketFF.marketOHLC.ohlc[0].ts == 1_717_439_400_000


def test_encode_market_info_round_trip(decode: Decode) -> None:
    statuses = {"NSE_EQ": MarketStatus.NORMAL_CLOSE, "BSE_EQ": MarketStatus.PRE_OPEN_START}
    data = encode_market_info(statuses, current_ts_ms=1)
    assert sdk.FeedResponse.FromString(data).marketInfo.segmentStatus["NSE_EQ"] == sdk.NORMAL_CLOSE
    assert decode(data).market_status == statuses


@pytest.mark.parametrize("data", [b"\xff\xff\xff\xff", b"\x12\x50abc", b"\x08\x09"])
def test_bytes_that_are_not_a_feed_response_raise_a_clear_error(decode: Decode, data: bytes) -> None:
    with pytest.raises(FrameDecodeError, match="FeedResponse"):
        decode(data)


def test_empty_frame_is_an_empty_initial_feed(decode: Decode) -> None:
    assert decode(b"") == DecodedFrame(FrameKind.INITIAL_FEED, 0, [], None)


def test_an_empty_feed_gives_no_tick_and_an_untraded_full_feed_gives_its_values(decode: Decode) -> None:
    response = sdk.FeedResponse(type=sdk.live_feed)
    response.feeds["NSE_EQ|EMPTY"].requestMode = sdk.full_d5
    untraded = response.feeds["NSE_EQ|UNTRADED"].fullFeed.marketFF
    untraded.ltpc.cp = 50.0
    untraded.marketLevel.bidAskQuote.add(bidP=49.5, askP=50.5)
    assert decode(response.SerializeToString()).ticks == [
        Tick("NSE_EQ|UNTRADED", 0.0, 0, close_prev=50.0, bid=49.5, ask=50.5)
    ]


# ---- property: decode_frame agrees with a plain reading of the SDK's own dict view ----------------------


money = st.floats(min_value=0.05, max_value=1e6, allow_nan=False, allow_infinity=False)
maybe_money = st.one_of(st.just(0.0), money)
counts = st.integers(min_value=0, max_value=2**40)


@st.composite
def sdk_frames(draw: st.DrawFn) -> bytes:
    response = sdk.FeedResponse(type=draw(st.sampled_from([sdk.initial_feed, sdk.live_feed])), currentTs=draw(counts))
    for n in range(draw(st.integers(min_value=0, max_value=6))):
        feed = response.feeds[f"NSE_EQ|K{n}"]
        shape = draw(st.sampled_from(["market", "index", "ltpc", "greeks", "empty"]))
        if shape == "market":
            market = feed.fullFeed.marketFF
            ltpc = market.ltpc
            market.atp, market.vtt, market.oi = draw(maybe_money), draw(counts), draw(maybe_money)
            for _ in range(draw(st.integers(min_value=0, max_value=3))):
                market.marketLevel.bidAskQuote.add(bidP=draw(maybe_money), askP=draw(maybe_money), bidQ=draw(counts))
            ohlc = market.marketOHLC.ohlc
        elif shape == "index":
            ltpc = feed.fullFeed.indexFF.ltpc
            ohlc = feed.fullFeed.indexFF.marketOHLC.ohlc
        elif shape == "greeks":
            first = feed.firstLevelWithGreeks
            ltpc = first.ltpc
            first.firstDepth.bidP, first.firstDepth.askP = draw(maybe_money), draw(maybe_money)
            first.vtt, first.oi = draw(counts), draw(maybe_money)
            ohlc = None
        elif shape == "ltpc":
            ltpc = feed.ltpc
            ohlc = None
        else:
            feed.requestMode = sdk.full_d5
            continue
        ltpc.ltp, ltpc.ltt, ltpc.ltq, ltpc.cp = draw(maybe_money), draw(counts), draw(counts), draw(maybe_money)
        if ohlc is not None:
            for interval in draw(st.lists(st.sampled_from(["1d", "I1", "I30"]), max_size=3, unique=True)):
                ohlc.add(interval=interval, open=draw(money), high=draw(money), low=draw(money), vol=draw(counts))
    return response.SerializeToString()


def _reference_tick(key: str, feed: dict) -> Tick | None:
    """The mapping table of engine/feed/decoder.py, applied to MessageToDict's output."""
    def num(d: dict, name: str) -> float:
        return float(d.get(name, 0.0))

    def day(ohlc: list[dict]) -> tuple[float, float, float]:
        for candle in ohlc:
            if candle.get("interval") == "1d":
                return num(candle, "open"), num(candle, "high"), num(candle, "low")
        return 0.0, 0.0, 0.0

    def base(ltpc: dict) -> tuple[float, int, int, float]:
        return num(ltpc, "ltp"), int(ltpc.get("ltt", 0)), int(ltpc.get("ltq", 0)), num(ltpc, "cp")

    if "fullFeed" in feed and "marketFF" in feed["fullFeed"]:
        market = feed["fullFeed"]["marketFF"]
        ltp, ltt, ltq, cp = base(market.get("ltpc", {}))
        quotes = market.get("marketLevel", {}).get("bidAskQuote", [])
        bid, ask = (num(quotes[0], "bidP"), num(quotes[0], "askP")) if quotes else (0.0, 0.0)
        day_range = day(market.get("marketOHLC", {}).get("ohlc", []))
        volume = int(market.get("vtt", 0))
        return Tick(key, ltp, ltt, ltq, volume, cp, *day_range, num(market, "atp"), num(market, "oi"), bid, ask)
    if "fullFeed" in feed and "indexFF" in feed["fullFeed"]:
        index = feed["fullFeed"]["indexFF"]
        ltp, ltt, ltq, cp = base(index.get("ltpc", {}))
        return Tick(key, ltp, ltt, ltq, 0, cp, *day(index.get("marketOHLC", {}).get("ohlc", [])))
    if "firstLevelWithGreeks" in feed:
        first = feed["firstLevelWithGreeks"]
        ltp, ltt, ltq, cp = base(first.get("ltpc", {}))
        depth = first.get("firstDepth", {})
        return Tick(key, ltp, ltt, ltq, int(first.get("vtt", 0)), cp, 0.0, 0.0, 0.0, 0.0, num(first, "oi"),
                    num(depth, "bidP"), num(depth, "askP"))
    if "ltpc" in feed:
        ltp, ltt, ltq, cp = base(feed["ltpc"])
        return Tick(key, ltp, ltt, ltq, 0, cp)
    return None


@settings(max_examples=200, deadline=None)
@given(sdk_frames())
def test_decode_frame_matches_a_plain_reading_of_the_sdk_view(decode: Decode, data: bytes) -> None:
    as_dict = MessageToDict(sdk.FeedResponse.FromString(data))
    expected = {
        key: tick for key, feed in as_dict.get("feeds", {}).items()
        if (tick := _reference_tick(key, feed)) is not None
    }
    frame = decode(data)
    assert {tick.instrument_key: tick for tick in frame.ticks} == expected
    assert len(frame.ticks) == len(expected)
    assert frame.current_ts_ms == int(as_dict.get("currentTs", 0))
