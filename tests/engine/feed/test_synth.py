"""Derived tick paths stay inside each real bar and add back up to it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.feed.synth import BAR_MS, MINUTE_MS, bar_path, candles, day_ticks
from engine.models import IST, Bar, Timeframe

prices = st.floats(min_value=0.05, max_value=100_000, allow_nan=False, allow_infinity=False)


@st.composite
def bars(draw: st.DrawFn) -> tuple[float, float, float, float, int]:
    low, high = sorted((draw(prices), draw(prices)))
    open_ = draw(st.floats(min_value=low, max_value=high))
    close = draw(st.floats(min_value=low, max_value=high))
    return open_, high, low, close, draw(st.integers(min_value=0, max_value=10**9))


@given(bars(), st.integers(min_value=1, max_value=6), st.sampled_from([None, 0.05, 0.01, 1.0]))
def test_path_stays_in_the_bar_starts_at_open_ends_at_close_and_keeps_the_volume(
    bar: tuple[float, float, float, float, int], points_per_leg: int, tick_size: float | None
) -> None:
    open_, high, low, close, volume = bar
    path = bar_path(open_, high, low, close, volume, points_per_leg=points_per_leg, tick_size=tick_size)
    assert path[0].price == open_ and path[0].offset_ms == 0
    assert path[-1].price == close
    assert all(low <= point.price <= high for point in path)
    assert sum(point.volume for point in path) == volume
    assert max(p.price for p in path) == high and min(p.price for p in path) == low  # the range is visited
    offsets = [point.offset_ms for point in path]
    assert offsets == sorted(set(offsets)) and offsets[-1] < BAR_MS
    assert len(path) == 3 * points_per_leg + 1


def test_path_order_low_first_on_up_bars_and_high_first_on_down_bars() -> None:
    up = [p.price for p in bar_path(100.0, 103.0, 99.0, 102.0, 70, points_per_leg=1)]
    down = [p.price for p in bar_path(102.0, 103.0, 99.0, 100.0, 70, points_per_leg=1)]
    assert up == [100.0, 99.0, 103.0, 102.0]
    assert down == [102.0, 103.0, 99.0, 100.0]


def test_inconsistent_bar_is_rejected() -> None:
    with pytest.raises(ValueError, match="inconsistent bar"):
        bar_path(100.0, 99.0, 98.0, 100.0, 1)


def _day(start: datetime) -> list[Bar]:
    rows = [(100.0, 101.0, 99.5, 100.5, 700), (100.5, 100.6, 98.0, 98.2, 1401), (98.2, 99.0, 98.2, 99.0, 0)]
    return [
        Bar("X", start + timedelta(minutes=5 * i), o, h, lo, c, v, Timeframe.MIN5)
        for i, (o, h, lo, c, v) in enumerate(rows)
    ]


def test_day_ticks_cumulate_volume_and_aggregate_back_to_the_real_bars() -> None:
    start = datetime(2024, 6, 4, 9, 15, tzinfo=IST)
    day = _day(start)
    ticks = day_ticks("NSE_EQ|X", day, close_prev=99.0, tick_size=0.05)
    assert ticks[0].ltt_ms == int(start.timestamp() * 1000) and ticks[0].ltp == 100.0
    assert ticks[-1].volume == sum(bar.volume for bar in day)
    assert [t.volume for t in ticks] == sorted(t.volume for t in ticks)
    assert all(t.close_prev == 99.0 and t.day_open == 100.0 for t in ticks)
    assert ticks[-1].day_high == 101.0 and ticks[-1].day_low == 98.0
    origin = int(start.timestamp() * 1000)
    five = candles(ticks, interval_ms=BAR_MS, origin_ms=origin)
    assert [(c.open, c.high, c.low, c.close, c.volume) for c in five] == [
        (b.open, b.high, b.low, b.close, b.volume) for b in day
    ]
    minutes = candles(ticks, interval_ms=MINUTE_MS, origin_ms=origin)
    assert [c.start_ms for c in minutes] == [origin + i * MINUTE_MS for i in range(15)]  # no minute missing
    assert sum(c.volume for c in minutes) == 2101


def test_day_ticks_are_deterministic() -> None:
    day = _day(datetime(2024, 6, 4, 9, 15, tzinfo=IST))
    assert day_ticks("K", day, tick_size=0.05) == day_ticks("K", day, tick_size=0.05)
