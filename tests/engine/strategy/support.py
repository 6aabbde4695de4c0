"""Builders shared by the strategy, risk, portfolio, trader and backtest tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from engine.indicators.multitimeframe import IndicatorConfig, InstrumentIndicators
from engine.indicators.snapshot import IndicatorSnapshot, TimeframeSnapshot
from engine.models import IST, Bar, Instrument, Setup, Side, Tick, Timeframe
from engine.strategy.base import Strategy, StrategyConfig

RELIANCE = Instrument("NSE_EQ|INE002A01018", "RELIANCE", "INE002A01018", tick_size=0.05, lot_size=1)
TCS = Instrument("NSE_EQ|INE467B01029", "TCS", "INE467B01029", tick_size=0.05, lot_size=1)
LOTTY = Instrument("NSE_EQ|INE000X00001", "LOTTY", "INE000X00001", tick_size=0.05, lot_size=25)


def at(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), tzinfo=IST)


def frame(timeframe: Timeframe, *, close: float, open: float | None = None, high: float | None = None,
          low: float | None = None, volume: float = 1_000_000, bars: int = 300, **values: float | None
          ) -> TimeframeSnapshot:
    open_ = close if open is None else open
    return TimeframeSnapshot(
        timeframe=timeframe,
        bar_start=None,
        open=open_,
        high=max(open_, close) if high is None else high,
        low=min(open_, close) if low is None else low,
        close=close,
        volume=volume,
        bars=bars,
        values=dict(values),
    )


def snapshot(daily: TimeframeSnapshot | None = None, weekly: TimeframeSnapshot | None = None,
             monthly: TimeframeSnapshot | None = None, *, instrument: Instrument = RELIANCE,
             history_complete: bool = True) -> IndicatorSnapshot:
    return IndicatorSnapshot(
        instrument_key=instrument.instrument_key,
        symbol=instrument.symbol,
        asof=at(date(2024, 6, 4), 15, 0),
        daily=daily or frame(Timeframe.DAY, close=100.0),
        weekly=weekly or frame(Timeframe.WEEK, close=100.0),
        monthly=monthly or frame(Timeframe.MONTH, close=100.0),
        history_complete=history_complete,
    )


def uptrend_pullback(close: float = 102.0, **daily_extra: Any) -> IndicatorSnapshot:
    """A snapshot on which trend_pullback fires: monthly/weekly above sma_9, daily above sma_200,
    low touched the daily sma_9 (100) and the price is back above it and the open."""
    daily = frame(Timeframe.DAY, open=100.5, high=close + 0.5, low=99.8, close=close, sma_9=100.0, sma_200=80.0,
                  atr_14=2.0, lowest_low_10=97.0, avg_volume_20=900_000, **daily_extra)
    weekly = frame(Timeframe.WEEK, close=close, sma_9=95.0)
    monthly = frame(Timeframe.MONTH, close=close, sma_9=90.0, sma_9_prev=88.0)
    return snapshot(daily, weekly, monthly)


def tick(instrument: Instrument, price: float, when: datetime, volume: int = 1_000_000, **extra: Any) -> Tick:
    return Tick(instrument.instrument_key, price, int(when.timestamp() * 1000), volume=volume, **extra)


def make_setup(instrument: Instrument = RELIANCE, *, entry: float = 100.0, stop: float = 95.0,
               target: float = 110.0, score: float = 1.0) -> Setup:
    return Setup(instrument.instrument_key, instrument.symbol, Side.BUY, entry, stop, target, score, "test",
                 "test", at(date(2024, 6, 4), 14, 0))


# ---- engine wiring ---------------------------------------------------------------------------------

INDICATOR_CONFIG = IndicatorConfig(sma_periods=(9, 200), extreme_periods=(10, 20), atr_periods=(14,))


def seeded_indicators(instrument: Instrument, before: date, bars: int = 30, low: float = 95.0,
                      close: float = 100.0) -> InstrumentIndicators:
    """Daily history of `bars` weekdays before `before`: open 99, high 101, low `low`, close `close`."""
    indicators = InstrumentIndicators(instrument.symbol, INDICATOR_CONFIG, instrument.instrument_key)
    days: list[date] = []
    day = before - timedelta(days=1)
    while len(days) < bars:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    for d in reversed(days):
        ts = datetime.combine(d, time(), tzinfo=IST)
        assert indicators.on_bar(Bar(instrument.symbol, ts, 99.0, 101.0, low, close, 500_000))
    return indicators


@dataclass(frozen=True)
class AlwaysLongConfig(StrategyConfig):
    min_price: float = 0.0


class AlwaysLong(Strategy):
    """Test strategy: a long setup on every tick at or above `min_price`; score = price."""

    name = "always_long"
    config_class = AlwaysLongConfig
    config: AlwaysLongConfig

    def on_tick(self, instrument: Instrument, tick: Tick, snapshot: IndicatorSnapshot, **kwargs: Any) -> Setup | None:
        if tick.ltp < self.config.min_price:
            return None
        return self.setup(instrument, tick, score=tick.ltp, reason="always")
