"""The day's setups rows (table `setups`): every setup the strategy found, with what became of it
(CANDIDATE, EXECUTED, SKIPPED, EXPIRED) and why.

No tick waits for the database: a CANDIDATE row found on a tick is staged in memory and written
with the others in one transaction (`flush_due`: at most once a minute of the clock), and every
other write or read of the table flushes first. A crash loses at most the last minute's CANDIDATE
rows, which the strategy finds again on the next ticks; the rows an entry or a restart depends on
(EXECUTED before its order is sent, SKIPPED) are written at once."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import col, select

from engine.models import Setup
from engine.portfolio.times import to_db
from engine.storage import session_scope
from engine.storage.tables import OrderRow, SetupRow

FLUSH_SECONDS = 60.0


def _rules_json(setup: Setup) -> str:
    return json.dumps([{"name": r.name, "passed": r.passed, "observed": r.observed} for r in setup.rules])


def _state(setup: Setup, *, status: str, reason: str = "", quantity: int = 0,
           client_order_id: str | None = None) -> dict[str, Any]:
    """The columns of a row that follow the setup and what became of it."""
    return {"entry": setup.entry, "stop": setup.stop, "target": setup.target, "score": setup.score,
            "reason": setup.reason, "rules_json": _rules_json(setup), "status": status, "status_reason": reason,
            "quantity": quantity, "client_order_id": client_order_id}


class SetupStore:
    def __init__(self, db: Engine, trading_day: date) -> None:
        self.db = db
        self.trading_day = trading_day
        self.ids: dict[str, int] = {}  # instrument_key -> today's row of the instrument
        self._staged: dict[str, dict[str, Any]] = {}  # instrument_key -> a CANDIDATE row's columns, not written yet
        self._flushed_at: datetime | None = None

    def _new_row(self, setup: Setup) -> SetupRow:
        return SetupRow(**self._identity(setup), entry=0.0, stop=0.0, target=0.0, score=0.0, reason="")

    def _identity(self, setup: Setup) -> dict[str, Any]:
        """The columns a row of `setup` never changes."""
        return {"trading_day": self.trading_day, "found_at": to_db(setup.found_at),
                "instrument_key": setup.instrument_key, "symbol": setup.symbol, "strategy": setup.strategy,
                "side": setup.side.value}

    def _fill(self, row: SetupRow, setup: Setup, *, status: str, reason: str = "", quantity: int = 0,
              client_order_id: str | None = None) -> SetupRow:
        for name, value in _state(setup, status=status, reason=reason, quantity=quantity,
                                  client_order_id=client_order_id).items():
            setattr(row, name, value)
        return row

    def known(self, instrument_key: str) -> bool:
        """The instrument has a row today (written or staged)."""
        return instrument_key in self.ids or instrument_key in self._staged

    def stage_candidate(self, setup: Setup) -> None:
        """A newly found candidate's row, as it is now (written by the next flush). Plain columns, not
        an ORM row: building one costs a tick frame a few hundred microseconds."""
        self._staged[setup.instrument_key] = {**self._identity(setup), **_state(setup, status="CANDIDATE")}

    def flush_due(self, now: datetime) -> None:
        """Write the staged rows unless the last flush was less than `FLUSH_SECONDS` ago."""
        if self._staged and (self._flushed_at is None or (now - self._flushed_at).total_seconds() >= FLUSH_SECONDS):
            self._flushed_at = now
            self.flush()

    def flush(self) -> None:
        """Write the staged rows now, in the order they were found."""
        if not self._staged:
            return
        with session_scope(self.db) as session:  # one INSERT of every row, their ids in the same order
            ids = session.connection().execute(
                insert(SetupRow).returning(col(SetupRow.id), sort_by_parameter_order=True),
                list(self._staged.values())).scalars().all()
        for key, row_id in zip(self._staged, ids, strict=True):
            assert row_id is not None
            self.ids[key] = row_id
        self._staged.clear()

    def save(self, setup: Setup, *, status: str, reason: str = "", quantity: int = 0,
             client_order_id: str | None = None) -> int:
        """Write `setup` with its status into the instrument's row of today (a new row if it has
        none); returns the row id."""
        self.flush()
        with session_scope(self.db) as session:
            setup_id = self.ids.get(setup.instrument_key)
            row = session.get(SetupRow, setup_id) if setup_id is not None else None
            row = self._fill(row or self._new_row(setup), setup, status=status, reason=reason, quantity=quantity,
                             client_order_id=client_order_id)
            session.add(row)
            session.flush()
            assert row.id is not None
            self.ids[setup.instrument_key] = row.id
            return row.id

    def record(self, setup: Setup, *, status: str, reason: str) -> None:
        """A row of its own, apart from the instrument's row of today (a setup found after the day's
        last decision, kept for the report)."""
        with session_scope(self.db) as session:
            session.add(self._fill(self._new_row(setup), setup, status=status, reason=reason))

    def expire(self, reason: str, *, keep: Collection[str] = (), status: str = "EXPIRED") -> None:
        """Rows still CANDIDATE whose instrument is not in `keep` (the current candidates) end the day
        (EXPIRED, or SKIPPED when a limit such as the kill switch refused them)."""
        self.flush()
        with session_scope(self.db) as session:
            rows = session.exec(
                select(SetupRow).where(SetupRow.trading_day == self.trading_day, SetupRow.status == "CANDIDATE")
            ).all()
            for row in rows:
                if row.instrument_key not in keep:
                    row.status, row.status_reason = status, reason
                    session.add(row)

    def todays_setups_and_entries(self) -> tuple[Sequence[SetupRow], Sequence[OrderRow]]:
        self.flush()
        with session_scope(self.db) as session:
            setups = session.exec(select(SetupRow).where(SetupRow.trading_day == self.trading_day)).all()
            entries = session.exec(
                select(OrderRow).where(OrderRow.trading_day == self.trading_day, OrderRow.purpose == "ENTRY")
            ).all()
        return setups, entries

    def count(self) -> int:
        self.flush()
        with session_scope(self.db) as session:
            return len(session.exec(select(SetupRow.id).where(SetupRow.trading_day == self.trading_day)).all())
