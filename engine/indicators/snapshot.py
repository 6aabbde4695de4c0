"""What strategies see of an instrument's indicators: one `TimeframeSnapshot` per timeframe,
current values including the forming bar. Value names match the `autotrader indicators` JSON:
"sma_9", "sma_200", "ema_20", "atr_14", "highest_high_20", "lowest_low_20", "avg_volume_20", and
"<name>_prev" for the value as of the previous closed bar (for slopes and crosses). A value is
None while there is not enough history.

Snapshots are lazy: a value that depends on the forming bar is computed when it is read (`get`),
from formulas frozen at the last bar close, so a strategy or validator pays only for the values
its rules use. A kept snapshot stays exact after its instrument moves on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.models import Timeframe

# a value computed from a snapshot's forming bar (its close, volume, high and low)
Formula = Callable[["TimeframeSnapshot"], float | None]


class TimeframeSnapshot:
    """One timeframe's latest bar and values. Built with `values` (every value given), or lazily
    with `committed` (the values of closed bars) and `formulas` (the values that include the
    forming bar, by name): `committed` names every value, in snapshot order."""

    __slots__ = ("_committed", "_formulas", "_values", "bar_start", "bars", "close", "high", "low", "open",
                 "timeframe", "volume")

    def __init__(self, timeframe: Timeframe, bar_start: datetime | None, open: float, high: float, low: float,
                 close: float, volume: float, bars: int, values: dict[str, float | None] | None = None, *,
                 committed: Mapping[str, float | None] | None = None,
                 formulas: Mapping[str, Formula] | None = None) -> None:
        self.timeframe = timeframe
        self.bar_start = bar_start  # start of the forming bar
        self.open, self.high, self.low, self.close, self.volume = open, high, low, close, volume
        self.bars = bars  # bars seen, the forming one included
        self._values = {} if values is None and committed is None else values  # None: lazy
        self._committed: Mapping[str, float | None] = committed or {}
        self._formulas: Mapping[str, Formula] = formulas or {}

    def get(self, name: str) -> float | None:
        if self._values is not None:
            return self._values.get(name)
        formula = self._formulas.get(name)
        return formula(self) if formula is not None else self._committed.get(name)

    @property
    def values(self) -> dict[str, float | None]:
        """Every value, by name (computed once, on first use)."""
        if self._values is None:
            self._values = {name: self.get(name) for name in self._committed}
        return self._values

    def _fields(self) -> tuple[Any, ...]:
        return (self.timeframe, self.bar_start, self.open, self.high, self.low, self.close, self.volume, self.bars,
                self.values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeframeSnapshot):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return f"TimeframeSnapshot{self._fields()!r}"

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
