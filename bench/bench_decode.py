"""Bench: decode a 200-instrument full-mode frame into Ticks vs a raw protobuf parse of the same bytes.

Target (issue 3): `decode_frame` costs at most 2x `FeedResponse.ParseFromString` on the same bytes.
Run: `.venv/bin/python bench/bench_decode.py [--instruments 200] [--repeat 7] [--strict]` (`--strict`: exit 1 when
the target is missed).

A third figure, the floor, is the parse plus walking the feeds map and building one Tick per entry WITHOUT reading
any field: no decoder built on the upb runtime from Python can beat it, since each attribute read of a upb message
costs tens of nanoseconds more on top."""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.feed.decoder import decode_frame
from engine.feed.proto import MarketDataFeedV3_pb2 as pb
from engine.models import Tick

TARGET_RATIO = 2.0


def full_mode_frame(instruments: int) -> bytes:
    """A live_feed frame shaped like Upstox's full mode: 5 depth levels, "1d" and "I1" candles, totals."""
    response = pb.FeedResponse(type=pb.live_feed, currentTs=1_717_472_700_000)
    for i in range(instruments):
        price = 100.0 + i * 7.35
        feed = response.feeds[f"NSE_EQ|INE{i:06d}A01018"]
        feed.requestMode = pb.full_d5
        market = feed.fullFeed.marketFF
        market.ltpc.ltp = price
        market.ltpc.ltt = 1_717_472_699_000 + i
        market.ltpc.ltq = 10 + i
        market.ltpc.cp = price * 0.99
        for level in range(5):
            market.marketLevel.bidAskQuote.add(
                bidQ=100 * (level + 1), bidP=price - 0.05 * (level + 1), askQ=90 * (level + 1),
                askP=price + 0.05 * (level + 1),
            )
        market.marketOHLC.ohlc.add(interval="1d", open=price * 0.98, high=price * 1.01, low=price * 0.97,
                                   close=price, vol=1_234_567 + i, ts=1_717_439_400_000)
        market.marketOHLC.ohlc.add(interval="I1", open=price, high=price + 0.5, low=price - 0.5,
                                   close=price, vol=2_345 + i, ts=1_717_472_640_000)
        market.atp = price * 0.995
        market.vtt = 1_234_567 + i
        market.oi = 0.0
        market.tbq = 45_678.0
        market.tsq = 56_789.0
    return response.SerializeToString()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instruments", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=200)
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args()

    data = full_mode_frame(args.instruments)
    decoded = decode_frame(data)
    if len(decoded.ticks) != args.instruments:
        raise SystemExit(f"decoded {len(decoded.ticks)} ticks, expected {args.instruments}")

    message = pb.FeedResponse()

    def raw_parse() -> None:
        message.ParseFromString(data)

    def to_ticks() -> None:
        decode_frame(data)

    def floor() -> None:
        parsed = pb.FeedResponse.FromString(data)
        [Tick(key, 0.0, 0) for key, _ in parsed.feeds.items()]

    # Interleave the three so all see the same machine load (shared CPUs).
    raw_best = decode_best = floor_best = float("inf")
    for _ in range(args.repeat):
        raw_best = min(raw_best, timeit.timeit(raw_parse, number=args.number) / args.number)
        decode_best = min(decode_best, timeit.timeit(to_ticks, number=args.number) / args.number)
        floor_best = min(floor_best, timeit.timeit(floor, number=args.number) / args.number)
    ratio = decode_best / raw_best
    print(f"frame: {args.instruments} instruments, full mode, {len(data)} bytes")
    print(f"raw protobuf ParseFromString: {raw_best * 1e6:9.1f} us/frame")
    print(f"decode_frame -> Ticks:        {decode_best * 1e6:9.1f} us/frame "
          f"({decode_best / args.instruments * 1e9:.0f} ns/tick)")
    print(f"floor (parse + map walk + Tick, no field read): {floor_best * 1e6:9.1f} us/frame "
          f"({floor_best / raw_best:.2f}x raw)")
    verdict = "OK" if ratio <= TARGET_RATIO else "MISSED"
    print(f"ratio decode/raw: {ratio:.2f}x (target <= {TARGET_RATIO:.1f}x) {verdict}")
    return 1 if args.strict and ratio > TARGET_RATIO else 0


if __name__ == "__main__":
    raise SystemExit(main())
