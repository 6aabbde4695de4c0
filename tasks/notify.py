"""Trade notifications, the Prefect side: the notification block named in `notify.block` (Slack,
Discord, Teams, or Telegram through a custom-webhook block) as a channel beside the engine's webhook,
the stale-token message of the pre-open and the day's summary after the close. engine/session/live.py
never imports this module: a caller passes `notify_channels(settings)` to `LiveSession.open(notifiers=)`."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from prefect import task
from prefect.blocks.core import Block
from prefect.blocks.notifications import NotificationBlock
from prefect.cache_policies import NO_CACHE

from engine.brokers.base import ConfigError, TokenExpired
from engine.clock import LiveClock
from engine.notify import Channel, Notification, Notifier, collect, default_channels
from engine.notify.events import day_is_replayed
from engine.notify.messages import stale_token
from engine.secrets import redact, redact_errors
from engine.session.day import TokenMissing
from engine.session.stages import TradingDayContext
from engine.settings import Settings

log = logging.getLogger(__name__)

# What a pre-open token check raises when the broker login is unusable (missing, rejected, expired).
TOKEN_PROBLEMS = (TokenExpired, TokenMissing, ConfigError)


def block_channel(name: str) -> Channel:
    """The notification block `name` ("<block type slug>/<block name>"), loaded at its first message."""
    loaded: list[NotificationBlock] = []

    async def send(notification: Notification) -> None:
        if not loaded:
            block = await Block.aload(name)
            if not isinstance(block, NotificationBlock):
                raise TypeError(f"block {name!r} is a {type(block).__name__}, not a notification block")
            loaded.append(block)
        with loaded[0].raise_on_failure():  # a failed delivery raises, so it is logged and counted
            sent = loaded[0].notify(notification.text, notification.subject)
            if inspect.isawaitable(sent):  # a block's notify is async, or dispatches to it in a loop
                await sent

    return Channel(f"block:{name}", send)


def notify_channels(settings: Settings) -> list[Channel]:
    """The webhook (`notify.webhook_url`) and the notification block (`notify.block`), where set."""
    channels = default_channels(settings)
    if settings.notify.block:
        channels.append(block_channel(settings.notify.block))
    return channels


async def deliver(context: TradingDayContext, notifications: Sequence[Notification]) -> dict[str, int]:
    notifier = Notifier(context.db, notify_channels(context.settings), LiveClock(),
                        context.settings.notify.timeout_seconds)
    return asdict(await notifier.deliver(notifications))


async def notify_stale_token(context: TradingDayContext, error: BaseException) -> None:
    """The pre-open found the broker login unusable: tell the trader (once per day and broker). Never
    raises: the caller re-raises the token error itself."""
    try:
        notification = stale_token(context.day, replay=day_is_replayed(context), broker=context.settings.broker,
                                   problem=redact(str(error)) or type(error).__name__)
        await deliver(context, [notification])
    except Exception as failure:
        log.warning("the stale-token notification was not sent: %s", redact(str(failure)))


@task(name="notify-day-summary", cache_policy=NO_CACHE, timeout_seconds=120)
@redact_errors
def notify_day_summary(context: TradingDayContext) -> dict[str, int]:
    """After the close: any of the day's events the live session did not send (it crashed, or a row
    was written late), then the day's summary. Never fails the post-close: problems are logged."""
    try:
        notifications = collect(context.db, context.day, replay=day_is_replayed(context), summary=True)
    except Exception as error:
        log.warning("the day's notifications were not read: %s", redact(str(error)))
        return {"sent": 0, "failed": 0, "skipped": 0}
    # In a thread of its own: this sync flow may itself run inside the parent flow's event loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, deliver(context, notifications)).result()
