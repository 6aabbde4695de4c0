"""Delivery: each notification to every channel (the webhook; a Prefect notification block through a
sender tasks/notify.py builds), at most once per key, restarts included.

At most once: the key is claimed in the `notifications` table (an INSERT, which a second process
loses) BEFORE anything is sent, then marked SENT or FAILED. A failed delivery is logged, counted and
not retried: a retry loop could repeat a message a receiver did take (a timeout after delivery), and a
late "entry filled" is worth less than none; the day's summary after the close repeats the numbers.
A claim whose process died before sending stays SENDING and is never sent. Nothing here raises into
trading: every failure, of the database included, is logged and counted."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from engine.clock import Clock
from engine.notify.messages import Notification
from engine.portfolio.times import to_db
from engine.secrets import redact
from engine.settings import Settings
from engine.storage import session_scope
from engine.storage.tables import NotificationRow

log = logging.getLogger(__name__)


class NotificationStatus(enum.StrEnum):
    """A `notifications` row: claimed (SENDING) before it is sent, then SENT or FAILED."""

    SENDING = "SENDING"
    SENT = "SENT"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Channel:
    """Somewhere notifications go: `send` raises when the message was not accepted."""

    name: str
    send: Callable[[Notification], Awaitable[None]]


def webhook_channel(url: str, timeout_seconds: float) -> Channel:
    """POST the notification's JSON body ({"text", "event", "key", ...fields}) to `url`."""

    async def send(notification: Notification) -> None:
        async with httpx.AsyncClient(timeout=timeout_seconds) as client:
            response = await client.post(url, json=notification.body())
        if response.status_code >= 300:  # never raise_for_status: its message holds the URL
            raise RuntimeError(f"HTTP {response.status_code}")

    return Channel("webhook", send)


def default_channels(settings: Settings) -> list[Channel]:
    """The channels the engine builds alone: the webhook when `notify.webhook_url` is set."""
    url = settings.notify.webhook_url
    return [webhook_channel(str(url), settings.notify.timeout_seconds)] if url else []


@dataclass
class DeliveryCounts:
    sent: int = 0
    failed: int = 0
    skipped: int = 0  # already claimed: sent before (or by another process)


class Notifier:
    """Sends notifications to `channels`, each key at most once (the `notifications` table of `db`)."""

    def __init__(self, db: Engine, channels: Sequence[Channel], clock: Clock, timeout_seconds: float) -> None:
        self.db = db
        self.channels = list(channels)
        self.clock = clock
        self.timeout_seconds = timeout_seconds
        self.counts = DeliveryCounts()

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    async def deliver(self, notifications: Iterable[Notification]) -> DeliveryCounts:
        """Send each notification not sent before, in order; never raises. Returns this call's counts."""
        counts = DeliveryCounts()
        for notification in notifications:
            if not self.enabled or not self._claim(notification.key):
                counts.skipped += 1
                continue
            failed = [channel.name for channel in self.channels if not await self._send(channel, notification)]
            self._mark(notification.key, NotificationStatus.FAILED if failed else NotificationStatus.SENT)
            if failed:
                counts.failed += 1
            else:
                counts.sent += 1
        self.counts.sent += counts.sent
        self.counts.failed += counts.failed
        self.counts.skipped += counts.skipped
        return counts

    async def _send(self, channel: Channel, notification: Notification) -> bool:
        try:
            await asyncio.wait_for(channel.send(notification), self.timeout_seconds)
        except Exception as error:  # a delivery failure never reaches trading
            problem = redact(str(error)) or type(error).__name__
            log.warning("notification %s not delivered to %s: %s", notification.key, channel.name, problem)
            return False
        return True

    def _claim(self, key: str) -> bool:
        """Whether this process may send `key` (no one claimed it before)."""
        row = NotificationRow(key=key, sent_at=to_db(self.clock.now()), status=NotificationStatus.SENDING.value,
                              channel=",".join(channel.name for channel in self.channels))
        try:
            with session_scope(self.db) as session:
                session.add(row)
        except IntegrityError:
            return False
        except Exception as error:  # the database is unreachable: send nothing rather than twice
            log.warning("notification %s not claimed: %s", key, redact(str(error)))
            return False
        return True

    def _mark(self, key: str, status: NotificationStatus) -> None:
        try:
            with session_scope(self.db) as session:
                row = session.get(NotificationRow, key)
                if row is not None:
                    row.status = status.value
                    session.add(row)
        except Exception as error:
            log.warning("notification %s sent, its status not recorded: %s", key, redact(str(error)))
