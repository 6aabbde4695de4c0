"""The hot path, frame in to decisions out (issue 11): 200-instrument full-mode frames (decode included)
through the TradingEngine on the paper broker, outside the entry window (a frame a second from 13:00)
and inside it (from 15:10:30, as many frames a second as keep them all inside: 0.435 s apart for 2000).

The universe is every shipped instrument (181) with indicator state built from the shipped daily bars as
of 2024-06-03, the configured strategy and risk; each frame also carries 19 keys the engine does not
trade (as a real subscription does). Prices walk from each symbol's last close. Targets: p99 <= 1 ms
per frame and >= 250k instrument-updates/s per core, in both phases; the ratio to a raw protobuf parse
of the same frames is printed as well, and the CPU time of the same frames (on a busy machine the wall
clock also counts other processes' turns).

Run: .venv/bin/python bench/bench_pipeline.py [--frames 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.brokers.paper import PaperBroker  # noqa: E402
from engine.clock import SteppedClock  # noqa: E402
from engine.data.instruments import load_instruments  # noqa: E402
from engine.execution.manager import OrderManager  # noqa: E402
from engine.feed.decoder import decode_frame  # noqa: E402
from engine.feed.proto import MarketDataFeedV3_pb2 as pb  # noqa: E402
from engine.indicators.metadata import build_metadata  # noqa: E402
from engine.models import IST, Instrument  # noqa: E402
from engine.settings import load_settings  # noqa: E402
from engine.storage import BarStore, init_db  # noqa: E402
from engine.strategy import load_strategy  # noqa: E402
from engine.trader import TradingEngine, required_indicator_config  # noqa: E402

DAY = date(2024, 6, 4)
ASOF = date(2024, 6, 3)
FRAME_INSTRUMENTS = 200
P99_TARGET_MS = 1.0
RATE_TARGET = 250_000


def _frames(instruments: list[Instrument], closes: dict[str, float], start: datetime, count: int,
            spacing_ms: int) -> list[bytes]:
    """Full-mode live_feed frames, one every `spacing_ms` from `start`, every instrument in each."""
    rng = random.Random(7)
    keys = [i.instrument_key for i in instruments]
    keys += [f"NSE_EQ|INE{n:06d}X01010" for n in range(FRAME_INSTRUMENTS - len(keys))]
    prices = {key: closes.get(key, 100.0) for key in keys}
    frames = []
    for n in range(count):
        ms = int(start.timestamp() * 1000) + spacing_ms * n
        response = pb.FeedResponse(type=pb.live_feed, currentTs=ms)
        for key in keys:
            price = prices[key] = round(prices[key] * (1 + rng.uniform(-0.001, 0.001)), 2)
            market = response.feeds[key].fullFeed.marketFF
            response.feeds[key].requestMode = pb.full_d5
            market.ltpc.ltp, market.ltpc.ltt, market.ltpc.ltq, market.ltpc.cp = price, ms, 10, price * 0.99
            for level in range(5):
                market.marketLevel.bidAskQuote.add(bidQ=100, bidP=price - 0.05 * (level + 1), askQ=90,
                                                   askP=price + 0.05 * (level + 1))
            market.marketOHLC.ohlc.add(interval="1d", open=price, high=price * 1.01, low=price * 0.99, close=price,
                                       vol=1_000_000 + n, ts=ms - ms % 86_400_000)
            market.vtt, market.atp = 1_000_000 + n, price
        frames.append(response.SerializeToString())
    return frames


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def _phase(engine: TradingEngine, clock: SteppedClock, frames: list[bytes], start: datetime, spacing_ms: int
                 ) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each frame, decode included."""
    seconds, cpu_seconds = [], []
    for n, frame in enumerate(frames):
        clock.set(datetime.fromtimestamp(start.timestamp() + n * spacing_ms / 1000, IST))
        cpu_began, began = time.thread_time(), time.perf_counter()
        await engine.on_ticks(decode_frame(frame).ticks)
        seconds.append(time.perf_counter() - began)
        cpu_seconds.append(time.thread_time() - cpu_began)
    return seconds, cpu_seconds


def _raw_parse_seconds(frames: list[bytes]) -> float:
    began = time.perf_counter()
    for frame in frames:
        pb.FeedResponse().ParseFromString(frame)
    return (time.perf_counter() - began) / len(frames)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    settings = load_settings()
    instruments = load_instruments(Path(settings.data_dir))[: FRAME_INSTRUMENTS]
    strategy = load_strategy(settings)
    metadata = build_metadata(BarStore(Path(settings.data_dir) / "bars"), [i.symbol for i in instruments], asof=ASOF,
                              config=required_indicator_config(settings, strategy))
    instruments = [i for i in instruments if i.symbol in metadata.instruments]
    closes = {i.instrument_key: metadata.instruments[i.symbol].snapshot().daily.close for i in instruments}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        # a frame a second from 13:00; from 15:10:30 as many as fit before the window closes at 15:25
        inside_spacing_ms = min(1000, 870_000 // args.frames)
        for label, hh, mm, ss, spacing_ms in (("outside the entry window", 13, 0, 0, 1000),
                                              ("inside the entry window", 15, 10, 30, inside_spacing_ms)):
            start = datetime(DAY.year, DAY.month, DAY.day, hh, mm, ss, tzinfo=IST)
            clock = SteppedClock(start)
            db = init_db(f"sqlite:///{folder}/{hh}.db")
            broker = PaperBroker(clock, instruments=instruments, db=db)
            fresh = build_metadata(BarStore(Path(settings.data_dir) / "bars"), [i.symbol for i in instruments],
                                   asof=ASOF, config=required_indicator_config(settings, strategy)).instruments
            engine = TradingEngine(settings, clock, instruments, fresh, strategy,
                                   OrderManager(broker, db, clock, trading_day=DAY), db, DAY, broker)
            await engine.resume()
            frames = _frames(instruments, closes, start, args.frames, spacing_ms)
            if hh == 15:
                await engine.execute_entry_window()  # the window is open: candidates are decided on each call
            seconds, cpu_seconds = await _phase(engine, clock, frames, start, spacing_ms)
            raw = _raw_parse_seconds(frames)
            rows.append((label, seconds, cpu_seconds, raw))
    ok = True
    print(f"{len(instruments)} traded instruments, {FRAME_INSTRUMENTS} per frame, {args.frames} frames per phase")
    for label, seconds, cpu_seconds, raw in rows:
        p50, p99 = _percentile(seconds, 0.5) * 1000, _percentile(seconds, 0.99) * 1000
        rate = FRAME_INSTRUMENTS * len(seconds) / sum(seconds)
        cpu_p99, cpu_rate = _percentile(cpu_seconds, 0.99) * 1000, FRAME_INSTRUMENTS * len(seconds) / sum(cpu_seconds)
        p99_ok, rate_ok = p99 <= P99_TARGET_MS, rate >= RATE_TARGET
        ok = ok and p99_ok and rate_ok
        print(f"{label}: p50 {p50:.3f} ms, p99 {p99:.3f} ms per frame ({p50 / (raw * 1000):.1f}x the raw protobuf "
              f"parse of {raw * 1e6:.0f} us); {rate:,.0f} instrument-updates/s; CPU time: p99 {cpu_p99:.3f} ms, "
              f"{cpu_rate:,.0f}/s")
        print(f"  p99 {p99:.3f} ms vs target {P99_TARGET_MS} ms -> {'OK' if p99_ok else 'MISSED'}; "
              f"{rate:,.0f}/s vs target {RATE_TARGET:,}/s -> {'OK' if rate_ok else 'MISSED'}")
    return 0 if ok or "--strict" not in sys.argv else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
