"""The native decoder (engine/feed/_fastfeed.c) against the reference `decode_frame_python` (upb classes).

Both must agree on every input: the same DecodedFrame for valid bytes (ticks compared by instrument key: the
native decoder keeps wire order, upb its hash-map order), and FrameDecodeError from both for malformed bytes.
Frames come from the generated classes, from a schema-aware wire-format generator (unknown fields of every wire
type, groups, wrong wire types, repeated and merged sub-messages, oneof switches, duplicate map keys, bad UTF-8),
from mutations of valid frames and from random bytes."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.feed import decoder
from engine.feed.decoder import (
    DecodedFrame,
    FeedMode,
    FrameDecodeError,
    FrameKind,
    decode_frame_python,
    encode_market_info,
    encode_ticks,
)
from engine.feed.proto import MarketDataFeedV3_pb2 as pb
from engine.models import MarketStatus, Tick

try:
    from engine.feed import _fastfeed
except ImportError:  # pragma: no cover - depends on the build
    _fastfeed = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    _fastfeed is None,
    reason="engine.feed._fastfeed is not built (no C compiler at install time); `pip install -e .` builds it",
)

Decode = Callable[[bytes], DecodedFrame]


def _decoder(fill_slots: bool) -> Decode:
    native = decoder.native_decoder(fill_slots=fill_slots)
    assert native is not None
    assert native.__self__.fills_slots is fill_slots  # type: ignore[attr-defined]
    return native


@pytest.fixture(scope="module", params=[True, False], ids=["fill-slots", "call-tick"])
def native(request: pytest.FixtureRequest) -> Decode:
    return _decoder(request.param)


def _value(value: object) -> tuple[str, str]:
    return type(value).__name__, repr(value)  # repr tells NaN, -0.0 and 0 (int) apart


def _normal(frame: DecodedFrame) -> tuple[Any, ...]:
    ticks = sorted(
        (tick.instrument_key, tuple(_value(getattr(tick, name)) for name in decoder.NATIVE_TICK_FIELDS[1:]))
        for tick in frame.ticks
    )
    assert all(type(tick) is Tick for tick in frame.ticks)
    return frame.kind, _value(frame.current_ts_ms), ticks, len(frame.ticks), frame.market_status


def _outcome(decode: Decode, data: bytes) -> tuple[Any, ...]:
    try:
        frame = decode(data)
    except FrameDecodeError as exc:
        assert "FeedResponse" in str(exc)
        return ("FrameDecodeError",)
    assert type(frame) is DecodedFrame
    return ("ok", *_normal(frame))


def assert_same(native: Decode, data: bytes) -> tuple[Any, ...]:
    expected = _outcome(decode_frame_python, data)
    assert _outcome(native, data) == expected, data.hex()
    return expected


def test_decode_frame_is_the_native_decoder_when_it_is_built() -> None:
    assert decoder.decode_frame_native is not None
    assert decoder.decode_frame is decoder.decode_frame_native
    assert decoder.decode_frame_native.__self__.fills_slots  # type: ignore[attr-defined]


def test_a_full_mode_frame_decodes_every_field_like_the_reference(native: Decode) -> None:
    tick = Tick("NSE_EQ|INE002A01018", 2950.5, 1_717_472_699_000, 25, 1_200_300, 2931.0, 2935.0, 2960.0, 2930.05,
                2944.12, 7.0, 2950.45, 2950.6)
    data = encode_ticks([tick], current_ts_ms=77, day_start_ms=1_717_439_400_000)
    assert native(data) == DecodedFrame(FrameKind.LIVE_FEED, 77, [tick], None)
    assert_same(native, data)


def _every_branch() -> pb.FeedResponse:
    response = pb.FeedResponse(type=pb.initial_feed, currentTs=-5)
    ltpc = response.feeds["NSE_EQ|LTPC"].ltpc
    ltpc.ltp, ltpc.ltt, ltpc.ltq, ltpc.cp = 101.5, 1000, 3, 100.0
    ltpc.iep.value = 101.0
    market = response.feeds["NSE_EQ|MARKET"].fullFeed.marketFF
    market.ltpc.ltp, market.ltpc.ltt, market.ltpc.ltq, market.ltpc.cp = 10.5, 2000, -4, 10.0
    market.marketLevel.bidAskQuote.add(bidQ=5, bidP=10.45, askQ=6, askP=10.55)
    market.marketLevel.bidAskQuote.add(bidQ=7, bidP=10.4, askQ=8, askP=10.6)
    market.optionGreeks.delta = 0.5
    market.marketOHLC.ohlc.add(interval="I1", open=1.0, high=2.0, low=0.5, close=1.5, vol=9, ts=1)
    market.marketOHLC.ohlc.add(interval="1d", open=9.5, high=11.0, low=9.0, close=10.5, vol=99, ts=2)
    market.marketOHLC.ohlc.add(interval="1d", open=1.0, high=1.0, low=1.0)  # only the first "1d" counts
    market.atp, market.vtt, market.oi, market.iv, market.tbq, market.tsq = 10.2, 5000, 12.0, 0.2, 1.0, 2.0
    market.iep, market.rp, market.ieq, market.iiqTotal, market.iiqM, market.casEligible = 1.0, 2.0, 3, 4, 5, True
    index = response.feeds["NSE_INDEX|Nifty 50"].fullFeed.indexFF
    index.ltpc.ltp, index.ltpc.ltt, index.ltpc.cp = 22_500.5, 3000, 22_400.0
    index.marketOHLC.ohlc.add(interval="1d", open=22_410.0, high=22_550.0, low=22_390.0)
    greeks = response.feeds["NSE_FO|GREEKS"].firstLevelWithGreeks
    greeks.ltpc.ltp, greeks.ltpc.ltt = 55.0, 4000
    greeks.firstDepth.bidP, greeks.firstDepth.askP, greeks.firstDepth.bidQ = 54.9, 55.1, 3
    greeks.optionGreeks.gamma = 0.01
    greeks.vtt, greeks.oi, greeks.iv = 777, 12_000.0, 0.3
    response.feeds["NSE_EQ|EMPTY"].requestMode = pb.full_d5
    response.feeds["NSE_EQ|NO_BRANCH"].fullFeed.SetInParent()
    response.feeds["NSE_EQ|UNTRADED"].fullFeed.marketFF.ltpc.cp = 50.0
    response.feeds["NSE_EQ|ÜNICODE ✓"].ltpc.ltp = 1.0
    response.marketInfo.segmentStatus["NSE_EQ"] = pb.NORMAL_OPEN
    response.marketInfo.casMarketStatus["NSE_EQ"].status = "open"
    response.marketInfo.preOpenSessionStatus["NSE_FO"].updatedTime = 5
    return response


def test_every_message_type_and_oneof_branch(native: Decode) -> None:
    data = _every_branch().SerializeToString()
    outcome = assert_same(native, data)
    assert outcome[0] == "ok"
    ticks = {tick.instrument_key: tick for tick in native(data).ticks}
    assert set(ticks) == {"NSE_EQ|LTPC", "NSE_EQ|MARKET", "NSE_INDEX|Nifty 50", "NSE_FO|GREEKS", "NSE_EQ|NO_BRANCH",
                          "NSE_EQ|UNTRADED", "NSE_EQ|ÜNICODE ✓"}
    assert ticks["NSE_EQ|MARKET"] == Tick("NSE_EQ|MARKET", 10.5, 2000, -4, 5000, 10.0, 9.5, 11.0, 9.0, 10.2, 12.0,
                                          10.45, 10.55)
    assert ticks["NSE_FO|GREEKS"] == Tick("NSE_FO|GREEKS", 55.0, 4000, 0, 777, 0.0, oi=12_000.0, bid=54.9, ask=55.1)
    frame = native(data)
    assert frame.kind is FrameKind.INITIAL_FEED and frame.current_ts_ms == -5
    assert frame.market_status == {"NSE_EQ": MarketStatus.NORMAL_OPEN}


@pytest.mark.parametrize("mode", list(FeedMode))
def test_encoder_output_in_every_mode(native: Decode, mode: FeedMode) -> None:
    ticks = [Tick(f"NSE_EQ|K{i}", 10.0 + i, 1000 + i, i, 50 * i, 9.0, 9.5, 11.0 + i, 9.0, 10.1, 0.0, 9.95, 10.05)
             for i in range(5)]
    assert_same(native, encode_ticks(ticks, current_ts_ms=1, mode=mode, kind=FrameKind.INITIAL_FEED))


def test_market_info_frames(native: Decode) -> None:
    for status in MarketStatus:
        data = encode_market_info({"NSE_EQ": status, "BSE_FO": MarketStatus.NORMAL_CLOSE}, current_ts_ms=3)
        assert native(data) == DecodedFrame(FrameKind.MARKET_INFO, 3, [],
                                            {"NSE_EQ": status, "BSE_FO": MarketStatus.NORMAL_CLOSE})


def test_bytearray_and_memoryview_decode_like_bytes(native: Decode) -> None:
    data = _every_branch().SerializeToString()
    expected = _outcome(native, data)
    assert _outcome(native, bytearray(data)) == expected  # type: ignore[arg-type]
    assert _outcome(native, memoryview(data)) == expected  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        native("not bytes")  # type: ignore[arg-type]


# ---- hand-made wire format ------------------------------------------------------------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def ld(field: int, payload: bytes) -> bytes:
    return tag(field, 2) + varint(len(payload)) + payload


def vi(field: int, n: int) -> bytes:
    return tag(field, 0) + varint(n)


def f64(field: int, x: float) -> bytes:
    return tag(field, 1) + struct.pack("<d", x)


def entry(key: bytes, feed: bytes) -> bytes:
    return ld(2, ld(1, key) + ld(2, feed))


LTPC = f64(1, 10.5) + vi(2, 1000) + vi(3, 5) + f64(4, 9.5)
QUOTE_1 = ld(1, f64(2, 1.0) + f64(4, 1.5))  # a MarketLevel holding one Quote
QUOTE_2 = ld(1, f64(2, 2.0))
LIVE = vi(1, 1)


def index_candle(candle: bytes) -> bytes:
    """A live frame whose one index feed holds one OHLC candle."""
    return LIVE + entry(b"K", ld(2, ld(2, ld(2, ld(1, candle)))))


def nested_groups(depth: int) -> bytes:
    return tag(9, 3) * depth + tag(9, 4) * depth


EDGE_CASES = {
    "empty": b"",
    "ltpc": LIVE + entry(b"K", ld(1, LTPC)),
    "entry with an unknown field is dropped": LIVE + ld(2, ld(1, b"K") + ld(2, ld(1, LTPC)) + vi(9, 1)),
    "entry key with the wrong wire type": LIVE + ld(2, vi(1, 5) + ld(2, ld(1, LTPC))),
    "entry without key": LIVE + ld(2, ld(2, ld(1, LTPC))),
    "entry without value": LIVE + ld(2, ld(1, b"K")),
    "later empty entry replaces": LIVE + entry(b"K", ld(1, LTPC)) + ld(2, ld(1, b"K")),
    "later entry replaces": LIVE + entry(b"K", ld(1, LTPC)) + entry(b"K", ld(1, vi(2, 7))),
    "value fields merge": LIVE + ld(2, ld(1, b"K") + ld(2, ld(1, vi(2, 5))) + ld(2, ld(1, f64(1, 3.0)))),
    "double with the wrong wire type": LIVE + entry(b"K", ld(1, vi(1, 7) + vi(2, 5))),
    "oneof switch starts afresh": LIVE + entry(b"K", ld(1, LTPC) + ld(3, ld(1, vi(2, 77)))),
    "oneof back and forth": LIVE + entry(b"K", ld(2, ld(1, ld(1, LTPC))) + ld(1, LTPC) + ld(2, ld(2, b""))),
    "full feed branch switch": LIVE + entry(b"K", ld(2, ld(1, ld(1, LTPC) + f64(5, 3.0)) + ld(2, ld(1, vi(2, 1))))),
    "full feed branch merge": LIVE + entry(b"K", ld(2, ld(1, f64(5, 3.0))) + ld(2, ld(1, ld(1, LTPC)))),
    "quotes across market levels": LIVE + entry(b"K", ld(2, ld(1, ld(2, QUOTE_1) + ld(2, QUOTE_2)))),
    "bad utf-8 key": LIVE + entry(b"K\xff", ld(1, LTPC)),
    "surrogate in key": LIVE + entry(b"K\xed\xa0\x80", ld(1, LTPC)),
    "overlong key": LIVE + entry(b"\xc0\xaf", ld(1, LTPC)),
    "4-byte utf-8 key": LIVE + entry("K\U0001f600".encode(), ld(1, LTPC)),
    "above U+10FFFF": LIVE + entry(b"\xf4\x90\x80\x80", ld(1, LTPC)),
    "bad utf-8 interval": index_candle(ld(1, b"\xff") + f64(2, 1.0)),
    "1d interval then replaced": index_candle(ld(1, b"1d") + f64(2, 1.0) + ld(1, b"I1")),
    "1d candle": index_candle(ld(1, b"1d") + f64(2, 1.0) + f64(3, 2.0) + f64(4, 0.5)),
    "type 2^32+1": vi(1, (1 << 32) + 1),
    "type -1": vi(1, -1),
    "type 5": vi(1, 5),
    "type as fixed64": tag(1, 1) + b"\x01" * 8,
    "10-byte varint": LIVE + tag(3, 0) + b"\xff" * 9 + b"\x7f",
    "11-byte varint": LIVE + tag(3, 0) + b"\xff" * 10 + b"\x01",
    "truncated varint": LIVE + tag(3, 0) + b"\xff\xff",
    "6-byte tag": b"\x88\x80\x80\x80\x80\x00\x01",
    "tag over 32 bits": b"\xf8\xff\xff\xff\x7f\x01",
    "padded 5-byte tag": b"\x88\x80\x80\x80\x00\x01",
    "field number 0": b"\x00\x01",
    "end group at the top": b"\x0c",
    "wire type 6": b"\x0e",
    "wire type 7": b"\x0f",
    "unknown fixed32": tag(9, 5) + b"\x01\x02\x03\x04",
    "truncated fixed32": tag(9, 5) + b"\x01\x02\x03",
    "truncated fixed64": LIVE + entry(b"K", ld(1, tag(1, 1) + b"\x00" * 7)),
    "unknown group": tag(9, 3) + vi(1, 5) + f64(2, 1.0) + ld(3, b"xy") + tag(9, 4),
    "mismatched end group": tag(9, 3) + vi(1, 5) + tag(8, 4),
    "unterminated group": tag(9, 3) + vi(1, 5),
    "group at the very end": tag(9, 3),
    "end group inside a sub-message": LIVE + entry(b"K", ld(1, tag(9, 4))),
    "group crossing a sub-message end": LIVE + ld(2, ld(1, b"K") + tag(9, 3)) + tag(9, 4),
    "100 nested groups": nested_groups(100),
    "101 nested groups": nested_groups(101),
    "98 nested groups in a feed": LIVE + entry(b"K", nested_groups(98)),
    "99 nested groups in a feed": LIVE + entry(b"K", nested_groups(99)),
    "group with field number 0": b"\x03\x04",
    "market status": vi(1, 2) + ld(4, ld(1, ld(1, b"NSE_EQ") + vi(2, 2)) + ld(1, ld(1, b"X") + vi(2, 9))),
    "market status duplicate key": vi(1, 2) + ld(4, ld(1, ld(1, b"A") + vi(2, 2)) + ld(1, ld(1, b"A") + vi(2, 9))),
    "market status 2^32+3": vi(1, 2) + ld(4, ld(1, ld(1, b"NSE_EQ") + vi(2, (1 << 32) + 3))),
    "market status negative": vi(1, 2) + ld(4, ld(1, ld(1, b"NSE_EQ") + vi(2, -2))),
    "market status entry with unknown field": vi(1, 2) + ld(4, ld(1, ld(1, b"NSE_EQ") + vi(2, 2) + vi(3, 1))),
    "empty market info": LIVE + ld(4, b""),
    "status info with bad utf-8": vi(1, 2) + ld(4, ld(2, ld(1, b"A") + ld(2, ld(1, b"\xff")))),
    "cas key with bad utf-8": vi(1, 2) + ld(4, ld(3, ld(1, b"\xff"))),
    "length past the sub-message": LIVE + ld(2, ld(1, b"K") + tag(2, 2) + varint(3) + tag(1, 1) + b"\x00\x00"),
    "length of 2^31": LIVE + tag(2, 2) + varint(1 << 31),
    "huge length": LIVE + tag(2, 2) + varint((1 << 64) - 1),
    "iep malformed": LIVE + entry(b"K", ld(1, LTPC + ld(5, b"\xff"))),
    "iep wrong wire type": LIVE + entry(b"K", ld(1, LTPC + vi(5, 3))),
    "packed doubles in an unknown field": LIVE + ld(7, b"\x00" * 3),
    "nan and negative zero": LIVE + entry(b"K", ld(1, f64(1, math.nan) + f64(4, -0.0) + vi(3, -1))),
    "greeks first depth merges": LIVE + entry(b"K", ld(3, ld(2, f64(2, 1.0)) + ld(2, f64(4, 2.0)))),
    "replay server malformed frame": b"\x12\xff\xff\x03garbage-not-protobuf",
}


@pytest.mark.parametrize("data", list(EDGE_CASES.values()), ids=list(EDGE_CASES))
def test_edge_cases_agree_with_the_reference(native: Decode, data: bytes) -> None:
    assert_same(native, data)


# ---- schema-aware wire-format generator -----------------------------------------------------------------

# Field number -> kind, per message: "v" varint, "d" double, "s" string, or a message name.
SCHEMA: dict[str, dict[int, str]] = {
    "FeedResponse": {1: "type", 2: "FeedEntry", 3: "v", 4: "MarketInfo"},
    "FeedEntry": {1: "key", 2: "Feed"},
    "Feed": {1: "LTPC", 2: "FullFeed", 3: "FirstLevelWithGreeks", 4: "v"},
    "LTPC": {1: "d", 2: "v", 3: "v", 4: "d", 5: "DoubleValue"},
    "DoubleValue": {1: "d"},
    "FullFeed": {1: "MarketFullFeed", 2: "IndexFullFeed"},
    "MarketFullFeed": {1: "LTPC", 2: "MarketLevel", 3: "OptionGreeks", 4: "MarketOHLC", 5: "d", 6: "v", 7: "d",
                       8: "d", 9: "d", 10: "d", 11: "d", 12: "d", 13: "v", 14: "v", 15: "v", 16: "v"},
    "IndexFullFeed": {1: "LTPC", 2: "MarketOHLC"},
    "MarketLevel": {1: "Quote"},
    "Quote": {1: "v", 2: "d", 3: "v", 4: "d"},
    "OptionGreeks": {1: "d", 2: "d", 3: "d", 4: "d", 5: "d"},
    "MarketOHLC": {1: "OHLC"},
    "OHLC": {1: "interval", 2: "d", 3: "d", 4: "d", 5: "d", 6: "v", 7: "v"},
    "FirstLevelWithGreeks": {1: "LTPC", 2: "Quote", 3: "OptionGreeks", 4: "v", 5: "d", 6: "d"},
    "MarketInfo": {1: "SegmentEntry", 2: "StatusEntry", 3: "StatusEntry"},
    "SegmentEntry": {1: "s", 2: "v"},
    "StatusEntry": {1: "s", 2: "StatusInfo"},
    "StatusInfo": {1: "s", 2: "v"},
}
KEYS = [b"NSE_EQ|A", b"NSE_EQ|B", b"NSE_INDEX|Nifty 50", b"", "NSE_EQ|Ü".encode()]
BAD_UTF8 = [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80"]
varints = st.one_of(st.integers(0, 5), st.integers(-(2**63), 2**64 - 1), st.sampled_from([2**32 + 1, -1, 2**31]))
doubles = st.one_of(st.sampled_from([0.0, -0.0, 1.5, math.nan, math.inf]), st.floats(width=64))
texts = st.one_of(st.sampled_from([b"1d", b"I1", b"NSE_EQ", b""]), st.text(max_size=4).map(str.encode))


def _scalar(draw: st.DrawFn, kind: str) -> bytes:
    if kind == "v":
        return varint(draw(varints))
    if kind == "type":  # mostly a known FeedResponse.type, so that the rest of the frame matters
        return varint(draw(st.integers(0, 2) if draw(st.integers(0, 9)) else varints))
    if kind == "d":
        return struct.pack("<d", draw(doubles))
    strings = {"key": st.sampled_from(KEYS), "interval": st.sampled_from([b"1d", b"I1", b"1D"]), "s": texts}[kind]
    text = draw(st.sampled_from(BAD_UTF8) if draw(st.integers(0, 29)) == 0 else strings)
    return varint(len(text)) + text


def _unknown(draw: st.DrawFn, depth: int, field: int | None = None) -> bytes:
    """An unknown field (or a known number with another wire type) of any wire type; groups nest."""
    field = draw(st.integers(1, 40)) if field is None else field
    wire_type = draw(st.sampled_from([0, 1, 2, 3, 5]))
    if wire_type == 0:
        return tag(field, 0) + varint(draw(varints))
    if wire_type == 1:
        return tag(field, 1) + draw(st.binary(min_size=8, max_size=8))
    if wire_type == 5:
        return tag(field, 5) + draw(st.binary(min_size=4, max_size=4))
    if wire_type == 2:
        return ld(field, draw(st.binary(max_size=6)))
    inner = b"".join(_unknown(draw, depth - 1) for _ in range(draw(st.integers(0, 2 if depth > 0 else 0))))
    return tag(field, 3) + inner + tag(field, 4)


def _message(draw: st.DrawFn, name: str, depth: int) -> bytes:
    fields = SCHEMA[name]
    parts = []
    for _ in range(draw(st.integers(0, 4 if depth > 0 else 2))):
        field = draw(st.sampled_from(sorted(fields)))
        kind = fields[field]
        roll = draw(st.integers(0, 29))
        if roll == 0:
            parts.append(_unknown(draw, 2))  # unknown field number (or a known one, unluckily)
        elif roll == 1:
            parts.append(_unknown(draw, 1, field))  # known number, any wire type
        elif kind in SCHEMA:
            parts.append(ld(field, _message(draw, kind, depth - 1) if depth > 0 else b""))
        else:
            wire_type = {"v": 0, "type": 0, "d": 1}.get(kind, 2)
            parts.append(tag(field, wire_type) + _scalar(draw, kind))
    return b"".join(parts)


@st.composite
def wire_frames(draw: st.DrawFn) -> bytes:
    return _message(draw, "FeedResponse", 6)


@st.composite
def mutated(draw: st.DrawFn, frames: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(frames))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = draw(st.integers(0, len(data)))
        if action == "cut":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=3))
        elif at < len(data):
            if action == "flip":
                data[at] ^= 1 << draw(st.integers(0, 7))
            elif action == "set":
                data[at] = draw(st.integers(0, 255))
            else:
                del data[at]
    return bytes(data)


@st.composite
def class_frames(draw: st.DrawFn) -> bytes:
    """Valid frames written by the generated classes: every branch, any values."""
    any_int = st.integers(-(2**63), 2**63 - 1)
    response = pb.FeedResponse(type=pb.Type.ValueType(draw(st.integers(0, 2))), currentTs=draw(any_int))
    for n in range(draw(st.integers(0, 5))):
        feed = response.feeds[draw(st.text(max_size=3)) + f"|{n}"]
        shape = draw(st.sampled_from(["market", "index", "ltpc", "greeks", "empty", "no-branch"]))
        ltpc = None
        if shape == "market":
            market = feed.fullFeed.marketFF
            ltpc = market.ltpc
            market.atp, market.vtt, market.oi = draw(doubles), draw(any_int), draw(doubles)
            for _ in range(draw(st.integers(0, 3))):
                market.marketLevel.bidAskQuote.add(bidP=draw(doubles), askP=draw(doubles), bidQ=draw(any_int))
            ohlc = market.marketOHLC.ohlc
        elif shape == "index":
            ltpc = feed.fullFeed.indexFF.ltpc
            ohlc = feed.fullFeed.indexFF.marketOHLC.ohlc
        elif shape == "greeks":
            first = feed.firstLevelWithGreeks
            ltpc = first.ltpc
            first.firstDepth.bidP, first.firstDepth.askP = draw(doubles), draw(doubles)
            first.vtt, first.oi = draw(any_int), draw(doubles)
        elif shape == "ltpc":
            ltpc = feed.ltpc
        elif shape == "no-branch":
            feed.fullFeed.SetInParent()
        else:
            feed.requestMode = pb.full_d30
        if ltpc is not None:
            ltpc.ltp, ltpc.ltt, ltpc.ltq, ltpc.cp = draw(doubles), draw(any_int), draw(any_int), draw(doubles)
        if shape in ("market", "index"):
            for interval in draw(st.lists(st.sampled_from(["1d", "I1", "I30", ""]), max_size=3)):
                ohlc.add(interval=interval, open=draw(doubles), high=draw(doubles), low=draw(doubles))
    if draw(st.booleans()):
        for segment in draw(st.lists(st.text(max_size=6), max_size=3)):
            response.marketInfo.segmentStatus[segment] = pb.MarketStatus.ValueType(draw(st.integers(-3, 8)))
    return response.SerializeToString()


def fuzz(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz(500)
@given(class_frames())
def test_frames_from_the_generated_classes(data: bytes) -> None:
    for native in (_FILL, _CALL):
        assert assert_same(native, data)[0] == "ok"


@fuzz(800)
@given(wire_frames())
def test_schema_aware_wire_frames(data: bytes) -> None:
    assert_same(_FILL, data)


@fuzz(800)
@given(mutated(st.one_of(class_frames(), wire_frames())))
def test_mutated_frames(data: bytes) -> None:
    assert_same(_FILL, data)


@fuzz(1000)
@given(st.binary(max_size=8))
def test_any_bytes_as_instrument_key(key: bytes) -> None:  # the UTF-8 check against upb's
    outcome = assert_same(_FILL, LIVE + entry(key, ld(1, LTPC)))
    assert outcome[0] == "ok" or not _is_utf8(key)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@fuzz(3000)
@given(st.binary(max_size=64))
def test_random_bytes(data: bytes) -> None:
    assert_same(_FILL, data)


def test_every_truncation_of_a_frame_raises_or_agrees() -> None:
    data = _every_branch().SerializeToString()
    errors = 0
    for end in range(len(data)):
        errors += assert_same(_FILL, data[:end])[0] == "FrameDecodeError"
    assert errors > len(data) // 2  # most cuts land inside a field


_FILL: Decode = decoder.native_decoder(fill_slots=True) or decode_frame_python
_CALL: Decode = decoder.native_decoder(fill_slots=False) or decode_frame_python
