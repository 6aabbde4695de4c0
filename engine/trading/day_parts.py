"""The day-scoped parts of a `TradingEngine`, built as a new engine of a trading day has them: the
day's charges (dated rates), positions, setups, risk controller, entries and position guard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from engine.brokers.base import Broker
from engine.clock import Clock
from engine.models import Instrument
from engine.portfolio.charges import ChargeCalculator
from engine.portfolio.positions import PositionBook
from engine.settings import Settings
from engine.storage.memory import Database
from engine.strategy.base import GuardedStrategy, Strategy
from engine.strategy.window import SessionLike
from engine.trading.entries import Entries
from engine.trading.events import Issue, OrderManagerLike
from engine.trading.guard import PositionGuard
from engine.trading.risk_control import RiskController
from engine.trading.setups import SetupStore


@dataclass(frozen=True, slots=True)
class DayParts:
    trading_day: date
    strategy: GuardedStrategy  # its error count is the day's
    orders: OrderManagerLike
    positions: PositionBook
    setups: SetupStore
    risk: RiskController
    entries: Entries
    guard: PositionGuard


def build_day_parts(settings: Settings, clock: Clock, db: Database, instruments: dict[str, Instrument],
                    strategy: Strategy, order_manager: OrderManagerLike, trading_day: date,
                    session: SessionLike | None, issue: Issue, *, broker: Broker | None,
                    exits_at_broker: bool | None, poll_seconds: float, refresh_ms: int | None) -> DayParts:
    guarded = GuardedStrategy(strategy)
    charges = ChargeCalculator.from_settings(settings, trading_day=trading_day)  # venue, product, date
    positions = PositionBook(db, charges, instruments)
    setups = SetupStore(db, trading_day)
    risk = RiskController(settings, clock, db, trading_day, charges, positions, setups)
    entries = Entries(settings, clock, trading_day, session, instruments, guarded, order_manager, positions, risk,
                      setups, charges, issue, refresh_ms=refresh_ms)
    guard = PositionGuard(settings, clock, db, trading_day, guarded, order_manager, positions, risk, issue,
                          broker=broker, exits_at_broker=exits_at_broker, poll_seconds=poll_seconds)
    return DayParts(trading_day, guarded, order_manager, positions, setups, risk, entries, guard)


__all__ = ["DayParts", "build_day_parts"]
