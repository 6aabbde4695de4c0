"""The live session's notifications: the day's new rows scanned once per minute of the session clock
(`poll` is cheap to call on every tick batch) and at the close, delivered in order by one background
task, so a slow or failing receiver never holds up the feed or the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date, datetime

from sqlalchemy import Engine

from engine.clock import Clock
from engine.notify.delivery import Notifier
from engine.notify.events import Cursor, collect
from engine.notify.messages import Notification
from engine.secrets import redact

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, notifier: Notifier, db: Engine, day: date, *, replay: bool, clock: Clock) -> None:
        self.notifier = notifier
        self.db = db
        self.day = day
        self.replay = replay
        self.clock = clock
        self.cursor = Cursor()
        self._minute: datetime | None = None
        self._queue: asyncio.Queue[Notification] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def poll(self) -> None:
        """Scan when the clock's minute changed since the last scan."""
        minute = self.clock.now().replace(second=0, microsecond=0)
        if minute != self._minute:
            self._minute = minute
            self.scan()

    def scan(self) -> None:
        """Queue the day's events newer than the last scan; never raises."""
        if not self.notifier.enabled:
            return
        try:
            found = collect(self.db, self.day, replay=self.replay, cursor=self.cursor)
        except Exception as error:  # the next scan tries again, from the same cursor
            log.warning("notifications not scanned: %s", redact(str(error)))
            return
        for notification in found:
            self._queue.put_nowait(notification)
        if found and self._worker is None:
            self._worker = asyncio.ensure_future(self._deliver())

    async def _deliver(self) -> None:
        while True:
            notification = await self._queue.get()
            try:
                await self.notifier.deliver([notification])
            finally:
                self._queue.task_done()

    async def close(self, timeout_seconds: float) -> None:
        """A last scan, then up to `timeout_seconds` for the queued notifications to go out."""
        self.scan()
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_seconds)
        if self._queue.qsize():
            log.warning("%d notification(s) not sent before the session closed", self._queue.qsize())
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None
