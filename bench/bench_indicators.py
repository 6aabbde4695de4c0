"""Indicator benchmarks (targets from issue 4):

1. per-tick `InstrumentIndicators.update_tick` (forming daily, weekly and monthly bars): <= 2 µs;
   also measured: a tick followed by a full `snapshot()` (all indicator values of all timeframes), and
   by the reads of a trend rule (`_rule_reads`: what the example strategy reads per tick).
2. `build_metadata` for ~500 symbols x 6 years of daily bars from
   ../shared/data/nse/daily_nifty500_2018_2024_unadjusted/: < 2 s (the CSVs are first converted to a
   temporary BarStore, not timed); `save_metadata` and `load_metadata` (target: well under 1 s).

Run: .venv/bin/python bench/bench_indicators.py
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from bench.nifty500 import NIFTY500, csv_to_store  # noqa: E402
from engine.indicators import IndicatorSnapshot, InstrumentIndicators  # noqa: E402
from engine.indicators.metadata import build_metadata, load_metadata, save_metadata  # noqa: E402
from engine.indicators.multitimeframe import DAY_MS, IST_OFFSET_MS, day_number  # noqa: E402
from engine.storage.bars import BarStore  # noqa: E402

TICK_TARGET_US = 2.0
BUILD_TARGET_S = 2.0
LOAD_TARGET_S = 1.0


def _warm_instrument() -> InstrumentIndicators:
    indicators = InstrumentIndicators("BENCH")
    rng = random.Random(1)
    price = 1000.0
    for day in pd.bdate_range("2018-01-01", "2024-03-28"):
        price *= 1 + rng.gauss(0, 0.015)
        high, low = price * 1.01, price * 0.99
        indicators.add_daily_bar(day_number(day.date()), price, high, low, price, rng.randint(1000, 10**6))
    return indicators


def _rule_reads(snapshot: IndicatorSnapshot) -> None:
    """What `trend_pullback` reads when every rule passes: 3 timeframes, 7 values, 8 bar fields."""
    monthly, weekly, daily = snapshot.monthly, snapshot.weekly, snapshot.daily
    monthly.get("sma_9"), monthly.get("sma_9_prev"), monthly.close, weekly.get("sma_9"), weekly.close
    daily.bars, daily.get("sma_9"), daily.get("sma_200"), daily.get("atr_14"), daily.close, daily.low, daily.open


def bench_ticks(n: int = 1_000_000) -> tuple[float, float, float]:
    indicators = _warm_instrument()
    day = day_number(date(2024, 4, 1))
    start_ms = day * DAY_MS - IST_OFFSET_MS + 33_300_000
    rng = random.Random(2)
    prices = [1000.0 + rng.uniform(-20, 20) for _ in range(4096)]
    update = indicators.update_tick
    t0 = time.perf_counter()
    for i in range(n):
        update(prices[i & 4095], i, start_ms + i)
    per_tick = (time.perf_counter() - t0) / n * 1e6
    assert sum(indicators.rejections.values()) == 0
    m = n // 20
    snapshot = indicators.snapshot
    t0 = time.perf_counter()
    for i in range(n, n + m):
        update(prices[i & 4095], i, start_ms + i)
        snapshot().as_dict()  # the snapshot is lazy: read every value
    per_tick_and_snapshot = (time.perf_counter() - t0) / m * 1e6
    t0 = time.perf_counter()
    for i in range(n + m, n + 2 * m):
        update(prices[i & 4095], i, start_ms + i)
        _rule_reads(snapshot())
    per_tick_and_rule = (time.perf_counter() - t0) / m * 1e6
    return per_tick, per_tick_and_snapshot, per_tick_and_rule


def bench_metadata() -> tuple[int, int, float, float, float] | None:
    if not NIFTY500.exists():
        print(f"metadata bench skipped: {NIFTY500} not found (it lives outside the repository)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        store = BarStore(Path(tmp) / "bars")
        symbols = csv_to_store(store)
        bars = sum(len(store.read(s, "1d")) for s in symbols[:20]) * len(symbols) // 20
        asof = date(2024, 3, 28)
        t0 = time.perf_counter()
        metadata = build_metadata(store, symbols, asof)
        build_s = time.perf_counter() - t0
        path = Path(tmp) / "indicators.parquet"
        t0 = time.perf_counter()
        save_metadata(path, metadata)
        save_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded = load_metadata(path)
        load_s = time.perf_counter() - t0
        assert sorted(loaded) == sorted(metadata.instruments)
        return len(symbols), bars, build_s, save_s, load_s


def main() -> None:
    per_tick, per_tick_and_snapshot, per_tick_and_rule = bench_ticks()
    print(f"update_tick (daily+weekly+monthly forming bars): {per_tick:.3f} µs/tick "
          f"(target {TICK_TARGET_US} µs, ratio {per_tick / TICK_TARGET_US:.2f})")  # fmt: skip
    print(f"update_tick + snapshot() of all values:          {per_tick_and_snapshot:.3f} µs/tick")
    print(f"update_tick + snapshot() read by a trend rule:   {per_tick_and_rule:.3f} µs/tick")
    result = bench_metadata()
    if result is not None:
        symbols, bars, build_s, save_s, load_s = result
        print(f"build_metadata: {symbols} symbols, ~{bars} daily bars: {build_s:.3f} s "
              f"(target {BUILD_TARGET_S} s, ratio {build_s / BUILD_TARGET_S:.2f})")  # fmt: skip
        print(f"save_metadata: {save_s:.3f} s")
        print(f"load_metadata: {load_s:.3f} s (target < {LOAD_TARGET_S} s, ratio {load_s / LOAD_TARGET_S:.2f})")


if __name__ == "__main__":
    main()
