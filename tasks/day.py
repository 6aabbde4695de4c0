"""Tasks shared by every stage: open the trading day (settings, calendar, database) and checkpoint it."""

from __future__ import annotations

import os
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from engine.brokers.factory import check_venue_allowed
from engine.clock import LiveClock
from engine.logging import redact_secrets
from engine.models import StageStatus
from engine.secrets import redact_errors
from engine.session import stages
from engine.session.stages import TradingDayContext
from engine.settings import load_credentials
from tasks.hooks import route_engine_logs, task_failed
from tasks.token_blocks import read_secret_block

# Broker credentials may live in Prefect Secret blocks of these names (read at run time, so a token
# refreshed in the morning is picked up); the environment and .env win when they set the variable.
SECRET_BLOCKS = {
    "KITE_API_KEY": "kite-api-key",
    "KITE_ACCESS_TOKEN": "kite-access-token",
    "UPSTOX_ACCESS_TOKEN": "upstox-access-token",
}


def load_secret_blocks() -> list[str]:
    """Put credentials from Prefect Secret blocks into the environment; returns the variables set."""
    loaded: list[str] = []
    for variable, block_name in SECRET_BLOCKS.items():
        if os.environ.get(variable):
            continue
        value = read_secret_block(block_name)
        if value is not None:
            os.environ[variable] = value
            loaded.append(variable)
    return loaded


@task(name="open-trading-day", cache_policy=NO_CACHE, timeout_seconds=60, on_failure=[task_failed])
@redact_errors
def open_trading_day(day: str | None, **overrides: Any) -> TradingDayContext:
    """The day (today in IST when None), its NSE session or the reason it has none, settings, database."""
    load_secret_blocks()
    redact_secrets(load_credentials().secret_values())  # env, .env and Secret blocks alike
    context = stages.open_trading_day(day, LiveClock(), **overrides)
    route_engine_logs(context.settings.log_level)
    return context


@task(name="check-venue", cache_policy=NO_CACHE, timeout_seconds=60, on_failure=[task_failed])
@redact_errors
def check_venue(context: TradingDayContext, replay: bool | None) -> str:
    """The venue the day trades with. A replayed day (`replay`, default `feed.source` = "replay")
    with a real broker fails here, before any stage sends a request."""
    return check_venue_allowed(context.settings, load_credentials(), replay=replay)


@task(name="record-stage", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2, timeout_seconds=60)
@redact_errors
def record_stage(context: TradingDayContext, stage: str, status: StageStatus,
                 checkpoint: dict[str, Any] | None = None) -> None:
    stages.record_stage(context.db, context.day, stage, status, LiveClock(), checkpoint)
