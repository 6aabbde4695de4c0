"""The risk controller: the day's budget for entries (risk, funds, slots), the risk ledger kept
equal to the order journal, the kill switch and the halt of entries (e.g. an expired token)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date

from engine.brokers.base import BrokerError, TokenExpired
from engine.clock import Clock
from engine.models import OrderStatus, Side
from engine.portfolio.charges import ChargeCalculator
from engine.portfolio.positions import PositionBook
from engine.risk.ledger import RiskLedger, entry_initial_risk
from engine.risk.limits import RiskBudget
from engine.settings import Settings
from engine.storage.memory import Database
from engine.storage.positions import position_store
from engine.trading.setups import SetupStore

log = logging.getLogger(__name__)


class RiskController:
    def __init__(self, settings: Settings, clock: Clock, db: Database, trading_day: date, charges: ChargeCalculator,
                 positions: PositionBook, setups: SetupStore) -> None:
        self.settings = settings
        self.db = db
        self.trading_day = trading_day
        self.charges = charges
        self.positions = positions
        self.trades = position_store(db)
        self.setups = setups
        self.ledger = RiskLedger(db, clock, trading_day, settings)
        self.entries_halted_reason = ""
        self.realized_before_today = 0.0  # net P&L of earlier days' trades: the funds carry it

    @property
    def kill_switch(self) -> bool:
        return self.ledger.kill_switch

    @property
    def kill_reason(self) -> str:
        return self.ledger.kill_reason

    def halt_entries(self, reason: str) -> None:
        self.entries_halted_reason = reason

    def on_broker_error(self, error: BrokerError) -> None:
        """A broker call failed (after the order manager's retries): an expired token halts entries."""
        if isinstance(error, TokenExpired):
            self.halt_entries(f"broker token expired: {error}")

    @property
    def entries_allowed(self) -> bool:
        return not (self.kill_switch or self.entries_halted_reason)

    def load_earlier_days(self) -> None:
        self.realized_before_today = self.trades.realised_net_before(self.trading_day)

    def recompute(self) -> None:
        """The single source of truth of the day's risk, from the order journal: risk used = Σ over
        today's entry orders of `entry_initial_risk` (filled quantity × (average fill − stop), plus
        the unfilled rest × (LIMIT − stop) while the order still works); realised P&L = Σ net P&L of
        today's trades."""
        setup_rows, entries = self.setups.todays_setups_and_entries()
        realized = self.trades.realised_net(self.trading_day)
        setups = {row.client_order_id: row for row in setup_rows if row.client_order_id}
        risk = 0.0
        for order in entries:
            setup = setups.get(order.client_order_id)
            if setup is None:
                continue
            risk += entry_initial_risk(
                stop=setup.stop, quantity=order.quantity, limit_price=order.price or setup.entry,
                filled_quantity=order.filled_quantity, average_price=order.average_price,
                settled=OrderStatus(order.status).is_terminal,
            )
        self.ledger.set_totals(risk_used=risk, realized_pnl=realized)

    def buy_cost(self, quantity: int, price: float) -> float:
        """What buying costs in cash: the value plus the buy-side charges."""
        return quantity * price + self.charges.order(Side.BUY, quantity, price).total

    def budget(self, reserved: Iterable[tuple[int, float]], held: frozenset[str], funds_at_broker: float | None,
               pending_entries: int) -> RiskBudget:
        """What the entry window may spend; `reserved` is (quantity, LIMIT) of each pending entry."""
        invested = sum(self.buy_cost(p.quantity, p.average_price) for p in self.positions.open.values())
        realized = self.realized_before_today + self.ledger.realized_pnl
        funds = self.ledger.capital + realized - invested - sum(self.buy_cost(q, price) for q, price in reserved)
        if funds_at_broker is not None:
            funds = min(funds, funds_at_broker)
        return RiskBudget(
            capital=self.ledger.capital,
            daily_risk_cap=self.ledger.daily_risk_cap,
            risk_used=self.ledger.risk_used,
            funds_available=funds,
            open_positions=len(self.positions.open) + pending_entries,
            held=held,
            kill_switch=not self.entries_allowed,
            kill_reason=self.kill_reason or self.entries_halted_reason,
        )

    def day_pnl(self) -> float:
        """Realised net P&L of the day plus the open positions' P&L since their reference price."""
        return self.ledger.realized_pnl + sum(p.day_pnl for p in self.positions.open.values())

    def trip_on_loss(self) -> bool:
        """Trip the kill switch when the day's P&L reaches the max daily loss; True when it tripped now."""
        if self.kill_switch:
            return False
        limit = self.ledger.capital * self.settings.risk.max_daily_loss_pct / 100
        pnl = self.day_pnl()
        if pnl > -limit:
            return False
        self.ledger.trip(f"day P&L {pnl:.2f} reached the max daily loss {limit:.2f}")
        log.error("KILL SWITCH: %s", self.kill_reason)
        return True
