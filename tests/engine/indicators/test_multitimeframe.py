from __future__ import annotations

import math
from datetime import date, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.indicators import IndicatorConfig, IndicatorSnapshot, InstrumentIndicators
from engine.indicators.multitimeframe import DAY_MS, IST_OFFSET_MS, day_number
from engine.models import IST, Bar, Tick, Timeframe
from tests.engine.indicators.reference import assert_close, reference_values, resample

TINY = IndicatorConfig(
    sma_periods=(2, 3), ema_periods=(2,), atr_periods=(2,), extreme_periods=(3,), avg_volume_periods=(2,)
)
START = date(2024, 1, 1)
OPEN_MS = 9 * 3_600_000 + 15 * 60_000


def session_ms(day: date, offset_ms: int = 0) -> int:
    return day_number(day) * DAY_MS - IST_OFFSET_MS + OPEN_MS + offset_ms


def bars_from_ticks(days: dict[date, list[tuple[float, float]]]) -> pd.DataFrame:
    """Recompute daily bars from scratch: (price, cumulative volume) ticks per day."""
    rows = [
        {
            "ts": pd.Timestamp(day, tz=IST),
            "open": ticks[0][0],
            "high": max(p for p, _ in ticks),
            "low": min(p for p, _ in ticks),
            "close": ticks[-1][0],
            "volume": ticks[-1][1],
        }
        for day, ticks in sorted(days.items())
    ]
    return pd.DataFrame(rows)


def assert_snapshot_matches_recompute(
    snapshot: IndicatorSnapshot, daily: pd.DataFrame, config: IndicatorConfig
) -> None:
    for frame, bars in (
        (snapshot.daily, daily.set_index("ts")),
        (snapshot.weekly, resample(daily, "W-SUN")),
        (snapshot.monthly, resample(daily, "ME")),
    ):
        expected = reference_values(bars, config)
        last = bars.iloc[-1]
        context = f"{frame.timeframe} as of {snapshot.asof}"
        assert frame.bars == len(bars), context
        assert (frame.open, frame.high, frame.low, frame.close) == (last.open, last.high, last.low, last.close), context
        assert frame.volume == pytest.approx(last.volume, rel=1e-12), context
        assert frame.bar_start is not None and frame.bar_start <= bars.index[-1]
        for name, value in frame.values.items():
            assert_close(value, expected[name].iloc[-1], f"{context} {name}")


tick_strategy = st.tuples(
    st.floats(1.0, 5000.0, allow_nan=False, allow_infinity=False),  # price
    st.integers(0, 10_000),  # volume increment
    st.integers(0, 60_000),  # ms after the previous tick
)
day_strategy = st.tuples(
    st.integers(1, 12),  # calendar days after the previous session
    st.lists(tick_strategy, min_size=1, max_size=6),
    st.booleans(),  # close_day explicitly (else the next day's first tick rolls it)
    st.sampled_from([None, "nan", "negative", "late", "volume_down"]),  # a bad tick injected mid-day
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(day_strategy, min_size=1, max_size=45), st.integers(0, 200))
def test_any_tick_sequence_folds_to_the_same_values_as_a_recompute_from_scratch(
    days: list[tuple[int, list[tuple[float, int, int]], bool, str | None]], start_offset: int
) -> None:
    indicators = InstrumentIndicators("X", TINY)
    seen: dict[date, list[tuple[float, float]]] = {}
    expected_rejections: dict[str, int] = {}
    day = START + timedelta(days=start_offset)
    for gap, ticks, explicit_close, bad in days:
        day += timedelta(days=gap)
        offset, volume = 0, 0
        for i, (price, volume_step, ms_step) in enumerate(ticks):
            offset, volume = offset + ms_step + 1, volume + volume_step
            assert indicators.update_tick(price, volume, session_ms(day, offset))
            indicators.snapshot()  # per tick, as the trader does: its caches must not go stale
            seen.setdefault(day, []).append((price, float(volume)))
            if i == 0 and bad is not None and not (bad == "volume_down" and volume == 0):
                reason, args = {
                    "nan": ("bad_price", (math.nan, volume, session_ms(day, offset))),
                    "negative": ("bad_price", (-price, volume, session_ms(day, offset))),
                    "late": ("out_of_order", (price, volume, session_ms(day, offset - 1))),
                    "volume_down": ("volume_decreased", (price, volume - 1, session_ms(day, offset))),
                }[bad]
                assert not indicators.update_tick(*args)
                expected_rejections[reason] = expected_rejections.get(reason, 0) + 1
        if explicit_close:
            indicators.close_day()
        assert_snapshot_matches_recompute(indicators.snapshot(), bars_from_ticks(seen), TINY)
    assert dict(indicators.rejections) == expected_rejections


def test_a_new_day_with_the_same_high_and_low_gets_fresh_values() -> None:
    """Snapshots per tick; day 3's range equals day 2's, but its ATR starts from day 2's close."""
    indicators = InstrumentIndicators("X", TINY)
    seen: dict[date, list[tuple[float, float]]] = {}
    for n, prices in enumerate(([20.0], [10.0], [10.0, 10.0])):
        day = START + timedelta(days=n)
        for i, price in enumerate(prices):
            assert indicators.update_tick(price, float(i), session_ms(day, i))
            seen.setdefault(day, []).append((price, float(i)))
            assert_snapshot_matches_recompute(indicators.snapshot(), bars_from_ticks(seen), TINY)


def test_bad_ticks_are_rejected_counted_and_never_folded_in() -> None:
    indicators = InstrumentIndicators("X", TINY)
    day = date(2024, 6, 3)
    assert indicators.update_tick(100.0, 10, session_ms(day, 0))
    before = indicators.snapshot().as_dict()
    bad = [
        (math.nan, 20, session_ms(day, 1)),
        (math.inf, 20, session_ms(day, 1)),
        (0.0, 20, session_ms(day, 1)),
        (-5.0, 20, session_ms(day, 1)),
        (101.0, 20, session_ms(day, -1)),
        (101.0, 5, session_ms(day, 2)),
        (101.0, math.nan, session_ms(day, 2)),
    ]
    for args in bad:
        assert not indicators.update_tick(*args)
    assert indicators.snapshot().as_dict() == before
    assert indicators.rejections == {"bad_price": 4, "out_of_order": 1, "volume_decreased": 1, "bad_volume": 1}
    indicators.close_day()
    assert not indicators.update_tick(101.0, 30, session_ms(day, 10))
    assert indicators.rejections["day_closed"] == 1
    assert not indicators.on_bar(Bar("X", pd.Timestamp(day, tz=IST).to_pydatetime(), 1, 2, 0.5, 1.5, 10))
    assert indicators.rejections["duplicate_day"] == 1
    assert not indicators.on_bar(Bar("X", pd.Timestamp(day, tz=IST).to_pydatetime(), 1, 0.5, 2, 1.5, 10))
    assert indicators.rejections["bad_bar"] == 1
    earlier = pd.Timestamp(day - timedelta(days=3), tz=IST).to_pydatetime()
    assert not indicators.on_bar(Bar("X", earlier, 1, 2, 0.5, 1.5, 10))
    assert indicators.rejections["out_of_order"] == 2


def test_ticks_then_bars_match_pandas_across_weeks_and_months(
    daily_fixture: pd.DataFrame, small_config: IndicatorConfig
) -> None:
    """History via on_bar, then live days via ticks (each bar turned into 4 ticks o, h, l, c that
    stay inside the bar), then the official bar replacing the last tick-built day."""
    history, live = daily_fixture.iloc[:-15], daily_fixture.iloc[-15:]
    indicators = InstrumentIndicators("X", small_config)
    for row in history.itertuples():
        assert indicators.on_bar(Bar("X", row.ts.to_pydatetime(), row.open, row.high, row.low, row.close, row.volume))
    for n, row in enumerate(live.itertuples()):
        day = row.ts.date()
        prices = (row.open, row.high, row.low, row.close) if n % 2 else (row.open, row.low, row.high, row.close)
        for i, price in enumerate(prices):
            assert indicators.update_tick(price, row.volume * (i + 1) // 4, session_ms(day, i * 1000))
        assert_snapshot_matches_recompute(
            indicators.snapshot(), daily_fixture.iloc[: len(history) + n + 1], small_config
        )
    # the official end-of-day bar replaces the tick-built day (here with a different close)
    last = live.iloc[-1]
    replaced = daily_fixture.copy()
    replaced.loc[replaced.index[-1], "close"] = last.low
    assert indicators.on_bar(Bar("X", last.ts.to_pydatetime(), last.open, last.high, last.low, last.low, last.volume))
    assert_snapshot_matches_recompute(indicators.snapshot(), replaced, small_config)


def test_weekly_and_monthly_bars_close_when_the_next_session_is_in_a_later_period() -> None:
    friday, monday = date(2024, 5, 31), date(2024, 6, 3)
    eager, lazy = InstrumentIndicators("X", TINY), InstrumentIndicators("X", TINY)
    for indicators in (eager, lazy):
        indicators.update_tick(10.0, 100, session_ms(friday))
    eager.close_day(next_session=monday)
    lazy.close_day()
    assert eager.snapshot().weekly.bars == lazy.snapshot().weekly.bars == 1
    assert eager._weekly.forming is False and lazy._weekly.forming is True
    for indicators in (eager, lazy):
        indicators.update_tick(11.0, 50, session_ms(monday))
    assert eager.snapshot().as_dict() == lazy.snapshot().as_dict()
    assert eager.snapshot().weekly.bars == 2 and eager.snapshot().monthly.bars == 2
    assert eager.snapshot().weekly.bar_start.date() == monday  # type: ignore[union-attr]


def test_snapshot_is_cached_until_the_next_update_and_reset_forgets_everything() -> None:
    indicators = InstrumentIndicators("X", TINY, instrument_key="NSE_EQ|X")
    tick = Tick("NSE_EQ|X", ltp=10.0, ltt_ms=session_ms(date(2024, 6, 3)), volume=100)
    assert indicators.on_tick(tick)
    first = indicators.snapshot()
    assert indicators.snapshot() is first
    assert first.instrument_key == "NSE_EQ|X" and first.asof == tick.time
    assert first.daily.values["sma_2"] is None and first.daily.close == 10.0
    indicators.update_tick(10.5, 120, tick.ltt_ms + 1)
    assert indicators.snapshot() is not first
    assert indicators.snapshot().timeframe(Timeframe.DAY).high == 10.5
    indicators.update_tick(math.nan, 0, 0)
    indicators.reset()
    assert indicators.rejections == {} and indicators.snapshot().daily.bars == 0 and indicators.last_day is None


def test_a_rejected_first_tick_of_a_new_week_does_not_roll_the_day_or_close_the_week() -> None:
    indicators = InstrumentIndicators("X", TINY)
    friday, monday = date(2024, 6, 7), date(2024, 6, 10)
    indicators.update_tick(10.0, 100, session_ms(friday))
    before = indicators.snapshot().as_dict()
    assert not indicators.update_tick(11.0, math.nan, session_ms(monday))
    assert not indicators.update_tick(11.0, -1, session_ms(monday))
    assert indicators.snapshot().as_dict() == before
    assert indicators.last_day == friday and indicators._weekly.forming and indicators._daily.forming
    assert indicators.rejections == {"bad_volume": 1, "volume_decreased": 1}
    assert indicators.update_tick(11.0, 5, session_ms(monday))
    assert indicators.snapshot().weekly.bars == 2 and indicators.snapshot().daily.bars == 2
