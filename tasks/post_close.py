"""Post-close tasks. Appending bars and saving metadata overwrite the day's rows, so retries are safe."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
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


@task(name="publish-day-bar-quality", cache_policy=NO_CACHE, timeout_seconds=120, retries=1)
@redact_errors
def publish_day_bar_quality(context: TradingDayContext) -> dict[str, Any]:
    """The day's data-quality report of daily bars (gaps, replaced bars, volume-less bars) as a markdown and a
    table artifact; returns its counts (findings listed in the artifacts)."""
    quality = day_work.day_bars_quality(context)
    day = context.day.isoformat()
    create_markdown_artifact(markdown=quality.markdown(), key=f"daybars-{day}",
                             description=f"autotrader daily bars: data quality of {day}")
    create_table_artifact(table=quality.rows() or [{"symbol": "", "day": day, "issue": "none", "detail": ""}],
                          key=f"daybars-table-{day}", description=f"autotrader daily bars: findings of {day}")
    return {name: len(value) if isinstance(value, list) else value for name, value in quality.as_dict().items()}


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
