"""What an engine needs around it: the indicator periods its parts read, and the day's session."""

from __future__ import annotations

import logging
from datetime import date

from engine.indicators.multitimeframe import IndicatorConfig
from engine.settings import Settings
from engine.strategy.base import Strategy
from engine.strategy.window import SessionLike, normal_session

log = logging.getLogger(__name__)


def required_indicator_config(
    settings: Settings, strategy: Strategy, base: IndicatorConfig | None = None
) -> IndicatorConfig:
    """`base` (default: `IndicatorConfig()`) plus every period the strategy, the stop policy
    (swing lookback, ATR period) and the validator (average volume) read. Build the indicators
    (and the pre-open metadata) with this so no value the engine needs is missing."""
    base = base or IndicatorConfig()
    wanted: dict[str, set[int]] = {name: set(getattr(base, name)) for name in base.to_dict()}
    wanted["extreme_periods"].add(settings.risk.swing_lookback)
    wanted["atr_periods"].add(settings.risk.atr_period)
    wanted["avg_volume_periods"].add(settings.strategy.validator.volume_period)
    for name, periods in strategy.indicator_periods().items():
        if name not in wanted:
            raise ValueError(f"strategy {strategy.name!r} asks for unknown indicator family {name!r}")
        wanted[name].update(periods)
    return IndicatorConfig(**{name: tuple(sorted(periods)) for name, periods in wanted.items()})


def default_session(settings: Settings, trading_day: date) -> SessionLike | None:
    """The NSE calendar's session of `trading_day`, or 09:15-15:30 when the calendar does not cover it."""
    from engine.calendar import CalendarRangeError, load_calendar

    try:
        return load_calendar(settings.calendar_file).session(trading_day)
    except (CalendarRangeError, OSError, ValueError) as error:
        log.warning("calendar: %s; assuming a normal session 09:15-15:30", error)
        return normal_session(trading_day)
