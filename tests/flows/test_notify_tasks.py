"""The Prefect side of notifications, without a Prefect server: the `notify.block` channel loads the
block once and sends through it (a block that fails raises, so it is counted as failed), and the
pre-open token check notifies a stale login once per day and broker, however often it is retried."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.core import Block
from prefect.blocks.notifications import NotificationBlock

from engine.clock import LiveClock, SteppedClock
from engine.models import IST
from engine.notify import Notifier, messages
from engine.session.day import TokenMissing
from engine.session.stages import open_trading_day
from engine.storage import init_db
from tasks import notify as notify_tasks
from tasks.pre_open import check_broker_token
from tests.engine.notify.receiver import loopback_receiver
from tests.engine.notify.rows import DAY

NOTE = messages.kill_switch(DAY, replay=False, reason="max daily loss", realized_pnl=-20000.0)


class RecordingBlock(NotificationBlock):
    _block_type_slug = "recording-test-block"
    fail: bool = False

    async def notify(self, body: str, subject: str | None = None) -> None:
        if self.fail and self._raise_on_failure:
            raise RuntimeError("the service said no")
        delivered.append((subject, body))


delivered: list[tuple[str | None, str]] = []  # what RecordingBlock sent: (subject, body)


@pytest.mark.parametrize("fail", [False, True])
async def test_the_block_channel_loads_the_block_once_and_sends_text_and_subject(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fail: bool
) -> None:
    loads: list[str] = []

    async def aload(name: str, **_: Any) -> Block:
        loads.append(name)
        return RecordingBlock(fail=fail)

    monkeypatch.setattr(Block, "aload", aload)
    delivered.clear()
    channel = notify_tasks.block_channel("recording-test-block/desk")
    assert channel.name == "block:recording-test-block/desk"
    notifier = Notifier(init_db(f"sqlite:///{tmp_path / 'n.db'}"), [channel],
                        SteppedClock(datetime(2024, 6, 4, 15, 0, tzinfo=IST)), 2.0)
    other = messages.exit_failed(DAY, replay=False, event_id=1, symbol="INFY", reason="margin", attempts=3)
    counts = await notifier.deliver([NOTE, other])
    assert loads == ["recording-test-block/desk"]
    if fail:
        assert (counts.sent, counts.failed, delivered) == (0, 2, [])
    else:
        assert counts.sent == 2
        assert delivered == [("autotrader: kill switch", NOTE.text), ("autotrader: exit failed", other.text)]


async def test_a_stale_token_at_pre_open_is_notified_once_across_retries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in ("KITE_API_KEY", "KITE_ACCESS_TOKEN", "UPSTOX_ACCESS_TOKEN", "AUTOTRADER_BROKER",
                     "AUTOTRADER_FEED__SOURCE", "AUTOTRADER_NOTIFY__WEBHOOK_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env
    with loopback_receiver() as receiver:
        context = open_trading_day(DAY, LiveClock(), database_url=f"sqlite:///{tmp_path / 'day.db'}",
                                   broker="zerodha", feed={"source": "upstox"}, notify={"webhook_url": receiver.url})
        for _attempt in range(2):  # the task's retries: the same day and broker
            with pytest.raises(TokenMissing, match="UPSTOX_ACCESS_TOKEN"):
                await check_broker_token.fn(context)
    [body] = receiver.received
    assert body["key"] == "stale_token:2024-06-04:zerodha" and body["event"] == "stale_token"
    assert body["text"] == ("2024-06-04 pre-open: the zerodha login is not usable (feed.source is 'upstox' but "
                            "UPSTOX_ACCESS_TOKEN is not set). Log in again (autotrader login) before the open.")
