"""DEMONSTRATION ONLY — not investment advice. A multi-timeframe trend-following example that
shows how to use the strategy interface; it has not been tuned and makes no claim of profit.

Idea: trade in the direction of the higher-timeframe trend, entering on a pullback.
- monthly: close above its `fast_ma` SMA, or that SMA rising;
- weekly: close above its `fast_ma` SMA;
- daily: close above the `slow_ma` SMA (long-term uptrend);
- today the price pulled back to near the daily `fast_ma` SMA (the day's low came within
  `pullback_pct` % of it, or below) and has resumed: the price is back above that SMA and above
  the day's open.
Score: how far the daily close is above the slow SMA (%, capped) plus the bounce off the low in
ATRs, so stronger trends with firmer bounces win when the risk budget is short.
Stop and target are left to the risk policy (`settings.risk`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.indicators.snapshot import IndicatorSnapshot, TimeframeSnapshot
from engine.models import Instrument, Setup, Tick
from engine.strategy.base import Strategy, StrategyConfig, StrategyConfigError


@dataclass(frozen=True)
class TrendPullbackConfig(StrategyConfig):
    fast_ma: int = 9  # the short moving average (period, bars of each timeframe)
    slow_ma: int = 200  # the long-term daily trend filter
    pullback_pct: float = 1.0  # the day's low must come within this % of the daily fast SMA
    require_monthly: bool = True
    require_weekly: bool = True
    atr_period: int = 14  # for the score's bounce term
    max_trend_score: float = 20.0  # cap of the trend term of the score (%)

    def validate(self) -> None:
        if not 2 <= self.fast_ma < self.slow_ma:
            raise StrategyConfigError(
                f"strategy 'trend_pullback': fast_ma ({self.fast_ma}) must be >= 2 and below slow_ma ({self.slow_ma})"
            )
        if not 0 <= self.pullback_pct <= 20:
            raise StrategyConfigError(f"strategy 'trend_pullback': pullback_pct {self.pullback_pct} must be in 0..20")
        if self.atr_period < 2:
            raise StrategyConfigError(f"strategy 'trend_pullback': atr_period {self.atr_period} must be >= 2")


def _above_or_rising(frame: TimeframeSnapshot, ma: str, ma_prev: str) -> bool:
    value = frame.get(ma)
    if value is None:
        return False
    if frame.close > value:
        return True
    previous = frame.get(ma_prev)  # read only when the close is not above
    return previous is not None and value > previous


class TrendPullback(Strategy):
    """DEMONSTRATION: monthly/weekly uptrend, daily pullback to the short SMA, then resumption."""

    name = "trend_pullback"
    config_class = TrendPullbackConfig
    config: TrendPullbackConfig

    def __init__(self, config: StrategyConfig | None = None) -> None:
        super().__init__(config)
        # indicator names, built once rather than on every tick
        self.fast_sma = f"sma_{self.config.fast_ma}"
        self.fast_sma_prev = f"{self.fast_sma}_prev"
        self.slow_sma = f"sma_{self.config.slow_ma}"
        self.atr_indicator = f"atr_{self.config.atr_period}"

    @property
    def warmup_bars(self) -> int:  # type: ignore[override]
        return self.config.slow_ma

    def indicator_periods(self) -> dict[str, tuple[int, ...]]:
        return {"sma_periods": (self.config.fast_ma, self.config.slow_ma), "atr_periods": (self.config.atr_period,)}

    def on_tick(self, instrument: Instrument, tick: Tick, snapshot: IndicatorSnapshot, **kwargs: Any) -> Setup | None:
        # each rule reads only its own timeframe: the snapshot builds a timeframe when first read
        config, fast, slow = self.config, self.fast_sma, self.slow_sma
        if config.require_monthly and not _above_or_rising(snapshot.monthly, fast, self.fast_sma_prev):
            return None
        if config.require_weekly:
            weekly = snapshot.weekly
            weekly_fast = weekly.get(fast)
            if weekly_fast is None or weekly.close <= weekly_fast:
                return None
        daily = snapshot.daily
        daily_fast, daily_slow = daily.get(fast), daily.get(slow)
        if daily_fast is None or daily_slow is None or daily.close <= daily_slow:
            return None
        low, price = daily.low, tick.ltp
        touched = low <= daily_fast * (1 + config.pullback_pct / 100)
        resumed = price > daily_fast and price > daily.open
        if not (touched and resumed):
            return None
        trend_pct = min(100 * (daily.close / daily_slow - 1), config.max_trend_score)
        atr = daily.get(self.atr_indicator)
        bounce = (price - low) / atr if atr else 0.0
        reason = (
            f"uptrend (1d close {daily.close:.2f} > {slow} {daily_slow:.2f}, 1w close > {fast}), "
            f"pulled back to 1d {fast} {daily_fast:.2f} (low {daily.low:.2f}) and resumed"
        )
        return self.setup(instrument, tick, score=round(trend_pct + bounce, 4), reason=reason)
