"""DERIVED ticks: a deterministic price path through each real 5-minute bar.

THE DATA HAS NO TICKS. Everything here is derived from 5-minute OHLCV bars; no tick produced by this
module was ever traded. The path is built so that it never leaves the bar's real range and reproduces
the bar exactly when aggregated back:

* waypoints: open -> low -> high -> close when close >= open, else open -> high -> low -> close
  (the extreme on the "wrong" side first, as a bar that closes up usually dipped first);
* `points_per_leg - 1` evenly interpolated prices between consecutive waypoints (snapped to the tick grid
  when `tick_size` is given, then clamped to [low, high]); waypoints themselves are the bar's exact values;
* the points are spread evenly over the bar, point i at `bar_start + i * bar_ms // n` (n points, so the
  first is at the bar start and all of them lie inside the bar; with n >= 5 every minute has a point);
* the bar's volume is split evenly across the points, the remainder going to the first ones, so the
  point volumes sum to the bar's volume (a tick's `ltq`); `Tick.volume` is the cumulative day volume.

Aggregating the path back to 5-minute bars gives the real bars; aggregating it to 1-minute candles gives the
derived 1-minute candles the replay server serves for backfill (`candles`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.models import Bar, Tick

BAR_MS = 5 * 60 * 1000
MINUTE_MS = 60 * 1000
DEFAULT_POINTS_PER_LEG = 2  # 3 legs -> 7 points per bar: one at least every 43 s


@dataclass(frozen=True, slots=True)
class PathPoint:
    offset_ms: int  # from the bar's start
    price: float
    volume: int  # traded at this point


@dataclass(frozen=True, slots=True)
class Candle:
    """A derived 1-minute (or n-minute) candle; `start_ms` is its start, epoch ms."""

    start_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: int


def waypoints(open_: float, high: float, low: float, close: float) -> tuple[float, float, float, float]:
    """open → low → high → close for a bar that closed up (it most plausibly dipped first), else open → high → low
    → close: the order in which every derived path visits a bar's or candle's extremes."""
    return (open_, low, high, close) if close >= open_ else (open_, high, low, close)


def bar_path(
    open_: float,
    high: float,
    low: float,
    close: float,
    volume: int,
    *,
    points_per_leg: int = DEFAULT_POINTS_PER_LEG,
    tick_size: float | None = None,
    bar_ms: int = BAR_MS,
) -> list[PathPoint]:
    """The derived path through one bar (see the module docstring)."""
    if points_per_leg < 1:
        raise ValueError(f"points_per_leg must be >= 1, got {points_per_leg}")
    if not low <= min(open_, close) <= max(open_, close) <= high:
        raise ValueError(f"inconsistent bar: open={open_} high={high} low={low} close={close}")
    if volume < 0:
        raise ValueError(f"negative bar volume {volume}")
    prices = [open_]
    for start, end in itertools.pairwise(waypoints(open_, high, low, close)):
        for step in range(1, points_per_leg):
            price = start + (end - start) * step / points_per_leg
            if tick_size:
                price = round(round(price / tick_size) * tick_size, 6)
            prices.append(min(high, max(low, price)))
        prices.append(end)
    count = len(prices)
    share, remainder = divmod(volume, count)
    return [
        PathPoint(i * bar_ms // count, price, share + (1 if i < remainder else 0)) for i, price in enumerate(prices)
    ]


def bar_start_ms(bar: Bar) -> int:
    return int(bar.ts.timestamp() * 1000)


def day_ticks(
    instrument_key: str,
    bars: Sequence[Bar],
    *,
    close_prev: float = 0.0,
    tick_size: float | None = None,
    points_per_leg: int = DEFAULT_POINTS_PER_LEG,
) -> list[Tick]:
    """Derived ticks of one instrument through one day's 5-minute `bars` (in time order).

    ltp/ltq from the path; volume = cumulative day volume; day_open/high/low running; atp = the path's
    volume-weighted average so far; bid/ask = ltp -/+ one tick (a derived quote, not a real book)."""
    ticks: list[Tick] = []
    spread = tick_size or 0.05
    day_open = 0.0
    day_high = float("-inf")
    day_low = float("inf")
    volume = 0
    turnover = 0.0
    for bar in bars:
        start = bar_start_ms(bar)
        for point in bar_path(bar.open, bar.high, bar.low, bar.close, bar.volume,
                              points_per_leg=points_per_leg, tick_size=tick_size):
            price = point.price
            if not ticks:
                day_open = price
            day_high = max(day_high, price)
            day_low = min(day_low, price)
            volume += point.volume
            turnover += price * point.volume
            atp = round(turnover / volume, 4) if volume else price
            ticks.append(
                Tick(instrument_key, price, start + point.offset_ms, point.volume, volume, close_prev, day_open,
                     day_high, day_low, atp, 0.0, round(price - spread, 6), round(price + spread, 6))
            )
    return ticks


def candles(ticks: Iterable[Tick], *, interval_ms: int = MINUTE_MS, origin_ms: int = 0) -> list[Candle]:
    """Aggregate ticks (in time order) into candles of `interval_ms` aligned on `origin_ms`; a candle per
    interval that has at least one tick."""
    result: list[Candle] = []
    current: list[float] = []
    current_start = None
    current_volume = 0
    for tick in ticks:
        start = tick.ltt_ms - (tick.ltt_ms - origin_ms) % interval_ms
        if start != current_start:
            if current_start is not None:
                result.append(Candle(current_start, current[0], max(current), min(current), current[-1],
                                     current_volume))
            current_start, current, current_volume = start, [], 0
        current.append(tick.ltp)
        current_volume += tick.ltq
    if current_start is not None:
        result.append(Candle(current_start, current[0], max(current), min(current), current[-1], current_volume))
    return result
