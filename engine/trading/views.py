"""What sessions, reports and tests read of a `TradingEngine`: views of its parts, no state of
their own (the router stays a router)."""

from __future__ import annotations

from datetime import date

from engine.clock import Clock
from engine.models import MarketStatus
from engine.portfolio.positions import PositionBook
from engine.risk.ledger import RiskLedger
from engine.strategy.base import GuardedStrategy
from engine.strategy.validator import RuleContext
from engine.strategy.window import EntryWindow, SessionLike
from engine.trading.day_parts import DayParts
from engine.trading.entries import Entries, PendingEntry
from engine.trading.events import OrderManagerLike
from engine.trading.guard import PositionGuard
from engine.trading.risk_control import RiskController
from engine.trading.setups import SetupStore
from engine.trading.summary import DaySummary, summarize_day


class EngineViews:
    clock: Clock
    day: DayParts

    # the day's parts (engine/trading/day_parts.py), by name
    @property
    def trading_day(self) -> date:
        return self.day.trading_day

    @property
    def strategy(self) -> GuardedStrategy:
        return self.day.strategy

    @property
    def orders(self) -> OrderManagerLike:
        return self.day.orders

    @property
    def positions(self) -> PositionBook:
        return self.day.positions

    @property
    def setups(self) -> SetupStore:
        return self.day.setups

    @property
    def risk(self) -> RiskController:
        return self.day.risk

    @property
    def entries(self) -> Entries:
        return self.day.entries

    @property
    def guard(self) -> PositionGuard:
        return self.day.guard

    @property
    def window(self) -> EntryWindow:
        return self.day.entries.window

    @property
    def session(self) -> SessionLike | None:
        return self.day.entries.session

    @property
    def ledger(self) -> RiskLedger:
        return self.risk.ledger

    @property
    def kill_switch(self) -> bool:
        return self.risk.kill_switch

    @property
    def kill_reason(self) -> str:
        return self.risk.kill_reason

    @property
    def strategy_errors(self) -> int:
        return self.strategy.errors.total

    @property
    def candidates(self) -> dict[str, RuleContext]:
        return self.entries.candidates

    @property
    def pending(self) -> dict[str, PendingEntry]:
        return self.entries.pending

    def held(self) -> frozenset[str]:
        return self.entries.held()

    def window_open(self) -> bool:
        return self.entries.window_open()

    @property
    def market_status(self) -> MarketStatus | None:
        return self.entries.market_status

    def day_pnl(self) -> float:
        return self.risk.day_pnl()

    def day_summary(self) -> DaySummary:
        return summarize_day(self.trading_day, setups=self.setups.count(), ledger=self.ledger,
                             trades=self.positions.trades_of(self.trading_day), open_positions=len(self.positions.open),
                             strategy_errors=self.strategy_errors)

    def state_line(self) -> str:
        return (f"{self.trading_day}: {len(self.positions.open)} open positions, {len(self.entries.pending)} pending "
                f"entries, risk used {self.ledger.risk_used:.2f} of {self.ledger.daily_risk_cap:.2f}"
                + (f", KILL SWITCH ({self.kill_reason})" if self.kill_switch else ""))
