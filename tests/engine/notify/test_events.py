"""Event detection from the rows: entries (a position opened by an entry order of the day), exits
(trades of the day), failed exits (EXIT_FAILED order events), the kill switch, the summary; a cursor
makes each scan read only rows newer than the last."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from engine.notify import Cursor, collect
from tests.engine.notify.rows import DAY, add_entry, add_exit_failed, add_other_event, add_trade, kill


def test_collect_finds_each_event_of_the_day_once_in_order(db: Engine) -> None:
    yesterday = add_entry(db, "AT0", "TCS", day=date(2024, 6, 3))
    ntpc = add_entry(db, "AT1", "NTPC", quantity=267, price=391.2)
    trade = add_trade(db, yesterday, "TCS", net_pnl=-1548.84)
    failed = add_exit_failed(db, "INFY", "RMS: margin exceeded", attempts=10)
    kill(db, "day P&L -20696.10 reached the max daily loss 20000.00", -20696.1)

    found = collect(db, DAY, replay=True)
    assert [n.key for n in found] == ["entry:AT1", f"exit:{trade}", f"exit_failed:{failed}", "kill:2024-06-04"]
    assert found[0].fields["symbol"] == "NTPC" and found[0].fields["quantity"] == 267
    assert found[1].fields["net_pnl"] == -1548.84 and found[1].fields["reason"] == "stop (GTT)"
    assert found[2].fields["attempts"] == 10 and "RMS: margin exceeded" in found[2].text
    assert all(n.text.startswith("[REPLAY] ") for n in found)
    assert ntpc > yesterday


def test_a_cursor_reads_only_newer_rows(db: Engine) -> None:
    cursor = Cursor()
    first = add_entry(db, "AT1", "NTPC")
    add_other_event(db)
    assert [n.key for n in collect(db, DAY, replay=False, cursor=cursor)] == ["entry:AT1"]
    assert collect(db, DAY, replay=False, cursor=cursor) == []
    assert cursor.position_id == first and cursor.event_id == 1

    trade = add_trade(db, first, "NTPC", net_pnl=120.0, reason="target (GTT)")
    add_entry(db, "AT2", "ONGC")
    kill(db, "max daily loss", -25000.0)
    assert [n.key for n in collect(db, DAY, replay=False, cursor=cursor)] == [
        "entry:AT2", f"exit:{trade}", "kill:2024-06-04"]
    assert collect(db, DAY, replay=False, cursor=cursor) == []
    # Without a cursor (a restart, the post-close catch-up) the whole day is found again.
    assert len(collect(db, DAY, replay=False)) == 4


def test_the_summary_counts_the_days_entries_exits_pnl_and_held_positions(db: Engine) -> None:
    one = add_entry(db, "AT1", "NTPC")
    add_entry(db, "AT2", "ONGC")
    add_entry(db, "AT0", "TCS", day=date(2024, 6, 3))  # carried from yesterday, still held
    add_trade(db, one, "NTPC", net_pnl=-100.25)
    [summary] = [n for n in collect(db, DAY, replay=False, summary=True) if n.event == "summary"]
    assert summary.fields == {"day": "2024-06-04", "entries": 2, "exits": 1, "net_pnl": -100.25,
                              "open_positions": 2, "kill_switch": False, "replay": False}
    assert "2 entries, 1 exits, net P&L -₹100.25, 2 position(s) held overnight" in summary.text
