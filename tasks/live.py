"""Live-session tasks: ONE long-running task streams the market until the close (no task per tick:
Prefect keeps every task run in memory) and the entry window runs as its own task beside it.
Re-running either is safe: the session resumes from the database and the order journal never
sends an order twice. `live_view` runs beside them and keeps the run's artifacts (the day's dashboard)
up to date."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Any, Protocol

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.tasks import exponential_backoff

from engine.secrets import redact, redact_errors
from engine.session.live import LiveSession
from engine.session.stages import TradingDayContext
from engine.session.view import SessionView, session_view
from tasks.artifacts import LiveViewPublisher
from tasks.hooks import retry_unless_permanent, task_failed
from tasks.notify import notify_channels
from tasks.token_blocks import secret_block_loader

SESSION_TIMEOUT_SECONDS = 7 * 3600  # 09:10 -> 15:45 IST with margin
LIVE_VIEW_EVERY = timedelta(minutes=1)  # on the session clock
# A lockstep replay runs a simulated minute in milliseconds: at most one version per this many wall seconds.
LIVE_VIEW_MIN_WALL_SECONDS = 2.0
LIVE_VIEW_PUBLISH_TIMEOUT_SECONDS = 10.0  # a slow Prefect API skips a version, never holds the view up


@task(
    name="open-live-session", cache_policy=NO_CACHE, timeout_seconds=600, on_failure=[task_failed],
    retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=10), retry_condition_fn=retry_unless_permanent,
)
@redact_errors
async def open_live_session(context: TradingDayContext, replay: bool | None, speed: float | None) -> LiveSession:
    """Broker, reconciliation, indicators and strategy, the feed (replay server or Upstox); resumes
    what the database holds for the day. A replay runs in lockstep unless `speed` paces it."""
    return await LiveSession.open(context, replay=replay, speed=speed, notifiers=notify_channels(context.settings),
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


class ViewPublisher(Protocol):
    async def publish(self, view: SessionView) -> None: ...


async def live_view(session: LiveSession, publisher: ViewPublisher | None = None) -> dict[str, int]:
    """The day's dashboard on the flow run page (`LiveViewPublisher` artifacts): published at every minute
    of the session clock, at most every LIVE_VIEW_MIN_WALL_SECONDS of wall time, until streaming ends, then
    once more at the close. A plain coroutine beside the session's tasks: it only reads the engine's state,
    and a failed or slow publish is logged and skipped, never slowing or stopping trading."""
    publisher = publisher or LiveViewPublisher(session.context.day)
    counts = {"published": 0, "failed": 0}
    published_at: float | None = None  # wall seconds
    while not session.streaming_done.is_set():
        if published_at is None or time.monotonic() - published_at >= LIVE_VIEW_MIN_WALL_SECONDS:
            published_at = time.monotonic()
            await _publish_view(session, publisher, counts)
        await session.clock.sleep_until_or(_next_minute(session.clock.now()), session.streaming_done)
    await _publish_view(session, publisher, counts)  # the close (or the stop): always the final state
    return counts


def _next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + LIVE_VIEW_EVERY


async def _publish_view(session: LiveSession, publisher: ViewPublisher, counts: dict[str, int]) -> None:
    try:
        view = session_view(session.engine, ticks=session.stats.ticks)  # read at once: the state of this minute
        async with asyncio.timeout(LIVE_VIEW_PUBLISH_TIMEOUT_SECONDS):
            await publisher.publish(view)
    except Exception as error:
        counts["failed"] += 1
        _run_logger().warning("live view not published: %s", redact(f"{type(error).__name__}: {error}"))
    else:
        counts["published"] += 1


def _run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The flow run's logger (the message shows on the run page); the module's outside a run."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)
