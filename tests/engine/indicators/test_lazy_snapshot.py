"""The lazy snapshot: every field read equals the full recompute as of the snapshot's moment, in any
read order, and a snapshot kept while its instrument moves on (ticks, closed days, weeks, months)
still reads what it read when it was taken."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.indicators import IndicatorSnapshot, InstrumentIndicators
from engine.indicators.multitimeframe import _Frame, day_number
from engine.indicators.snapshot import TimeframeSnapshot
from engine.models import Timeframe
from tests.engine.indicators.test_multitimeframe import (
    START,
    TINY,
    assert_snapshot_matches_recompute,
    bars_from_ticks,
    session_ms,
)

FRAMES = ("daily", "weekly", "monthly")


def read_everything(snapshot: IndicatorSnapshot, rng: random.Random) -> dict[str, Any]:
    """Every value of every timeframe through `get`, in a random order, before `values` is built."""
    read: dict[str, Any] = {}
    for frame_name in rng.sample(FRAMES, len(FRAMES)):
        frame = getattr(snapshot, frame_name)
        names = list(TINY.value_names()) + [f"{name}_prev" for name in TINY.value_names()]
        for name in rng.sample(names, len(names)):
            read[f"{frame_name}.{name}"] = frame.get(name)
    return read


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 12), st.lists(st.floats(1.0, 500.0), min_size=1, max_size=4)),
                min_size=1, max_size=40), st.integers(0, 2**32 - 1))
def test_kept_lazy_snapshots_read_the_full_recompute_of_their_moment(days: list[tuple[int, list[float]]],
                                                                      seed: int) -> None:
    rng = random.Random(seed)
    indicators = InstrumentIndicators("X", TINY)
    seen: dict[date, list[tuple[float, float]]] = {}
    kept: list[tuple[IndicatorSnapshot, dict[date, list[tuple[float, float]]], dict[str, Any] | None]] = []
    day = START
    for gap, prices in days:
        day += timedelta(days=gap)
        for i, price in enumerate(prices):
            assert indicators.update_tick(price, 1000.0 * (i + 1), session_ms(day, 1000 * i))
            seen.setdefault(day, []).append((price, 1000.0 * (i + 1)))
            snapshot = indicators.snapshot()
            # some are read at once, some only after their instrument moved on
            read_now = read_everything(snapshot, rng) if rng.random() < 0.5 else None
            kept.append((snapshot, {d: list(t) for d, t in seen.items()}, read_now))
        if rng.random() < 0.5:
            indicators.close_day()
    for snapshot, seen_then, read_then in rng.sample(kept, min(len(kept), 5)):
        read_later = read_everything(snapshot, rng)
        assert read_then is None or read_later == read_then
        assert_snapshot_matches_recompute(snapshot, bars_from_ticks(seen_then), TINY)


def test_get_before_and_after_values_agree_and_unknown_names_are_none() -> None:
    indicators = InstrumentIndicators("X", TINY)
    for n, price in enumerate((100.0, 101.0, 99.5, 102.0, 98.0, 103.0)):
        indicators.update_tick(price, 10.0, session_ms(START + timedelta(days=n)))
        indicators.close_day()
    indicators.update_tick(104.0, 5.0, session_ms(START + timedelta(days=7)))
    frame = indicators.snapshot().daily
    lazily = {name: frame.get(name) for name in reversed(list(indicators.frame_values(Timeframe.DAY)))}
    assert frame.values == lazily == indicators.frame_values(Timeframe.DAY)
    assert lazily["sma_2"] == pytest.approx((103.0 + 104.0) / 2) and lazily["sma_2_prev"] == pytest.approx(100.5)
    assert frame.get("sma_2") == lazily["sma_2"] and frame.get("nope") is None


def test_a_snapshot_given_its_values_reads_them() -> None:
    given_values = TimeframeSnapshot(Timeframe.DAY, None, 1.0, 2.0, 0.5, 1.5, 10.0, 3, {"sma_9": 1.2})
    assert given_values.get("sma_9") == 1.2 and given_values.values == {"sma_9": 1.2}
    assert given_values == TimeframeSnapshot(Timeframe.DAY, None, 1.0, 2.0, 0.5, 1.5, 10.0, 3, {"sma_9": 1.2})
    assert TimeframeSnapshot(Timeframe.DAY, None, 1.0, 2.0, 0.5, 1.5, 10.0, 3).values == {}


def _fed(days: int) -> InstrumentIndicators:
    indicators = InstrumentIndicators("X", TINY)
    for n in range(days):
        indicators.update_tick(100.0 + n % 5, 10.0, session_ms(START + timedelta(days=n)))
        if n < days - 1:
            indicators.close_day()
    return indicators


def test_a_timeframe_is_built_when_first_read_and_a_held_snapshot_is_frozen_before_a_move(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[Timeframe] = []
    frame_snapshot = _Frame.snapshot

    def counting(frame: _Frame) -> TimeframeSnapshot:
        built.append(frame.timeframe)
        return frame_snapshot(frame)

    monkeypatch.setattr(_Frame, "snapshot", counting)
    indicators = _fed(40)
    indicators.snapshot().daily.get("sma_2")  # not held afterwards: nothing to freeze
    assert built == [Timeframe.DAY]
    held = indicators.snapshot()
    assert held.monthly.get("sma_2") == held.monthly.get("sma_2") and indicators.snapshot() is held
    assert built == [Timeframe.DAY, Timeframe.MONTH]
    indicators.update_tick(150.0, 20.0, session_ms(START + timedelta(days=39), 1000))
    assert built == [Timeframe.DAY, Timeframe.MONTH, Timeframe.DAY, Timeframe.WEEK]  # the held one, frozen
    assert held.daily.close == 100.0 + 39 % 5 and indicators.snapshot() is not held


def test_a_held_snapshot_keeps_its_moment_through_daily_bars_and_reset() -> None:
    indicators, twin = _fed(40), _fed(40)
    expected, expected_asof = twin.snapshot().as_dict(), twin.snapshot().asof
    held = indicators.snapshot()
    assert indicators.add_daily_bar(day_number(START + timedelta(days=41)), 120.0, 125.0, 118.0, 121.0, 500.0)
    indicators.reset()
    assert held.as_dict() == expected and held.asof == expected_asof
