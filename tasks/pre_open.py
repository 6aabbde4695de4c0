"""Pre-open tasks. Each is safe to retry: they read, or upsert idempotently."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from engine.session import day as day_work
from engine.session.stages import TradingDayContext
from tasks.hooks import IDEMPOTENT_RETRY, retry_unless_permanent, task_failed


@task(name="check-broker-token", cache_policy=NO_CACHE, timeout_seconds=60, on_failure=[task_failed],
      retries=3, **IDEMPOTENT_RETRY, retry_condition_fn=retry_unless_permanent)
async def check_broker_token(context: TradingDayContext) -> str:
    return await day_work.check_broker_token(context)


@task(name="refresh-instrument-master", cache_policy=NO_CACHE, timeout_seconds=300, on_failure=[task_failed],
      retries=3, **IDEMPOTENT_RETRY)
def refresh_instrument_master(context: TradingDayContext) -> int:
    return day_work.refresh_instrument_master(context)


@task(name="refresh-universe", cache_policy=NO_CACHE, timeout_seconds=300, on_failure=[task_failed],
      retries=3, **IDEMPOTENT_RETRY)
def refresh_universe(context: TradingDayContext) -> list[str]:
    return day_work.refresh_universe(context)


@task(name="build-metadata", cache_policy=NO_CACHE, timeout_seconds=900, on_failure=[task_failed], retries=1)
def build_metadata(context: TradingDayContext) -> str:
    return day_work.build_metadata(context)
