"""Tasks shared by every stage: open the trading day (settings, calendar, database) and checkpoint it."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from engine.clock import LiveClock
from engine.session import stages
from engine.session.stages import TradingDayContext
from tasks.hooks import route_engine_logs, task_failed


@task(name="open-trading-day", cache_policy=NO_CACHE, timeout_seconds=60, on_failure=[task_failed])
def open_trading_day(day: str | None, **overrides: Any) -> TradingDayContext:
    """The day (today in IST when None), its NSE session or the reason it has none, settings, database."""
    context = stages.open_trading_day(day, LiveClock(), **overrides)
    route_engine_logs(context.settings.log_level)
    return context


@task(name="record-stage", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2, timeout_seconds=60)
def record_stage(context: TradingDayContext, stage: str, status: str, checkpoint: dict[str, Any] | None = None) -> None:
    stages.record_stage(context.db, context.day, stage, status, LiveClock(), checkpoint)
