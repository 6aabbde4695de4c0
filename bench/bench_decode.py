"""Bench: decode a 200-instrument full-mode frame into Ticks vs a raw protobuf parse of the same bytes.

Target (issue 3): `decode_frame` costs at most 2x `FeedResponse.ParseFromString` on the same bytes. `decode_frame`
is the native decoder (C extension `engine.feed._fastfeed`) when it is built, else the pure-Python decoder on the
upb classes; both are timed here, interleaved with the raw parse so that all see the same machine load.
Run: `.venv/bin/python bench/bench_decode.py [--instruments 200] [--repeat 7] [--strict]` (`--strict`: exit 1 when
the target is missed)."""

from __future__ import annotations

import argparse
import functools
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.feed.decoder import DecodedFrame, decode_frame, decode_frame_native, decode_frame_python
from engine.feed.proto import MarketDataFeedV3_pb2 as pb

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
    decoders: dict[str, Callable[[bytes], DecodedFrame]] = {"python": decode_frame_python}
    if decode_frame_native is not None:
        decoders["native"] = decode_frame_native
    for name, decode in decoders.items():
        if len(decode(data).ticks) != args.instruments:
            raise SystemExit(f"{name} decoder: {len(decode(data).ticks)} ticks, expected {args.instruments}")

    message = pb.FeedResponse()
    timed: dict[str, Callable[[], object]] = {"raw": lambda: message.ParseFromString(data)}
    timed.update({name: functools.partial(decode, data) for name, decode in decoders.items()})
    best = dict.fromkeys(timed, float("inf"))
    for _ in range(args.repeat):  # interleaved: the shared CPUs' load hits every contender alike
        for name, run in timed.items():
            best[name] = min(best[name], timeit.timeit(run, number=args.number) / args.number)

    raw = best["raw"]
    print(f"frame: {args.instruments} instruments, full mode, {len(data)} bytes")
    print(f"raw protobuf ParseFromString: {raw * 1e6:9.1f} us/frame")
    for name in decoders:
        print(f"{name + ' decode -> Ticks:':30}{best[name] * 1e6:9.1f} us/frame "
              f"({best[name] / args.instruments * 1e9:5.0f} ns/tick)  ratio {best[name] / raw:5.2f}x raw")
    if "native" not in decoders:
        print("native decoder: not built (engine.feed._fastfeed missing; `pip install -e .` builds it)")
    used = "native" if decode_frame is decode_frame_native else "python"
    ratio = best[used] / raw
    verdict = "OK" if ratio <= TARGET_RATIO else "MISSED"
    print(f"ratio decode_frame ({used})/raw: {ratio:.2f}x (target <= {TARGET_RATIO:.1f}x) {verdict}")
    return 1 if args.strict and ratio > TARGET_RATIO else 0


if __name__ == "__main__":
    raise SystemExit(main())
