from __future__ import annotations

from datetime import date

import pytest

from engine.indicators import IndicatorConfig, InstrumentIndicators, signals
from engine.indicators.multitimeframe import day_number
from engine.indicators.snapshot import TimeframeSnapshot
from engine.models import Timeframe


def frame(close: float = 100.0, volume: float = 500.0, **values: float | None) -> TimeframeSnapshot:
    return TimeframeSnapshot(Timeframe.DAY, None, close, close, close, close, volume, 10, dict(values))


def test_price_vs_ma_and_is_above() -> None:
    assert signals.price_vs_ma(frame(110.0, sma_200=100.0)) == pytest.approx(0.1)
    assert signals.is_above(frame(110.0, sma_200=100.0)) is True
    assert signals.is_above(frame(100.0, sma_200=100.0)) is False
    assert signals.is_above(frame(sma_200=None)) is None
    assert signals.price_vs_ma(frame()) is None


def test_slope_and_rising() -> None:
    assert signals.ma_slope(frame(sma_200=101.0, sma_200_prev=100.0)) == pytest.approx(1.0)
    assert signals.ma_slope(frame(sma_200=101.0, sma_200_prev=100.0), relative=True) == pytest.approx(0.01)
    assert signals.is_rising(frame(sma_9=99.0, sma_9_prev=100.0), "sma_9") is False
    assert signals.is_rising(frame(sma_9=99.0, sma_9_prev=None), "sma_9") is None


def test_volume_ratio_uses_the_closed_average_by_default() -> None:
    f = frame(volume=300.0, avg_volume_20=110.0, avg_volume_20_prev=100.0)
    assert signals.volume_ratio(f) == pytest.approx(3.0)
    assert signals.volume_ratio(f, closed_only=False) == pytest.approx(300 / 110)
    assert signals.volume_ratio(frame(avg_volume_20_prev=0.0)) is None


@pytest.mark.parametrize(
    ("fast_prev", "slow_prev", "fast", "slow", "expected"),
    [(9, 10, 11, 10, "up"), (10, 10, 11, 10, "up"), (11, 10, 9, 10, "down"), (11, 10, 12, 10, None),
     (9, 10, 9.5, 10, None), (10, 10, 10, 10, None)],
)  # fmt: skip
def test_cross(fast_prev: float, slow_prev: float, fast: float, slow: float, expected: str | None) -> None:
    f = frame(sma_9=fast, sma_9_prev=fast_prev, sma_200=slow, sma_200_prev=slow_prev)
    assert signals.cross(f) == expected
    assert signals.crossed_above(f) == (expected == "up")
    assert signals.crossed_below(f) == (expected == "down")
    assert signals.cross(frame(sma_9=1.0, sma_200=2.0)) is None


def test_a_golden_cross_seen_live_on_the_forming_bar() -> None:
    config = IndicatorConfig(sma_periods=(2, 4))
    indicators = InstrumentIndicators("X", config)
    start = day_number(date(2024, 1, 1))
    for i, close in enumerate([10.0, 9.0, 8.0, 7.0]):  # falling: fast below slow
        indicators.add_daily_bar(start + i, close, close, close, close, 100.0)
    snap = indicators.snapshot()
    assert signals.is_above(snap.daily, "sma_4") is False
    ts = (start + 4) * 86_400_000 - 19_800_000 + 33_300_000
    indicators.update_tick(20.0, 100, ts)  # a jump today: fast (7+20)/2 > slow (9+8+7+20)/4
    daily = indicators.snapshot().daily
    assert signals.cross(daily, "sma_2", "sma_4") == "up"
    assert signals.above_on_all(indicators.snapshot(), "sma_2")[Timeframe.DAY] is True
