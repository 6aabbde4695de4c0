"""The daily risk ledger (table `risk_ledger`, one row per trading day): the day's capital, risk
cap, the initial risk of the day's entries, realised P&L and the kill switch. Persisted on every
change, so a restarted session keeps the day's budget and never re-opens a halted day. Risk is
reserved (`add_entry`) at the worst-case fill, the order's LIMIT price, before an entry order
leaves; the engine then recomputes the totals from the journal (`set_totals`, each entry's risk by
`entry_initial_risk`) whenever an entry settles or a trade closes: a settled entry counts its
ACTUAL initial risk (average fill − stop) × filled, which is never more than its reservation."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from engine.clock import Clock
from engine.settings import Settings
from engine.storage.ledger import LedgerDay, ledger_store
from engine.storage.memory import Database


def entry_initial_risk(
    *, stop: float, quantity: int, limit_price: float, filled_quantity: int, average_price: float, settled: bool
) -> float:
    """The initial risk an entry order holds in the daily budget: what filled at its average fill
    price, plus (while the order still works) the unfilled rest at its LIMIT price, the most it can
    pay; a settled order's unfilled rest is released. Never negative (a fill below the stop)."""
    filled_risk = filled_quantity * max(0.0, average_price - stop) if filled_quantity > 0 else 0.0
    working = 0 if settled else quantity - filled_quantity
    return filled_risk + working * max(0.0, limit_price - stop)


def configured_daily_risk_cap(settings: Settings) -> float:
    """`daily_risk_cap_pct` % of the configured capital, in rupees (paise)."""
    return round(settings.capital * settings.risk.daily_risk_cap_pct / 100, 2)


class RiskLedger:
    def __init__(self, db: Database, clock: Clock, trading_day: date, settings: Settings) -> None:
        self.store = ledger_store(db)
        self.clock = clock
        self.trading_day = trading_day
        row = self.store.get(trading_day)
        if row is None:
            row = LedgerDay(trading_day=trading_day, capital=settings.capital,
                            daily_risk_cap=configured_daily_risk_cap(settings), updated_at=clock.now())
            self.store.save(row)
        self.row = row

    @property
    def capital(self) -> float:
        return self.row.capital

    @property
    def daily_risk_cap(self) -> float:
        return self.row.daily_risk_cap

    @property
    def risk_used(self) -> float:
        return self.row.risk_used

    @property
    def realized_pnl(self) -> float:
        return self.row.realized_pnl

    @property
    def entries(self) -> int:
        return self.row.entries

    @property
    def kill_switch(self) -> bool:
        return self.row.kill_switch

    @property
    def kill_reason(self) -> str:
        return self.row.kill_reason

    def _save(self, row: LedgerDay) -> None:
        self.row = replace(row, updated_at=self.clock.now())
        self.store.save(self.row)

    def add_entry(self, risk: float) -> None:
        """Reserve the initial risk of an entry (before its order is sent)."""
        self._save(replace(self.row, risk_used=self.row.risk_used + risk, entries=self.row.entries + 1))

    def set_totals(self, *, risk_used: float, realized_pnl: float) -> None:
        """Totals recomputed from the order journal and the trades (idempotent, so a restart
        never counts a release or a trade twice)."""
        self._save(replace(self.row, risk_used=max(0.0, risk_used), realized_pnl=round(realized_pnl, 2)))

    def trip(self, reason: str) -> None:
        if not self.row.kill_switch:
            self._save(replace(self.row, kill_switch=True, kill_reason=reason))
