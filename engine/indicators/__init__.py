"""Indicators: daily → weekly/monthly aggregation, incremental indicators that include the forming
bar, per-instrument multi-timeframe state fed by ticks, pre-open metadata and signal helpers.
See docs/indicators.md."""

from engine.indicators.multitimeframe import FrameState, IndicatorConfig, InstrumentIndicators
from engine.indicators.snapshot import IndicatorSnapshot, TimeframeSnapshot

__all__ = ["FrameState", "IndicatorConfig", "IndicatorSnapshot", "InstrumentIndicators", "TimeframeSnapshot"]
