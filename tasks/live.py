"""Live-session tasks: ONE long-running task streams the market until the close (no task per tick:
Prefect keeps every task run in memory) and the entry window runs as its own task beside it.
Re-running either is safe: the session resumes from the database and the order journal never
sends an order twice."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from engine.secrets import redact_errors
from engine.session.live import LiveSession
from engine.session.stages import TradingDayContext
from tasks.hooks import retry_unless_permanent, task_failed
from tasks.token_blocks import secret_block_loader

SESSION_TIMEOUT_SECONDS = 7 * 3600  # 09:10 -> 15:45 IST with margin


@task(
    name="open-live-session", cache_policy=NO_CACHE, timeout_seconds=600, on_failure=[task_failed],
    retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=10), retry_condition_fn=retry_unless_permanent,
)
@redact_errors
async def open_live_session(context: TradingDayContext, replay: bool | None, speed: float | None) -> LiveSession:
    """Broker, reconciliation, indicators and strategy, the feed (replay server or Upstox); resumes
    what the database holds for the day. A replay runs in lockstep unless `speed` paces it."""
    return await LiveSession.open(context, replay=replay, speed=speed,
                                  feed_token_loader=secret_block_loader("upstox-access-token"))


@task(
    name="stream-until-close", cache_policy=NO_CACHE, timeout_seconds=SESSION_TIMEOUT_SECONDS,
    on_failure=[task_failed], retries=2, retry_delay_seconds=5,
)
@redact_errors
async def stream_until_close(session: LiveSession) -> dict[str, Any]:
    return await session.stream_until_close()


@task(
    name="entry-window", cache_policy=NO_CACHE, timeout_seconds=SESSION_TIMEOUT_SECONDS,
    on_failure=[task_failed], retries=1, retry_delay_seconds=2,
)
@redact_errors
async def execute_entry_window(session: LiveSession) -> dict[str, Any]:
    return await session.run_entry_window()


@task(name="close-live-session", cache_policy=NO_CACHE, timeout_seconds=300, on_failure=[task_failed])
@redact_errors
async def close_live_session(session: LiveSession) -> dict[str, Any]:
    """Checkpoint and release the feed and the broker; exits stay protected at the broker."""
    return await session.close()
