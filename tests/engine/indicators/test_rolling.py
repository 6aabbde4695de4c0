from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.indicators import rolling
from engine.indicators.multitimeframe import IndicatorConfig
from engine.indicators.rolling import ATR, EMA, SMA, AverageVolume, Highest, Lowest
from engine.models import IST, Bar
from tests.engine.indicators.reference import assert_close, reference_values, synthetic_daily


@pytest.mark.parametrize("period", [1, 2, 5, 20])
def test_each_indicator_matches_pandas_after_every_bar_and_with_a_forming_bar(period: int) -> None:
    bars = synthetic_daily(120, seed=period)
    config = IndicatorConfig(
        sma_periods=(period,), ema_periods=(period,), atr_periods=(period,),
        extreme_periods=(period,), avg_volume_periods=(period,),
    )  # fmt: skip
    expected = reference_values(bars, config)
    indicators: dict[str, Any] = {
        f"sma_{period}": SMA(period), f"ema_{period}": EMA(period), f"atr_{period}": ATR(period),
        f"highest_high_{period}": Highest(period), f"lowest_low_{period}": Lowest(period),
        f"avg_volume_{period}": AverageVolume(period),
    }  # fmt: skip
    for i, row in enumerate(bars.itertuples()):
        bar = Bar("X", row.ts.to_pydatetime(), row.open, row.high, row.low, row.close, int(row.volume))
        for name, indicator in indicators.items():
            # the value with this bar still forming equals the value once it has closed
            if isinstance(indicator, ATR):
                forming = indicator.value_with(bar.high, bar.low)
            elif isinstance(indicator, Highest):
                forming = indicator.value_with(bar.high)
            elif isinstance(indicator, Lowest):
                forming = indicator.value_with(bar.low)
            elif isinstance(indicator, AverageVolume):
                forming = indicator.value_with(float(bar.volume))
            else:
                forming = indicator.value_with(bar.close)
            assert_close(forming, expected[name].iloc[i], f"bar {i} {name} forming")
            indicator.update(bar)
            assert_close(indicator.value, expected[name].iloc[i], f"bar {i} {name}")
            assert_close(indicator.prev_value, expected[f"{name}_prev"].iloc[i], f"bar {i} {name}_prev")
            assert indicator.initialized == (indicator.value is not None)


def test_reset_forgets_history() -> None:
    sma = SMA(3)
    for x in (1.0, 2.0, 3.0):
        sma.push(x)
    assert sma.value == 2.0
    sma.reset()
    assert (sma.value, sma.initialized, sma.count) == (None, False, 0)
    for x in (4.0, 5.0, 6.0):
        sma.push(x)
    assert sma.value == 5.0


def test_invalid_period_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        SMA(0)


def test_a_million_updates_do_not_drift_from_the_exact_window_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prices around 1e5 with small steps and a huge outlier: the classic cancellation trap. The
    # periodic exact recompute is disabled so that compensated summation alone must hold.
    monkeypatch.setattr(rolling, "EXACT_RECOMPUTE_EVERY", 10**12)
    rng = random.Random(3)
    fast, slow = SMA(9), SMA(200)
    window: list[float] = []
    worst = 0.0
    x = 1e5
    for i in range(1_000_000):
        x = 1e9 if i == 500_000 else abs(x + rng.uniform(-1, 1)) + 1e-3 if x < 1e8 else 1e5
        fast.push(x)
        slow.push(x)
        if i % 100_000 == 99_999 or i == 500_005:
            window = list(slow._values)
            exact = math.fsum(window) / 200
            worst = max(worst, abs(slow.value - exact) / exact)  # type: ignore[operator]
            exact_fast = math.fsum(window[-9:]) / 9
            worst = max(worst, abs(fast.value - exact_fast) / exact_fast)  # type: ignore[operator]
    assert worst < 1e-13


def test_highest_and_lowest_match_a_brute_force_window_on_random_data() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(100, 5, 3000).round(1)  # many ties
    for period in (1, 3, 20):
        highest, lowest = Highest(period), Lowest(period)
        for i, x in enumerate(values):
            assert highest.value_with(x) == (values[max(0, i - period + 1) : i + 1].max() if i >= period - 1 else None)
            highest.push(x)
            lowest.push(x)
            window = values[max(0, i - period + 1) : i + 1]
            assert highest.value == (window.max() if i >= period - 1 else None)
            assert lowest.value == (window.min() if i >= period - 1 else None)


def test_restore_from_the_tail_continues_like_straight_through() -> None:
    series = pd.Series(np.random.default_rng(2).normal(50, 3, 400))
    straight, restored = SMA(20), SMA(20)
    high_straight, high_restored = Highest(20), Highest(20)
    for x in series[:300]:
        straight.push(x)
        high_straight.push(x)
    restored.restore(list(series[279:300]), 300)
    high_restored.restore(list(series[279:300]), 300)
    assert restored.prev_value == pytest.approx(straight.prev_value, rel=1e-12)
    assert high_restored.prev_value == high_straight.prev_value
    for x in series[300:]:
        straight.push(x)
        restored.push(x)
        high_straight.push(x)
        high_restored.push(x)
        assert restored.value == pytest.approx(straight.value, rel=1e-12)
        assert high_restored.value == high_straight.value


def test_update_takes_a_bar() -> None:
    from datetime import datetime

    atr = ATR(1)
    atr.update(Bar("X", datetime(2024, 1, 1, tzinfo=IST), 10, 12, 9, 11, 100))
    atr.update(Bar("X", datetime(2024, 1, 2, tzinfo=IST), 14, 15, 14, 15, 100))  # gap up: TR = 15 - 11
    assert atr.value == 4.0


def test_the_periodic_exact_recompute_keeps_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rolling, "EXACT_RECOMPUTE_EVERY", 7)
    values = [float(x % 13) * 1.1 for x in range(100)]
    sma = SMA(5)
    for i, x in enumerate(values):
        sma.push(x)
        if i >= 4:
            assert sma.value == pytest.approx(math.fsum(values[i - 4 : i + 1]) / 5, rel=1e-15)
            assert sma.value_with(2.0) == pytest.approx((math.fsum(values[i - 3 : i + 1]) + 2.0) / 5, rel=1e-15)
