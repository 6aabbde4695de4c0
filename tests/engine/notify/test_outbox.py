"""The live session's outbox: a scan per minute of the session clock (not per tick batch), delivery
in the background in order, and the close sending what is still queued."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from engine.clock import SteppedClock
from engine.models import IST
from engine.notify import Notifier, Outbox, webhook_channel
from tests.engine.notify.receiver import Receiver
from tests.engine.notify.rows import DAY, add_entry, add_trade


async def test_the_outbox_scans_once_a_minute_and_delivers_in_order_by_the_close(
    db: Engine, receiver: Receiver
) -> None:
    clock = SteppedClock(datetime(2024, 6, 4, 15, 10, 5, tzinfo=IST))
    notifier = Notifier(db, [webhook_channel(receiver.url, 2.0)], clock, 2.0)
    outbox = Outbox(notifier, db, DAY, replay=True, clock=clock)
    outbox.poll()  # the first batch scans
    position = add_entry(db, "AT1", "NTPC")
    clock.advance(30)
    outbox.poll()  # same minute: no scan
    assert outbox.cursor.position_id == 0
    clock.advance(30)
    outbox.poll()  # 15:11: the entry
    trade = add_trade(db, position, "NTPC", net_pnl=250.0, reason="target (GTT)")
    await outbox.close(5.0)  # the last scan finds the exit
    assert [body["key"] for body in receiver.received] == ["entry:AT1", f"exit:{trade}"]
    assert notifier.counts.sent == 2
