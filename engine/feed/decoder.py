"""Upstox Market Data Feed V3 frames <-> engine Ticks. Sans-I/O: bytes in, values out; no sockets.

Every binary WebSocket message is one `FeedResponse` (schema: `proto/MarketDataFeedV3.proto`,
generated code: `engine.feed.proto.MarketDataFeedV3_pb2`). `decode_frame(data)` reads the message
fields directly (no `MessageToDict`) and returns a `DecodedFrame`.

Field mapping (FeedResponse.feeds[instrument_key] -> `engine.models.Tick`); `L` is the feed's LTPC:

    Tick field           full / full_d30: fullFeed.marketFF   index: fullFeed.indexFF   ltpc     option_greeks
    ltp, ltt_ms, ltq     L.ltp, L.ltt, L.ltq                  same                      same     same
    close_prev           L.cp                                 L.cp                      L.cp     L.cp
    volume               vtt                                  -                         -        vtt
    atp, oi              atp, oi                              -                         -        -, oi
    day_open/high/low    marketOHLC.ohlc[interval "1d"]       same                      -        -
    bid, ask             marketLevel.bidAskQuote[0].bidP/askP -                         -        firstDepth.bidP/askP

Fields absent from a frame keep the Tick defaults (0). `FeedResponse.type` becomes `DecodedFrame.kind`;
`currentTs` becomes `current_ts_ms`; `marketInfo.segmentStatus` (segment -> status) becomes
`market_status` (only on market_info frames, `None` otherwise).

Two decoders give identical results: `decode_frame_native` (the C extension `engine.feed._fastfeed`, which
reads the wire format itself; `None` when it is not built) and `decode_frame_python` (the reference, on the
upb classes). `decode_frame` is the native one when it is available, else the Python one. The native decoder
yields ticks in wire order, the Python one in upb's map order; keys are unique, so the order carries no meaning.

The encoder (`encode_ticks`, `encode_market_info`) is the inverse, used by the replay server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from engine.feed.proto import MarketDataFeedV3_pb2 as pb
from engine.models import MarketStatus, Tick

DAY_INTERVAL = "1d"  # marketOHLC interval holding the day's open/high/low so far


class FrameKind(enum.StrEnum):
    INITIAL_FEED = "initial_feed"  # snapshot after a subscription
    LIVE_FEED = "live_feed"
    MARKET_INFO = "market_info"  # segment status (first frame after connecting, then on changes)


class FeedMode(enum.StrEnum):
    """Subscription modes of the V3 request JSON (`data.mode`)."""

    LTPC = "ltpc"
    FULL = "full"
    OPTION_GREEKS = "option_greeks"
    FULL_D30 = "full_d30"


class FrameDecodeError(ValueError):
    """The bytes are not a valid FeedResponse."""


@dataclass(slots=True)
class DecodedFrame:
    kind: FrameKind
    current_ts_ms: int
    ticks: list[Tick]
    market_status: dict[str, MarketStatus] | None = None


_KINDS = {
    pb.initial_feed: FrameKind.INITIAL_FEED,
    pb.live_feed: FrameKind.LIVE_FEED,
    pb.market_info: FrameKind.MARKET_INFO,
}
_STATUSES = {pb.MarketStatus.Value(status.value): status for status in MarketStatus}
_STATUS_VALUES = {status: number for number, status in _STATUSES.items()}
_REQUEST_MODES = {
    FeedMode.LTPC: pb.ltpc,
    FeedMode.FULL: pb.full_d5,
    FeedMode.OPTION_GREEKS: pb.option_greeks,
    FeedMode.FULL_D30: pb.full_d30,
}
_FROM_STRING = pb.FeedResponse.FromString


def decode_frame_python(data: bytes) -> DecodedFrame:
    """Decode one binary WebSocket message with the upb classes (the reference for the native decoder).
    Raises `FrameDecodeError` on bytes that are not a FeedResponse."""
    try:
        response = _FROM_STRING(data)
    except DecodeError as exc:
        raise FrameDecodeError(f"not a FeedResponse ({len(data)} bytes): {exc}") from exc
    kind = _KINDS.get(response.type)
    if kind is None:
        raise FrameDecodeError(f"unknown FeedResponse.type {response.type}")
    market_status = None
    if response.HasField("marketInfo"):
        statuses = _STATUSES
        market_status = {
            segment: statuses[value]
            for segment, value in response.marketInfo.segmentStatus.items()
            if value in statuses
        }
    return DecodedFrame(kind, response.currentTs, _ticks(response.feeds), market_status)


def _ticks(feeds: Mapping[str, pb.Feed]) -> list[Tick]:
    # Hot path, tuned against bench/bench_decode.py: every attribute read of a upb message costs ~80 ns and
    # every sub-message read more, so the common case (a full-mode equity feed) is read with the fewest reads,
    # locals bound once, repeated fields iterated (indexing them is slower) and Tick built positionally:
    # (instrument_key, ltp, ltt_ms, ltq, volume, close_prev, day_open, day_high, day_low, atp, oi, bid, ask).
    # Reading an unset oneof branch yields an empty default message, so `ltt == 0` sends every other shape
    # (ltpc, index, option greeks, or a full feed that never traded) to `_other_tick`.
    ticks: list[Tick] = []
    append = ticks.append
    day = DAY_INTERVAL
    for key, feed in feeds.items():
        market = feed.fullFeed.marketFF
        ltpc = market.ltpc
        ltt = ltpc.ltt
        if not ltt:
            other = _other_tick(key, feed)
            if other is not None:
                append(other)
            continue
        day_open = day_high = day_low = bid = ask = 0.0
        for candle in market.marketOHLC.ohlc:
            if candle.interval == day:
                day_open, day_high, day_low = candle.open, candle.high, candle.low
                break
        for best in market.marketLevel.bidAskQuote:
            bid, ask = best.bidP, best.askP
            break
        append(Tick(key, ltpc.ltp, ltt, ltpc.ltq, market.vtt, ltpc.cp, day_open, day_high, day_low, market.atp,
                    market.oi, bid, ask))
    return ticks


# Tick fields in the positional order the native decoder builds them.
NATIVE_TICK_FIELDS = ("instrument_key", "ltp", "ltt_ms", "ltq", "volume", "close_prev", "day_open", "day_high",
                      "day_low", "atp", "oi", "bid", "ask")


def native_decoder(*, fill_slots: bool = True) -> Callable[[bytes], DecodedFrame] | None:
    """A decode function of the C extension `engine.feed._fastfeed`, or None when it is not built or Tick changed
    shape. With `fill_slots` it builds Ticks by filling their slots, skipping `Tick.__init__` (a third of its
    time), as long as Tick is a plain slots dataclass with exactly these fields; otherwise it calls Tick."""
    try:
        from engine.feed import _fastfeed
    except ImportError:
        return None
    names = tuple(field.name for field in dataclasses.fields(Tick))
    if names[: len(NATIVE_TICK_FIELDS)] != NATIVE_TICK_FIELDS:
        return None  # the C code builds Ticks positionally: a reordered Tick must not get shuffled values
    args = (Tick, DecodedFrame, FrameDecodeError, tuple(kind for _, kind in sorted(_KINDS.items())),
            tuple(status for _, status in sorted(_STATUSES.items())))
    if fill_slots and names == NATIVE_TICK_FIELDS and not hasattr(Tick, "__post_init__"):
        with contextlib.suppress(TypeError):  # TypeError: its fields are not plain object slots
            return _fastfeed.Decoder(*args, fill_slots=True).decode
    return _fastfeed.Decoder(*args).decode


decode_frame_native = native_decoder()
# Decode one binary WebSocket message; raises `FrameDecodeError` on bytes that are not a FeedResponse.
decode_frame: Callable[[bytes], DecodedFrame] = decode_frame_native or decode_frame_python


def _day_range(ohlc: Iterable[pb.OHLC]) -> tuple[float, float, float]:
    for candle in ohlc:
        if candle.interval == DAY_INTERVAL:
            return candle.open, candle.high, candle.low
    return 0.0, 0.0, 0.0


def _other_tick(key: str, feed: pb.Feed) -> Tick | None:
    """Every feed shape but a traded full-mode market feed (see the mapping table)."""
    which = feed.WhichOneof("FeedUnion")
    if which == "fullFeed":
        full = feed.fullFeed
        if full.HasField("indexFF"):
            index = full.indexFF
            ltpc = index.ltpc
            return Tick(key, ltpc.ltp, ltpc.ltt, ltpc.ltq, 0, ltpc.cp, *_day_range(index.marketOHLC.ohlc))
        market = full.marketFF
        ltpc = market.ltpc
        quotes = market.marketLevel.bidAskQuote
        bid, ask = (quotes[0].bidP, quotes[0].askP) if quotes else (0.0, 0.0)
        return Tick(key, ltpc.ltp, ltpc.ltt, ltpc.ltq, market.vtt, ltpc.cp, *_day_range(market.marketOHLC.ohlc),
                    market.atp, market.oi, bid, ask)
    if which == "firstLevelWithGreeks":
        first = feed.firstLevelWithGreeks
        ltpc = first.ltpc
        depth = first.firstDepth
        return Tick(key, ltpc.ltp, ltpc.ltt, ltpc.ltq, first.vtt, ltpc.cp, 0.0, 0.0, 0.0, 0.0, first.oi, depth.bidP,
                    depth.askP)
    if which == "ltpc":
        ltpc = feed.ltpc
        return Tick(key, ltpc.ltp, ltpc.ltt, ltpc.ltq, 0, ltpc.cp)
    return None  # an empty feed carries no price


def encode_ticks(
    ticks: Iterable[Tick],
    *,
    current_ts_ms: int,
    kind: FrameKind = FrameKind.LIVE_FEED,
    mode: FeedMode | str = FeedMode.FULL,
    day_start_ms: int = 0,
) -> bytes:
    """One FeedResponse holding `ticks` (at most one per instrument_key: later ones replace earlier).

    In full modes the day's open/high/low/ltp go into a "1d" marketOHLC candle starting at `day_start_ms`
    with `vol` = cumulative volume, and bid/ask into one depth level."""
    mode = FeedMode(mode)
    response = pb.FeedResponse(type=pb.Type.Value(kind.value), currentTs=current_ts_ms)
    request_mode = _REQUEST_MODES[mode]
    feeds = response.feeds
    for tick in ticks:
        feed = feeds[tick.instrument_key]
        feed.Clear()
        feed.requestMode = request_mode
        if mode is FeedMode.LTPC:
            _fill_ltpc(feed.ltpc, tick)
        elif mode is FeedMode.OPTION_GREEKS:
            first = feed.firstLevelWithGreeks
            _fill_ltpc(first.ltpc, tick)
            first.firstDepth.bidP = tick.bid
            first.firstDepth.askP = tick.ask
            first.vtt = tick.volume
            first.oi = tick.oi
        else:
            market = feed.fullFeed.marketFF
            _fill_ltpc(market.ltpc, tick)
            market.marketLevel.bidAskQuote.add(bidP=tick.bid, askP=tick.ask)
            market.marketOHLC.ohlc.add(
                interval=DAY_INTERVAL, open=tick.day_open, high=tick.day_high, low=tick.day_low, close=tick.ltp,
                vol=tick.volume, ts=day_start_ms,
            )
            market.atp = tick.atp
            market.vtt = tick.volume
            market.oi = tick.oi
    return response.SerializeToString()


def _fill_ltpc(ltpc: pb.LTPC, tick: Tick) -> None:
    ltpc.ltp = tick.ltp
    ltpc.ltt = tick.ltt_ms
    ltpc.ltq = tick.ltq
    ltpc.cp = tick.close_prev


def encode_market_info(statuses: Mapping[str, MarketStatus], *, current_ts_ms: int) -> bytes:
    """A market_info FeedResponse: segment (e.g. "NSE_EQ") -> status."""
    response = pb.FeedResponse(type=pb.market_info, currentTs=current_ts_ms)
    segment_status = response.marketInfo.segmentStatus
    for segment, status in statuses.items():
        segment_status[segment] = _STATUS_VALUES[MarketStatus(status)]
    return response.SerializeToString()
