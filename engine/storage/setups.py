"""The repository of table `setups`, its only writer: every setup a strategy found on a trading day,
with what became of it (`SetupStatus`) and why.

A row's identity (day, time found, instrument, strategy, side) never changes; its state (the
setup's prices, score, rules, status, quantity, entry order) follows the setup. `setups_store(db)`
gives the SQL store of an `Engine` or the in-memory store of a `MemoryDatabase`; both behave the
same (tests/engine/storage/test_setups_store.py)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import Engine, insert
from sqlmodel import col, func, select

from engine.models import RuleResult, Setup, SetupStatus, Side
from engine.portfolio.times import from_db, to_db
from engine.storage.db import session_scope
from engine.storage.memory import Database, MemoryDatabase
from engine.storage.tables import SetupRow


@dataclass(frozen=True, slots=True)
class SetupRecord:
    """A row of `setups`. `id` is None until the store writes it."""

    trading_day: date
    found_at: datetime
    instrument_key: str
    symbol: str
    strategy: str
    side: Side
    entry: float
    stop: float
    target: float
    score: float
    reason: str
    rules: tuple[RuleResult, ...] = ()
    status: SetupStatus = SetupStatus.CANDIDATE
    status_reason: str = ""
    quantity: int = 0
    client_order_id: str | None = None
    id: int | None = None

    @classmethod
    def of(cls, trading_day: date, setup: Setup, *, status: SetupStatus, reason: str = "", quantity: int = 0,
           client_order_id: str | None = None) -> SetupRecord:
        """`setup` as it is now (its rules copied: the setup may change later), with its status."""
        return cls(trading_day=trading_day, found_at=setup.found_at, instrument_key=setup.instrument_key,
                   symbol=setup.symbol, strategy=setup.strategy, side=setup.side, entry=setup.entry, stop=setup.stop,
                   target=setup.target, score=setup.score, reason=setup.reason, rules=tuple(setup.rules),
                   status=status, status_reason=reason, quantity=quantity, client_order_id=client_order_id)


STATE_FIELDS = ("entry", "stop", "target", "score", "reason", "rules", "status", "status_reason", "quantity",
                "client_order_id")  # what `update` writes; the other fields are the row's identity


class SetupsStore(Protocol):
    def insert(self, records: Sequence[SetupRecord]) -> list[int]:
        """New rows, written in order in one transaction; their ids in the same order."""

    def update(self, setup_id: int, record: SetupRecord) -> None:
        """The state fields (`STATE_FIELDS`) of row `setup_id` as in `record`."""

    def end_candidates(self, trading_day: date, *, status: SetupStatus, reason: str,
                       keep: Collection[str] = ()) -> None:
        """The day's CANDIDATE rows whose instrument is not in `keep` take `status` and `reason`."""

    def of_day(self, trading_day: date) -> list[SetupRecord]:
        """The day's rows in the order they were written."""

    def count(self, trading_day: date) -> int:
        """How many rows the day has."""


def rules_as_json(rules: Sequence[RuleResult]) -> list[dict[str, Any]]:
    """The rules as the `rules_json` column and the daily report hold them."""
    return [{"name": r.name, "passed": r.passed, "observed": r.observed} for r in rules]


def _state_columns(record: SetupRecord) -> dict[str, Any]:
    return {"entry": record.entry, "stop": record.stop, "target": record.target, "score": record.score,
            "reason": record.reason, "rules_json": json.dumps(rules_as_json(record.rules)),
            "status": record.status.value, "status_reason": record.status_reason, "quantity": record.quantity,
            "client_order_id": record.client_order_id}


def _columns(record: SetupRecord) -> dict[str, Any]:
    return {"trading_day": record.trading_day, "found_at": to_db(record.found_at),
            "instrument_key": record.instrument_key, "symbol": record.symbol, "strategy": record.strategy,
            "side": record.side.value, **_state_columns(record)}


def _record(row: SetupRow) -> SetupRecord:
    rules = tuple(RuleResult(r["name"], r["passed"], r["observed"]) for r in json.loads(row.rules_json or "[]"))
    return SetupRecord(trading_day=row.trading_day, found_at=from_db(row.found_at), instrument_key=row.instrument_key,
                       symbol=row.symbol, strategy=row.strategy, side=Side(row.side), entry=row.entry, stop=row.stop,
                       target=row.target, score=row.score, reason=row.reason, rules=rules,
                       status=SetupStatus(row.status), status_reason=row.status_reason, quantity=row.quantity,
                       client_order_id=row.client_order_id, id=row.id)


class SqlSetupsStore:
    def __init__(self, db: Engine) -> None:
        self.db = db

    def insert(self, records: Sequence[SetupRecord]) -> list[int]:
        if not records:
            return []
        with session_scope(self.db) as session:  # one INSERT of every row, their ids in the same order
            ids = session.connection().execute(
                insert(SetupRow).returning(col(SetupRow.id), sort_by_parameter_order=True),
                [_columns(record) for record in records]).scalars().all()
        written = [setup_id for setup_id in ids if setup_id is not None]
        assert len(written) == len(records)  # a primary key is never NULL
        return written

    def update(self, setup_id: int, record: SetupRecord) -> None:
        with session_scope(self.db) as session:
            row = session.get(SetupRow, setup_id)
            if row is None:
                raise KeyError(f"no setups row {setup_id}")
            for name, value in _state_columns(record).items():
                setattr(row, name, value)
            session.add(row)

    def end_candidates(self, trading_day: date, *, status: SetupStatus, reason: str,
                       keep: Collection[str] = ()) -> None:
        with session_scope(self.db) as session:
            rows = session.exec(select(SetupRow).where(SetupRow.trading_day == trading_day,
                                                       SetupRow.status == SetupStatus.CANDIDATE.value)).all()
            for row in rows:
                if row.instrument_key not in keep:
                    row.status, row.status_reason = status.value, reason
                    session.add(row)

    def of_day(self, trading_day: date) -> list[SetupRecord]:
        with session_scope(self.db) as session:
            rows = session.exec(select(SetupRow).where(SetupRow.trading_day == trading_day)
                                .order_by(col(SetupRow.id))).all()
            return [_record(row) for row in rows]

    def count(self, trading_day: date) -> int:
        with session_scope(self.db) as session:
            return int(session.exec(select(func.count()).select_from(SetupRow)
                                    .where(SetupRow.trading_day == trading_day)).one())


class MemorySetupsStore:
    """The rows by id, and each day's ids in the order written (every query here is of one day)."""

    def __init__(self) -> None:
        self._rows: dict[int, SetupRecord] = {}
        self._day_ids: dict[date, list[int]] = {}
        self._last_id = 0

    def insert(self, records: Sequence[SetupRecord]) -> list[int]:
        ids = []
        for record in records:
            self._last_id += 1
            self._rows[self._last_id] = replace(record, id=self._last_id)
            self._day_ids.setdefault(record.trading_day, []).append(self._last_id)
            ids.append(self._last_id)
        return ids

    def update(self, setup_id: int, record: SetupRecord) -> None:
        row = self._rows.get(setup_id)
        if row is None:
            raise KeyError(f"no setups row {setup_id}")
        self._rows[setup_id] = replace(row, **{name: getattr(record, name) for name in STATE_FIELDS})

    def end_candidates(self, trading_day: date, *, status: SetupStatus, reason: str,
                       keep: Collection[str] = ()) -> None:
        for setup_id in self._day_ids.get(trading_day, ()):
            row = self._rows[setup_id]
            if row.status == SetupStatus.CANDIDATE and row.instrument_key not in keep:
                self._rows[setup_id] = replace(row, status=status, status_reason=reason)

    def of_day(self, trading_day: date) -> list[SetupRecord]:
        return [self._rows[setup_id] for setup_id in self._day_ids.get(trading_day, ())]

    def count(self, trading_day: date) -> int:
        return len(self._day_ids.get(trading_day, ()))


def setups_store(db: Database) -> SetupsStore:
    if isinstance(db, MemoryDatabase):
        return db.store(MemorySetupsStore)
    return SqlSetupsStore(db)


__all__ = ["STATE_FIELDS", "MemorySetupsStore", "SetupRecord", "SetupsStore", "SqlSetupsStore", "rules_as_json",
           "setups_store"]
