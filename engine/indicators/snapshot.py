"""What strategies see of an instrument's indicators: one `TimeframeSnapshot` per timeframe,
current values including the forming bar. Value names match the `autotrader indicators` JSON:
"sma_9", "sma_200", "ema_20", "atr_14", "highest_high_20", "lowest_low_20", "avg_volume_20", and
"<name>_prev" for the value as of the previous closed bar (for slopes and crosses). A value is
None while there is not enough history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.models import Timeframe


@dataclass(slots=True)
class TimeframeSnapshot:
    timeframe: Timeframe
    bar_start: datetime | None  # start of the forming bar
    open: float
    high: float
    low: float
    close: float
    volume: float
    bars: int  # bars seen, the forming one included
    values: dict[str, float | None] = field(default_factory=dict)

    def get(self, name: str) -> float | None:
        return self.values.get(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bar_start": self.bar_start.isoformat() if self.bar_start else None,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            **self.values,
        }


@dataclass(slots=True)
class IndicatorSnapshot:
    instrument_key: str
    symbol: str
    asof: datetime
    daily: TimeframeSnapshot
    weekly: TimeframeSnapshot
    monthly: TimeframeSnapshot
    history_complete: bool = True

    def timeframe(self, timeframe: Timeframe) -> TimeframeSnapshot:
        return {Timeframe.DAY: self.daily, Timeframe.WEEK: self.weekly, Timeframe.MONTH: self.monthly}[timeframe]

    def as_dict(self) -> dict[str, Any]:
        return {"daily": self.daily.as_dict(), "weekly": self.weekly.as_dict(), "monthly": self.monthly.as_dict()}
