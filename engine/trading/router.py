"""The trading engine: the ONE decision path of live, replayed and backtested runs, as a router of
events to the parts that own the trading state.

    ticks ──▶ indicators ──▶ guard (open positions: protection, exits, GTT sync)
                         └─▶ entries (candidates) ─ entry window ─▶ risk (budget) ─▶ entry orders
    broker answers ──▶ entries (fills open positions) / guard (exits close them, with P&L)

Inputs and broker answers go through one queue, handled by one owner (`engine.trading.owner`).
Nothing here reads the wall clock or imports Prefect: the caller injects the clock, the order
manager (exactly-once orders and exits) and, for the paper broker, the broker that wants ticks.
Restart safety: the first event is always `Resume`, which rebuilds the open positions, pending
entries and unprotected positions from the database; the daily risk budget and kill switch live in
the `risk_ledger` table."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine

from engine.brokers.base import Broker, BrokerError, TokenExpired
from engine.clock import Clock
from engine.execution.reconcile import ReconcileReport
from engine.indicators.multitimeframe import InstrumentIndicators
from engine.models import Instrument, MarketStatus, Tick
from engine.portfolio.charges import ChargeCalculator
from engine.portfolio.positions import PositionBook
from engine.risk.ledger import RiskLedger
from engine.risk.limits import EntryDecision
from engine.settings import Settings
from engine.strategy.base import GuardedStrategy, Strategy
from engine.strategy.validator import RuleContext
from engine.strategy.window import EntryWindow, SessionLike
from engine.trading import events as ev
from engine.trading.entries import Entries, PendingEntry
from engine.trading.events import Event, OrderManagerLike
from engine.trading.guard import PositionGuard
from engine.trading.owner import EventOwner
from engine.trading.requirements import default_session
from engine.trading.risk_control import RiskController
from engine.trading.setups import SetupStore
from engine.trading.summary import DaySummary, summarize_day

log = logging.getLogger(__name__)

_CLOSED_MARKET = {MarketStatus.NORMAL_CLOSE, MarketStatus.CLOSING_START, MarketStatus.CLOSING_END}


class TradingEngine(EventOwner):
    """See the module docstring. `indicators` is keyed by symbol; `session` (the day's
    `engine.calendar.TradingSession`, or anything with `open`/`close`) defaults to the NSE
    calendar's session of `trading_day`. `concurrent`: see `engine.trading.owner`. `watch_only`:
    instrument keys whose positions are marked and guarded but which are never entered (held, but
    outside today's universe)."""

    def __init__(self, settings: Settings, clock: Clock, instruments: list[Instrument],
                 indicators: dict[str, InstrumentIndicators], strategy: Strategy, order_manager: OrderManagerLike,
                 db: Engine, trading_day: date, broker: Broker | None = None, *, session: SessionLike | None = None,
                 exits_at_broker: bool | None = None, poll_seconds: float = 1.0, concurrent: bool = False,
                 watch_only: frozenset[str] = frozenset()) -> None:
        super().__init__(concurrent=concurrent)
        self.watch_only = watch_only
        self.settings, self.clock, self.db, self.trading_day = settings, clock, db, trading_day
        self.instruments = {i.instrument_key: i for i in instruments}
        self.indicators = indicators
        self.strategy = GuardedStrategy(strategy)
        self.orders = order_manager
        self.broker = broker
        self.session = session if session is not None else default_session(settings, trading_day)
        self.window = EntryWindow(settings.entry_windows)
        self.poll_seconds = poll_seconds
        charges = ChargeCalculator.from_settings(settings, trading_day=trading_day)  # venue, product, date
        self.positions = PositionBook(db, charges, self.instruments)
        self.setups = SetupStore(db, trading_day)
        self.risk = RiskController(settings, clock, db, trading_day, charges, self.positions, self.setups)
        self.entries = Entries(settings, clock, trading_day, self.instruments, self.strategy, order_manager,
                               self.positions, self.risk, self.setups, charges, self.issue)
        at_broker = exits_at_broker if exits_at_broker is not None else (broker is None or broker.capabilities.gtt)
        self.guard = PositionGuard(settings, clock, db, trading_day, self.strategy, order_manager, self.positions,
                                   self.risk, self.issue, exits_at_broker=at_broker, poll_seconds=poll_seconds)
        self.market_status: MarketStatus | None = None
        self._started = False
        self._last_poll: datetime | None = None

    # ---- views -----------------------------------------------------------------------------------
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
        return self.window.is_open(self.clock.now(), self.session)

    def day_pnl(self) -> float:
        return self.risk.day_pnl()

    # ---- inputs ----------------------------------------------------------------------------------
    def post(self, event: Event) -> None:
        if not self._started:
            self._started = True
            super().post(ev.Resume())
        super().post(event)

    async def resume(self) -> None:
        """Rebuild the day's state from the database (safe on a fresh database)."""
        self._started = True
        self.post(ev.Resume())
        await self.drain()

    async def on_ticks(self, ticks: list[Tick]) -> None:
        """Fold a batch of ticks in: broker (paper fills), indicators, exits, candidates."""
        self.post(ev.TicksArrived(ticks))
        await self._settle()

    async def on_market_status(self, status: MarketStatus, **_: Any) -> None:
        """Segment status from the feed: after the close no candidate is refreshed."""
        self.post(ev.MarketStatusChanged(status))
        await self._settle()

    async def execute_entry_window(self) -> list[EntryDecision]:
        """Inside an entry window: decide among the candidates and submit the approved entries
        (see `Entries.decide_and_submit`). Outside a window it does nothing and returns []."""
        reply: asyncio.Future[list[EntryDecision]] = asyncio.get_running_loop().create_future()
        self.post(ev.EntryWindowDue(reply))
        await self._settle()
        return await reply

    async def reconcile(self) -> ReconcileReport:
        """The order manager's reconciliation (database vs broker), then the engine's view in line:
        settled exits close their positions, positions closed at the broker leave the book."""
        reply: asyncio.Future[ReconcileReport] = asyncio.get_running_loop().create_future()
        self.post(ev.ReconcileDue(reply))
        await self.drain()
        return await reply

    async def end_of_day(self) -> DaySummary:
        """Settle what can be settled, expire unexecuted candidates, close the indicators' day and
        summarise. Open positions stay open (delivery), protected by their GTTs."""
        self.post(ev.OrdersDue(force=True))
        await self.drain()
        reply: asyncio.Future[DaySummary] = asyncio.get_running_loop().create_future()
        self.post(ev.DayEnding(reply))
        await self.drain()
        return await reply

    # ---- routing ---------------------------------------------------------------------------------
    async def _handle(self, event: Event) -> None:
        match event:
            case ev.TicksArrived(ticks=ticks):
                await self._on_ticks(ticks)
            case ev.EntryAnswered():
                opened = self.entries.on_answer(event)
                if opened is not None:
                    await self.guard.protect(*opened)
            case ev.ExitPlaced():
                self.guard.on_exit_placed(event)
            case ev.ExitCancelled():
                await self.guard.on_exit_cancelled(event)
            case ev.ExitOrderAnswered():
                self.guard.on_exit_order(event)
            case ev.ExitsSynced():
                self.guard.on_synced(event)
            case ev.OrdersDue(force=force):
                await self._orders_due(force=force)
            case ev.EntryWindowDue(reply=reply):
                await self._window_due(reply)
            case ev.FundsAnswered():
                await self.entries.on_funds(event)
            case ev.MarketStatusChanged(status=status):
                self.market_status = status
                if status in _CLOSED_MARKET:
                    self.entries.candidates.clear()
            case ev.ReconcileDue(reply=reply):
                await self.guard.reconcile(reply)
            case ev.Reconciled():
                self.guard.on_reconciled(event)
            case ev.DayEnding(reply=reply):
                self.entries.end_day(self.indicators)
                reply.set_result(summarize_day(self.trading_day, setups=self.setups.count(), ledger=self.ledger,
                                               trades=self.positions.trades_of(self.trading_day),
                                               open_positions=len(self.positions.open),
                                               strategy_errors=self.strategy_errors))
            case ev.Resume():
                await self._resume()

    def _broker_failed(self, error: BrokerError) -> None:
        if isinstance(error, TokenExpired):
            self.risk.halt_entries(f"broker token expired: {error}")

    async def _resume(self) -> None:
        self.positions.load()
        setups, entries = self.setups.todays_setups_and_entries()
        self.risk.load_earlier_days()
        self.entries.restore(setups, entries, self.positions.entry_order_ids())
        await self._orders_due(force=True)  # positions found without a GTT are protected on their first tick
        self.risk.recompute()
        self.strategy.on_start(trading_day=self.trading_day, clock=self.clock)
        log.info("engine resumed %s: %d open positions, %d pending entries, risk used %.2f of %.2f%s",
                 self.trading_day, len(self.positions.open), len(self.entries.pending), self.ledger.risk_used,
                 self.ledger.daily_risk_cap, f", KILL SWITCH ({self.kill_reason})" if self.kill_switch else "")

    async def _on_ticks(self, ticks: list[Tick]) -> None:
        looking = (self.risk.entries_allowed and self.market_status not in _CLOSED_MARKET
                   and self.window.next_open(self.clock.now(), self.session) is not None)
        for tick in ticks:
            instrument = self.instruments.get(tick.instrument_key)
            if instrument is None:
                continue
            if self.broker is not None:
                await self.broker.on_tick(tick)  # a simulated venue's price feed, not a request
            indicators = self.indicators.get(instrument.symbol)
            if indicators is None or not indicators.on_tick(tick):
                continue
            position = self.positions.open.get(tick.instrument_key)
            if position is not None:
                await self.guard.watch(position, tick, indicators)
            elif looking and tick.instrument_key not in self.entries.entered_today \
                    and tick.instrument_key not in self.watch_only:  # one entry per day, in the universe only
                self.entries.refresh_candidate(instrument, tick, indicators.snapshot())
        await self._orders_due()
        await self._check_kill_switch()

    async def _orders_due(self, *, force: bool = False) -> None:
        """The timer of working orders (every `poll_seconds`) and of the GTT sync."""
        now = self.clock.now()
        due = force or self._last_poll is None or (now - self._last_poll).total_seconds() >= self.poll_seconds
        if due and (self.entries.pending or self.positions.exiting()):
            self._last_poll = now
            await self.entries.poll(self.window_open())
            await self.guard.poll()
        await self.guard.sync(force=force)

    async def _window_due(self, reply: asyncio.Future[list[EntryDecision]]) -> None:
        if not self.window_open():
            log.info("entry window %s is not open at %s", self.window, self.clock.now())
            reply.set_result([])
            return
        await self._check_kill_switch()  # a loss settled since the last tick halts entries before any is sent
        await self.entries.ask_funds(self.broker, reply)

    async def _check_kill_switch(self) -> None:
        if not self.risk.trip_on_loss():
            return
        self.entries.candidates.clear()
        self.entries.expire_others(f"kill switch on: {self.kill_reason}", status="SKIPPED")  # as plan_entries says
        if self.settings.risk.flatten_on_kill:
            for position in list(self.positions.open.values()):
                if position.exit_client_order_id is None:
                    await self.guard.exit_now(position, "kill switch")
