"""The trading engine: the ONE decision path of live, replayed and backtested runs, as a router of
events to the parts that own the trading state.

    ticks ──▶ indicators ──▶ guard (open positions: protection, exits, GTT sync)
                         └─▶ entries (candidates) ─ entry window ─▶ risk (budget) ─▶ entry orders
    broker answers ──▶ entries (fills open positions) / guard (exits close them, with P&L)

Inputs and broker answers go through one queue, handled by one owner (`engine.trading.owner`).
Nothing here reads the wall clock or imports Prefect: the caller injects the clock, the order
manager (exactly-once orders and exits) and the broker, which a simulated venue takes the ticks'
prices through (`Broker.tick_feed`, once per batch).
Restart safety: the first event is always `Resume`, which rebuilds the open positions, pending
entries and unprotected positions from the database; the daily risk budget and kill switch live in
the `risk_ledger` table."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from engine.brokers.base import Broker, BrokerError
from engine.clock import Clock
from engine.execution.reconcile import ReconcileReport
from engine.indicators.multitimeframe import InstrumentIndicators
from engine.models import Instrument, MarketStatus, Tick
from engine.risk.limits import EntryDecision
from engine.settings import Settings
from engine.storage.memory import Database
from engine.strategy.base import Strategy
from engine.strategy.window import SessionLike
from engine.trading import events as ev
from engine.trading.day_parts import build_day_parts
from engine.trading.entries import REFRESH_MS
from engine.trading.events import Event, OrderManagerLike
from engine.trading.owner import EventOwner
from engine.trading.summary import DaySummary
from engine.trading.views import EngineViews

log = logging.getLogger(__name__)


class TradingEngine(EventOwner, EngineViews):
    """See the module docstring. `indicators` is keyed by symbol; `session` (the day's
    `engine.calendar.TradingSession`, or anything with `open`/`close`) defaults to the NSE
    calendar's session of `trading_day`. `concurrent`: see `engine.trading.owner`. `watch_only`:
    instrument keys whose positions are marked and guarded but which are never entered (held, but
    outside today's universe). `refresh_ms`: how often an instrument's setup is looked for (see
    `engine.trading.entries`; None: only at the entry window, as a daily-bar backtest asks)."""

    def __init__(self, settings: Settings, clock: Clock, instruments: list[Instrument],
                 indicators: dict[str, InstrumentIndicators], strategy: Strategy, order_manager: OrderManagerLike,
                 db: Database, trading_day: date, broker: Broker | None = None, *, session: SessionLike | None = None,
                 exits_at_broker: bool | None = None, poll_seconds: float = 1.0, concurrent: bool = False,
                 watch_only: frozenset[str] = frozenset(), refresh_ms: int | None = REFRESH_MS) -> None:
        super().__init__(concurrent=concurrent, opening=ev.Resume())
        self.watch_only = watch_only
        self.settings, self.clock, self.db = settings, clock, db
        self.instruments = {i.instrument_key: i for i in instruments}
        self.indicators = indicators
        self.broker, self.poll_seconds = broker, poll_seconds
        self._strategy, self._exits_at_broker, self._refresh_ms = strategy, exits_at_broker, refresh_ms
        self._begin_day(trading_day, order_manager, session)

    def _begin_day(self, trading_day: date, order_manager: OrderManagerLike, session: SessionLike | None) -> None:
        self.day = build_day_parts(self.settings, self.clock, self.db, self.instruments, self._strategy, order_manager,
                                   trading_day, session, self.issue, broker=self.broker,
                                   exits_at_broker=self._exits_at_broker, poll_seconds=self.poll_seconds,
                                   refresh_ms=self._refresh_ms)
        self._last_poll: datetime | None = None

    # ---- inputs ----------------------------------------------------------------------------------
    async def resume(self) -> None:
        """Rebuild the day's state from the database (safe on a fresh database)."""
        await self.open()

    async def start_day(self, trading_day: date, order_manager: OrderManagerLike, *,
                        session: SessionLike | None = None) -> None:
        """Roll over to a later day (a backtest runs one engine through its days; a live session builds one a
        day): the day's parts start as a new engine's, then resume. Indicators, the venue and what the last GTT
        sync found carry over, so the day's first sync asks a simulated venue only if an exit changed there."""
        await self.drain()
        previous = self.guard
        self._begin_day(trading_day, order_manager, session)
        self.guard.carry_sync(previous)
        await self.open()

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
        return await self._request(ev.EntryWindowDue, drain=False)

    async def reconcile(self) -> ReconcileReport:
        """The order manager's reconciliation (database vs broker), then the engine's view in line: settled
        exits close their positions, what was sold outside autotrader is booked (`PositionGuard.on_reconciled`)."""
        return await self._request(ev.ReconcileDue)

    async def end_of_day(self) -> DaySummary:
        """Settle what can be settled, expire unexecuted candidates, close the indicators' day and
        summarise. Open positions stay open (delivery), protected by their GTTs."""
        self.post(ev.OrdersDue(force=True))
        await self.drain()
        return await self._request(ev.DayEnding)

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
                if self.entries.window_open():  # a loss settled since the last tick halts entries before any is sent
                    await self._check_kill_switch()
                await self.entries.window_due(self.broker, reply)
            case ev.FundsAnswered():
                await self.entries.on_funds(event)
            case ev.MarketStatusChanged(status=status):
                self.entries.on_market_status(status)
            case ev.ReconcileDue(reply=reply):
                await self.guard.reconcile(reply)
            case ev.Reconciled():
                self.guard.on_reconciled(event)
            case ev.DayEnding(reply=reply):
                self.entries.end_day(self.indicators)
                reply.set_result(self.day_summary())
            case ev.Resume():
                await self._resume()

    def _broker_failed(self, error: BrokerError) -> None:
        self.risk.on_broker_error(error)

    async def _resume(self) -> None:
        self.positions.load()
        self.risk.load_earlier_days()
        self.entries.resume()
        await self._orders_due(force=True)  # positions found without a GTT are protected on their first tick
        self.risk.recompute()
        self.strategy.on_start(trading_day=self.trading_day, clock=self.clock)
        if log.isEnabledFor(logging.INFO):  # a backtest resumes every day
            log.info("engine resumed %s", self.state_line())

    async def _on_ticks(self, ticks: list[Tick]) -> None:
        now = self.clock.now()
        looking = self.entries.looking(now)
        instruments, indicators_of, broker = self.instruments, self.indicators, self.broker
        entries, open_positions, entered, watch_only = (self.entries, self.positions.open, self.entries.entered_today,
                                                        self.watch_only)
        feed = broker.tick_feed() if broker is not None else None  # a simulated venue's prices, not requests
        for tick in ticks:
            key = tick.instrument_key
            instrument = instruments.get(key)
            if instrument is None:
                continue
            if feed is not None:
                feed(tick)
            elif broker is not None:
                await broker.on_tick(tick)
            indicators = indicators_of.get(instrument.symbol)
            if indicators is None:
                continue
            position = open_positions.get(key)
            if position is None and looking and key not in entered and key not in watch_only:  # one entry a day
                if indicators.update_tick(tick.ltp, tick.volume, tick.ltt_ms):
                    entries.on_tick(instrument, tick, indicators)
                continue
            entries.settle(key)  # a tick it remembered is evaluated before the indicators move on
            if indicators.update_tick(tick.ltp, tick.volume, tick.ltt_ms) and position is not None:
                await self.guard.watch(position, tick, indicators)
        self.setups.flush_due(now)
        await self._orders_due()
        await self._check_kill_switch()

    async def _orders_due(self, *, force: bool = False) -> None:
        """The timer of working orders (every `poll_seconds`) and of the GTT sync."""
        now = self.clock.now()
        due = force or self._last_poll is None or (now - self._last_poll).total_seconds() >= self.poll_seconds
        if due and (self.entries.pending or self.positions.exiting()):
            self._last_poll = now
            await self.entries.poll(self.entries.window_open())
            await self.guard.poll()
        await self.guard.sync(force=force)

    async def _check_kill_switch(self) -> None:
        if self.risk.trip_on_loss():
            self.entries.halt(f"kill switch on: {self.kill_reason}")
            await self.guard.on_kill_switch()
