"""Issue #13's done-when: `autotrader demo --from 2024-06-03 --to 2024-06-04` with flatten_on_kill on the
Kite sandbox, which enforces Kite's 2026 rules (market protection, 10 orders a second) (the shared
`kill_day` demo, tests/demos/kill_day.py). The kill switch trips on 2024-06-04 (election results) and
the engine's flatten orders, protected MARKET sells, are all accepted: the run ends flat with no refused
exit in the journal."""

from __future__ import annotations

import pytest
from sqlmodel import select

from engine.storage.db import init_db, session_scope
from engine.storage.tables import OrderEventRow, OrderRow, PositionRow
from tests.demos.kill_day import KILL_DAYS, KillDay


@pytest.mark.e2e
def test_a_replayed_kill_switch_day_on_the_kite_sandbox_ends_flat_with_every_exit_accepted(kill_day: KillDay) -> None:
    summary = kill_day.summary
    assert summary["states"] == dict.fromkeys(KILL_DAYS, "Completed")
    assert summary["open_positions"] == []  # flat
    flattened = [t for t in summary["trades"] if t["exit_reason"] == "kill switch"]
    assert flattened and {t["day"] for t in flattened} == {"2024-06-04"}
    db = init_db(kill_day.database_url)
    try:
        with session_scope(db) as session:
            exits = session.exec(select(OrderRow).where(OrderRow.purpose == "EXIT")).all()
            open_positions = session.exec(select(PositionRow).where(PositionRow.status == "OPEN")).all()
            failed = session.exec(select(OrderEventRow).where(OrderEventRow.kind == "EXIT_FAILED")).all()
    finally:
        db.dispose()
    assert exits and [o.symbol for o in exits if o.status == "REJECTED"] == []  # every exit accepted
    assert {o.status for o in exits} == {"FILLED"}
    assert {o.symbol for o in exits if o.order_type == "MARKET"} == {t["symbol"] for t in flattened}
    assert (open_positions, failed) == ([], [])
