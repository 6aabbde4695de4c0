from __future__ import annotations

from datetime import date

from engine.models import Side, Timeframe
from engine.strategy.examples.trend_pullback import TrendPullback
from tests.engine.strategy.support import RELIANCE, at, frame, snapshot, tick, uptrend_pullback

NOW = at(date(2024, 6, 4), 14, 30)


def test_fires_on_a_pullback_to_the_daily_sma_in_an_uptrend() -> None:
    setup = TrendPullback().on_tick(RELIANCE, tick(RELIANCE, 102.0, NOW), uptrend_pullback(102.0))
    assert setup is not None
    assert (setup.side, setup.entry, setup.stop, setup.target) == (Side.BUY, 102.0, 0.0, 0.0)
    assert setup.strategy == "trend_pullback" and setup.found_at == NOW
    # trend term: 100 * (102 / 80 - 1) = 27.5, capped at 20; bounce (102 - 99.8) / 2 = 1.1
    assert setup.score == 21.1
    assert "pulled back to 1d sma_9 100.00" in setup.reason


def test_no_setup_when_the_weekly_trend_is_down() -> None:
    snap = uptrend_pullback()
    snap.weekly = frame(Timeframe.WEEK, close=90.0, sma_9=95.0)
    assert TrendPullback().on_tick(RELIANCE, tick(RELIANCE, 102.0, NOW), snap) is None
    assert TrendPullback.from_params({"require_weekly": False}).on_tick(RELIANCE, tick(RELIANCE, 102.0, NOW), snap)


def test_monthly_filter_accepts_a_rising_sma_below_price() -> None:
    snap = uptrend_pullback()
    snap.monthly = frame(Timeframe.MONTH, close=85.0, sma_9=90.0, sma_9_prev=89.0)
    assert TrendPullback().on_tick(RELIANCE, tick(RELIANCE, 102.0, NOW), snap) is not None
    snap.monthly = frame(Timeframe.MONTH, close=85.0, sma_9=90.0, sma_9_prev=91.0)
    assert TrendPullback().on_tick(RELIANCE, tick(RELIANCE, 102.0, NOW), snap) is None


def test_no_setup_without_a_pullback_or_before_resumption() -> None:
    strategy = TrendPullback()
    far = uptrend_pullback()
    far.daily.low = 103.0  # never came near sma_9 = 100
    assert strategy.on_tick(RELIANCE, tick(RELIANCE, 104.0, NOW), far) is None
    below_open = uptrend_pullback(100.2)  # above sma_9 but below the open 100.5
    assert strategy.on_tick(RELIANCE, tick(RELIANCE, 100.2, NOW), below_open) is None


def test_missing_history_gives_no_setup_and_warmup_needs_slow_ma_bars() -> None:
    snap = snapshot()
    assert TrendPullback().on_tick(RELIANCE, tick(RELIANCE, 100.0, NOW), snap) is None
    short = uptrend_pullback()
    short.daily.bars = 150
    assert not TrendPullback().is_warmed_up(short)
    assert TrendPullback().is_warmed_up(uptrend_pullback())
