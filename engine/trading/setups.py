"""The day's setups rows (table `setups`): every setup the strategy found, with what became of it
(CANDIDATE, EXECUTED, SKIPPED, EXPIRED) and why.

No tick waits for the database: a CANDIDATE row found on a tick is staged in memory and written
with the others in one transaction (`flush_due`: at most once a minute of the clock), and every
other write or read of the table flushes first. A crash loses at most the last minute's CANDIDATE
rows, which the strategy finds again on the next ticks; the rows an entry or a restart depends on
(EXECUTED before its order is sent, SKIPPED) are written at once."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

from engine.models import OrderPurpose, Setup, SetupStatus
from engine.storage.journal import JournaledOrder, journal_store
from engine.storage.memory import Database
from engine.storage.setups import SetupRecord, setups_store

FLUSH_SECONDS = 60.0


class SetupStore:
    def __init__(self, db: Database, trading_day: date) -> None:
        self.db = db
        self.store = setups_store(db)
        self.trading_day = trading_day
        self.ids: dict[str, int] = {}  # instrument_key -> today's row of the instrument
        self._staged: dict[str, SetupRecord] = {}  # instrument_key -> a CANDIDATE row, not written yet
        self._flushed_at: datetime | None = None

    def known(self, instrument_key: str) -> bool:
        """The instrument has a row today (written or staged)."""
        return instrument_key in self.ids or instrument_key in self._staged

    def stage_candidate(self, setup: Setup) -> None:
        """A newly found candidate's row, as it is now (written by the next flush)."""
        self._staged[setup.instrument_key] = SetupRecord.of(self.trading_day, setup, status=SetupStatus.CANDIDATE)

    def flush_due(self, now: datetime) -> None:
        """Write the staged rows unless the last flush was less than `FLUSH_SECONDS` ago."""
        if self._staged and (self._flushed_at is None or (now - self._flushed_at).total_seconds() >= FLUSH_SECONDS):
            self._flushed_at = now
            self.flush()

    def flush(self) -> None:
        """Write the staged rows now, in the order they were found."""
        if not self._staged:
            return
        ids = self.store.insert(list(self._staged.values()))
        self.ids.update(zip(self._staged, ids, strict=True))
        self._staged.clear()

    def save(self, setup: Setup, *, status: SetupStatus, reason: str = "", quantity: int = 0,
             client_order_id: str | None = None) -> int:
        """Write `setup` with its status into the instrument's row of today (a new row if it has
        none); returns the row id."""
        self.flush()
        record = SetupRecord.of(self.trading_day, setup, status=status, reason=reason, quantity=quantity,
                                client_order_id=client_order_id)
        setup_id = self.ids.get(setup.instrument_key)
        if setup_id is None:
            [setup_id] = self.store.insert([record])
            self.ids[setup.instrument_key] = setup_id
        else:
            self.store.update(setup_id, record)
        return setup_id

    def record(self, setup: Setup, *, status: SetupStatus, reason: str) -> None:
        """A row of its own, apart from the instrument's row of today (a setup found after the day's
        last decision, kept for the report)."""
        self.store.insert([SetupRecord.of(self.trading_day, setup, status=status, reason=reason)])

    def expire(self, reason: str, *, keep: Collection[str] = (), status: SetupStatus = SetupStatus.EXPIRED) -> None:
        """Rows still CANDIDATE whose instrument is not in `keep` (the current candidates) end the day
        (EXPIRED, or SKIPPED when a limit such as the kill switch refused them)."""
        self.flush()
        self.store.end_candidates(self.trading_day, status=status, reason=reason, keep=keep)

    def todays_setups_and_entries(self) -> tuple[list[SetupRecord], list[JournaledOrder]]:
        self.flush()
        setups = self.store.of_day(self.trading_day)
        entries = journal_store(self.db).orders(None, trading_day=self.trading_day, purpose=OrderPurpose.ENTRY.value)
        return setups, entries

    def count(self) -> int:
        self.flush()
        return self.store.count(self.trading_day)
