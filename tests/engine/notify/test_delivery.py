"""Delivery: the webhook gets the JSON body; each key is sent at most once, a restart (a new Notifier
on the same database) included; a failing receiver (HTTP 500, a closed port, a channel that hangs) is
logged and counted as failed, never raised and never retried."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import datetime

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from engine.clock import SteppedClock
from engine.models import IST
from engine.notify import Channel, Notification, Notifier, messages, webhook_channel
from engine.storage import session_scope
from engine.storage.tables import NotificationRow
from tests.engine.notify.receiver import Receiver, loopback_receiver
from tests.engine.notify.rows import DAY

CLOCK = SteppedClock(datetime(2024, 6, 4, 15, 11, tzinfo=IST))
ENTRY = messages.entry_filled(DAY, replay=True, client_order_id="AT1", symbol="NTPC", quantity=5, price=391.2,
                              stop=350.0, target=470.0)
KILL = messages.kill_switch(DAY, replay=True, reason="max daily loss", realized_pnl=-20000.0)


def _notifier(db: Engine, *channels: Channel, timeout: float = 2.0) -> Notifier:
    return Notifier(db, channels, CLOCK, timeout)


def _statuses(db: Engine) -> dict[str, str]:
    with session_scope(db) as session:
        return {row.key: row.status for row in session.exec(select(NotificationRow))}


async def test_the_webhook_gets_the_text_and_the_fields_once_even_after_a_restart(
    db: Engine, receiver: Receiver
) -> None:
    counts = await _notifier(db, webhook_channel(receiver.url, 2.0)).deliver([ENTRY, KILL, ENTRY])
    assert (counts.sent, counts.failed, counts.skipped) == (2, 0, 1)
    assert receiver.received == [ENTRY.body(), KILL.body()]
    assert receiver.received[0]["text"].startswith("[REPLAY] 2024-06-04 entry filled: BUY 5 NTPC @ ₹391.20")
    restarted = _notifier(db, webhook_channel(receiver.url, 2.0))
    assert (await restarted.deliver([ENTRY, KILL])).skipped == 2
    assert len(receiver.received) == 2
    assert _statuses(db) == {"entry:AT1": "SENT", "kill:2024-06-04": "SENT"}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_failing_receiver_is_logged_and_counted_never_raised_nor_retried(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with loopback_receiver(answer=lambda _: 500) as failing:
        notifier = _notifier(db, webhook_channel(failing.url, 2.0))
        with caplog.at_level(logging.WARNING, logger="engine.notify"):
            counts = await notifier.deliver([ENTRY])
            again = await notifier.deliver([ENTRY])
    assert (counts.sent, counts.failed, again.skipped) == (0, 1, 1)
    assert len(failing.received) == 1  # not retried
    assert "notification entry:AT1 not delivered to webhook: HTTP 500" in caplog.text
    assert failing.url not in caplog.text
    closed = _notifier(db, webhook_channel(f"http://127.0.0.1:{_closed_port()}/notify", 2.0))
    assert (await closed.deliver([KILL])).failed == 1
    assert _statuses(db) == {"entry:AT1": "FAILED", "kill:2024-06-04": "FAILED"}
    assert notifier.counts.failed == 1 and notifier.counts.skipped == 1


async def test_a_hanging_channel_times_out_and_the_other_channels_still_get_the_message(
    db: Engine, receiver: Receiver
) -> None:
    async def hang(_: Notification) -> None:
        await asyncio.sleep(30)

    # the timeout is generous so that the webhook answers within it on a loaded machine
    notifier = _notifier(db, Channel("hangs", hang), webhook_channel(receiver.url, 2.0), timeout=2.0)
    counts = await notifier.deliver([ENTRY])
    assert counts.failed == 1 and len(receiver.received) == 1
    with session_scope(db) as session:
        row = session.get(NotificationRow, "entry:AT1")
        assert row is not None and (row.channel, row.status) == ("hangs,webhook", "FAILED")


async def test_without_a_channel_nothing_is_claimed(db: Engine) -> None:
    counts = await _notifier(db).deliver([ENTRY])
    assert counts.skipped == 1 and _statuses(db) == {}
