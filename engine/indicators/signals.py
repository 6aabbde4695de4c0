"""Signal helpers for strategies: plain functions of a `TimeframeSnapshot` (or the whole
`IndicatorSnapshot`). Each returns None when an input is missing (not enough history), so a
strategy can tell "no" from "don't know yet".

Values include the forming bar (see `engine.indicators.multitimeframe`); `<name>_prev` is the value
as of the bar before. Volume of a forming daily bar is the volume so far today: compare it with
care early in the session (`volume_ratio` divides by the average of CLOSED bars by default).
"""

from __future__ import annotations

from typing import Literal

from engine.indicators.snapshot import IndicatorSnapshot, TimeframeSnapshot
from engine.models import Timeframe

Cross = Literal["up", "down"]


def price_vs_ma(frame: TimeframeSnapshot, ma: str = "sma_200") -> float | None:
    """Relative distance of the close from a moving average: close / ma - 1 (> 0: above)."""
    value = frame.get(ma)
    if value is None or value == 0:
        return None
    return frame.close / value - 1.0


def is_above(frame: TimeframeSnapshot, ma: str = "sma_200") -> bool | None:
    """Close strictly above the moving average."""
    value = frame.get(ma)
    return None if value is None else frame.close > value


def ma_slope(frame: TimeframeSnapshot, ma: str = "sma_200", relative: bool = False) -> float | None:
    """Change of an indicator over the latest bar: value - value_prev (relative: / value_prev)."""
    value, prev = frame.get(ma), frame.get(f"{ma}_prev")
    if value is None or prev is None:
        return None
    if relative:
        return None if prev == 0 else value / prev - 1.0
    return value - prev


def is_rising(frame: TimeframeSnapshot, ma: str = "sma_200") -> bool | None:
    slope = ma_slope(frame, ma)
    return None if slope is None else slope > 0


def volume_ratio(frame: TimeframeSnapshot, average: str = "avg_volume_20", closed_only: bool = True) -> float | None:
    """Latest bar's volume / average volume. With `closed_only` the average is over the closed bars
    before the latest one (`<average>_prev`), so the bar is compared with its history."""
    value = frame.get(f"{average}_prev" if closed_only else average)
    if value is None or value <= 0:
        return None
    return frame.volume / value


def cross(frame: TimeframeSnapshot, fast: str = "sma_9", slow: str = "sma_200") -> Cross | None:
    """Return "up" if `fast` crossed above `slow` on the latest bar (was <=, now >), "down" if it crossed
    below (was >=, now <), else None (also when a value is missing)."""
    fast_now, slow_now = frame.get(fast), frame.get(slow)
    fast_prev, slow_prev = frame.get(f"{fast}_prev"), frame.get(f"{slow}_prev")
    if fast_now is None or slow_now is None or fast_prev is None or slow_prev is None:
        return None
    if fast_prev <= slow_prev and fast_now > slow_now:
        return "up"
    if fast_prev >= slow_prev and fast_now < slow_now:
        return "down"
    return None


def crossed_above(frame: TimeframeSnapshot, fast: str = "sma_9", slow: str = "sma_200") -> bool:
    return cross(frame, fast, slow) == "up"


def crossed_below(frame: TimeframeSnapshot, fast: str = "sma_9", slow: str = "sma_200") -> bool:
    return cross(frame, fast, slow) == "down"


def above_on_all(snapshot: IndicatorSnapshot, ma: str = "sma_200") -> dict[Timeframe, bool | None]:
    """`is_above` on the daily, weekly and monthly timeframes."""
    return {tf: is_above(snapshot.timeframe(tf), ma) for tf in (Timeframe.DAY, Timeframe.WEEK, Timeframe.MONTH)}
