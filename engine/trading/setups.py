"""The day's setups rows (table `setups`): every setup the strategy found, with what became of it
(CANDIDATE, EXECUTED, SKIPPED, EXPIRED) and why."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import date

from sqlalchemy import Engine
from sqlmodel import select

from engine.models import Setup
from engine.portfolio.times import to_db
from engine.storage import session_scope
from engine.storage.tables import OrderRow, SetupRow


def _rules_json(setup: Setup) -> str:
    return json.dumps([{"name": r.name, "passed": r.passed, "observed": r.observed} for r in setup.rules])


class SetupStore:
    def __init__(self, db: Engine, trading_day: date) -> None:
        self.db = db
        self.trading_day = trading_day

    def save(self, setup: Setup, *, status: str, reason: str = "", quantity: int = 0,
             client_order_id: str | None = None, setup_id: int | None = None) -> int:
        """Write `setup` with its status (into row `setup_id` when given); returns the row id."""
        with session_scope(self.db) as session:
            row = session.get(SetupRow, setup_id) if setup_id is not None else None
            if row is None:
                row = SetupRow(trading_day=self.trading_day, found_at=to_db(setup.found_at),
                               instrument_key=setup.instrument_key, symbol=setup.symbol, strategy=setup.strategy,
                               side=setup.side.value, entry=0.0, stop=0.0, target=0.0, score=0.0, reason="")
            row.entry, row.stop, row.target, row.score = setup.entry, setup.stop, setup.target, setup.score
            row.reason, row.rules_json = setup.reason, _rules_json(setup)
            row.status, row.status_reason, row.quantity = status, reason, quantity
            row.client_order_id = client_order_id
            session.add(row)
            session.flush()
            assert row.id is not None
            return row.id

    def expire(self, reason: str, *, keep: Collection[str] = (), status: str = "EXPIRED") -> None:
        """Rows still CANDIDATE whose instrument is not in `keep` (the current candidates) end the day
        (EXPIRED, or SKIPPED when a limit such as the kill switch refused them)."""
        with session_scope(self.db) as session:
            rows = session.exec(
                select(SetupRow).where(SetupRow.trading_day == self.trading_day, SetupRow.status == "CANDIDATE")
            ).all()
            for row in rows:
                if row.instrument_key not in keep:
                    row.status, row.status_reason = status, reason
                    session.add(row)

    def todays_setups_and_entries(self) -> tuple[Sequence[SetupRow], Sequence[OrderRow]]:
        with session_scope(self.db) as session:
            setups = session.exec(select(SetupRow).where(SetupRow.trading_day == self.trading_day)).all()
            entries = session.exec(
                select(OrderRow).where(OrderRow.trading_day == self.trading_day, OrderRow.purpose == "ENTRY")
            ).all()
        return setups, entries

    def count(self) -> int:
        with session_scope(self.db) as session:
            return len(session.exec(select(SetupRow.id).where(SetupRow.trading_day == self.trading_day)).all())
