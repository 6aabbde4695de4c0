"""Post-close tasks. Appending bars and saving metadata overwrite the day's rows, so retries are safe."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from engine.secrets import redact_errors
from engine.session import day as day_work
from engine.session.stages import TradingDayContext
from tasks.hooks import IDEMPOTENT_RETRY, task_failed


@task(name="append-daily-bars", cache_policy=NO_CACHE, timeout_seconds=600, on_failure=[task_failed],
      retries=2, **IDEMPOTENT_RETRY)
@redact_errors
def append_daily_bars(context: TradingDayContext) -> int:
    return day_work.append_daily_bars(context)


@task(name="save-metadata", cache_policy=NO_CACHE, timeout_seconds=900, on_failure=[task_failed],
      retries=2, **IDEMPOTENT_RETRY)
@redact_errors
def save_metadata(context: TradingDayContext) -> str:
    return day_work.save_day_metadata(context)


@task(name="refresh-market-caps", cache_policy=NO_CACHE, timeout_seconds=300, on_failure=[task_failed],
      retries=2, **IDEMPOTENT_RETRY)
@redact_errors
def refresh_market_caps(context: TradingDayContext) -> int:
    return day_work.refresh_market_caps_from_close(context)


@task(name="daily-report", cache_policy=NO_CACHE, timeout_seconds=300, on_failure=[task_failed],
      retries=2, **IDEMPOTENT_RETRY)
@redact_errors
def daily_report(context: TradingDayContext) -> dict[str, Any]:
    return day_work.daily_report(context)


@task(name="shutdown", cache_policy=NO_CACHE, timeout_seconds=120, on_failure=[task_failed])
@redact_errors
def shutdown(context: TradingDayContext) -> None:
    day_work.shutdown(context)
