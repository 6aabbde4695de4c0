"""Issue #15, done when: a replayed demo with AUTOTRADER_NOTIFY__WEBHOOK_URL pointing at a loopback
receiver delivers one message per entry, exit and kill switch (each marked as a replay), plus each
day's summary; a receiver that fails (HTTP 500 on every other message) is not retried and changes
nothing in the trading: every day completes and every trade is reported."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlmodel import select

from engine.notify import REPLAY_MARKER
from engine.portfolio.times import from_db
from engine.storage import init_db, session_scope
from engine.storage.tables import NotificationRow, PositionRow, RiskLedgerRow
from tests.demos.kill_day import KILL_DAYS as DAYS
from tests.demos.kill_day import KillDay


@pytest.mark.e2e
def test_a_replayed_demo_sends_one_message_per_entry_exit_and_kill_switch(kill_day: KillDay) -> None:
    summary, received = kill_day.summary, kill_day.received
    assert summary["states"] == dict.fromkeys(DAYS, "Completed")
    assert kill_day.webhook_url not in kill_day.stderr  # the URL is a credential: never logged
    assert all(body["text"].startswith(f"{REPLAY_MARKER} ") and body["replay"] is True for body in received)
    assert len({body["key"] for body in received}) == len(received)  # one message per event, none retried

    db = init_db(kill_day.database_url)
    with session_scope(db) as session:
        positions = session.exec(select(PositionRow)).all()
        kills = session.exec(select(RiskLedgerRow).where(RiskLedgerRow.kill_switch)).all()
        rows = {row.key: row for row in session.exec(select(NotificationRow))}
    db.dispose()
    by_event = Counter(body["event"] for body in received)
    entries = sum(day["entries_filled"] for day in summary["days"])
    assert entries > 0 and summary["trades"] and kills, "the demo days no longer have entries, exits and a kill"
    assert by_event == {"entry": entries, "exit": len(summary["trades"]), "kill_switch": len(kills),
                        "summary": len(DAYS)}
    assert sorted((b["symbol"], b["quantity"], b["price"]) for b in received if b["event"] == "entry") == sorted(
        (p.symbol, p.quantity, p.average_price) for p in positions)
    assert sorted((b["day"], b["symbol"], b["quantity"], b["net_pnl"], b["reason"]) for b in received
                  if b["event"] == "exit") == sorted(
        (t["day"], t["symbol"], t["quantity"], t["net_pnl"], t["exit_reason"]) for t in summary["trades"])
    assert {b["day"] for b in received if b["event"] == "kill_switch"} == {k.trading_day.isoformat() for k in kills}

    # Each failed delivery is recorded as such, not sent again; the session itself sent the trading
    # events, at their minute of the replayed day (the post-close only adds the summary).
    assert Counter(row.status for row in rows.values()) == {"SENT": (len(received) + 1) // 2,
                                                            "FAILED": len(received) // 2}
    trading = [row for row in rows.values() if not row.key.startswith("summary:")]
    assert all(from_db(row.sent_at).date().isoformat() in DAYS for row in trading)
