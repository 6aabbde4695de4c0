"""The trading engine: the ONE decision path of live, replayed and backtested runs.

    ticks ──▶ indicators ──▶ exit monitor (open positions) ──▶ strategy ──▶ candidates
                                                            (stop/target policy, validator)
    entry window ──▶ risk (plan_entries: score order, budget, funds, limits) ──▶ OrderManager
    fills ──▶ positions (DB) ──▶ GTT OCO exit at the broker ──▶ trades with P&L after charges

Nothing here reads the wall clock or imports Prefect: the caller injects the clock, the order
manager (exactly-once orders and exits) and, for the paper broker, the broker that wants ticks.
Restart safety: entry order ids are deterministic per (day, instrument), every instrument with an
entry order in today's journal or an open position is skipped, and the daily risk budget and kill
switch live in the `risk_ledger` table; `resume()` (run automatically on first use) rebuilds the
open positions, pending entries and unprotected positions from the database."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, time
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from engine.brokers.base import Broker, BrokerError, OrderRejected, TokenExpired
from engine.clock import Clock
from engine.execution.exits import exit_request_for
from engine.execution.ids import make_client_order_id, triggered_order_id
from engine.execution.journal import gtt_to_exit
from engine.execution.reconcile import ReconcileReport
from engine.indicators.multitimeframe import IndicatorConfig, InstrumentIndicators
from engine.indicators.snapshot import IndicatorSnapshot
from engine.models import (
    IST,
    Bar,
    ExitOrder,
    ExitRequest,
    ExitStatus,
    Instrument,
    MarketStatus,
    Order,
    OrderIntent,
    OrderPurpose,
    OrderStatus,
    OrderType,
    Product,
    Setup,
    Side,
    Tick,
    Trade,
)
from engine.portfolio.charges import ChargeCalculator
from engine.portfolio.positions import OpenPosition, PositionBook, exit_trigger
from engine.portfolio.times import to_db
from engine.risk.ledger import RiskLedger, entry_initial_risk
from engine.risk.limits import Candidate, EntryDecision, RiskBudget, plan_entries
from engine.risk.stops import StopPolicy
from engine.settings import Settings
from engine.storage import session_scope
from engine.storage.tables import GttRow, OrderRow, PositionRow, SetupRow, TradeRow
from engine.strategy.base import GuardedStrategy, Strategy
from engine.strategy.validator import RuleContext, validator_from_settings
from engine.strategy.window import EntryWindow, SessionLike, normal_session

log = logging.getLogger(__name__)

_CLOSED_MARKET = {MarketStatus.NORMAL_CLOSE, MarketStatus.CLOSING_START, MarketStatus.CLOSING_END}


class OrderManagerLike(Protocol):
    """The part of `engine.execution.manager.OrderManager` the engine uses."""

    async def submit(self, intent: OrderIntent, *, setup_id: int | None = None) -> Order: ...
    async def refresh(self, client_order_id: str) -> Order: ...
    async def cancel(self, client_order_id: str) -> Order: ...
    async def place_exit(self, request: ExitRequest, *, position_id: int | None = None) -> ExitOrder: ...
    async def cancel_exit(self, exit_id: str) -> None: ...
    async def sync_exits(self) -> list[ExitOrder]: ...
    async def reconcile(self) -> ReconcileReport: ...


@dataclass(slots=True)
class PendingEntry:
    client_order_id: str
    instrument: Instrument
    quantity: int
    limit_price: float  # the most the entry can pay (reserved from the funds until it fills)
    stop: float
    target: float
    setup_id: int | None


@dataclass(slots=True)
class DaySummary:
    trading_day: date
    setups: int
    entries: int
    exits: int
    open_positions: int
    gross_pnl: float
    net_pnl: float
    capital: float
    daily_risk_cap: float
    risk_used: float
    kill_switch: bool
    kill_reason: str
    strategy_errors: int
    trades: list[Trade] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["trading_day"] = self.trading_day.isoformat()
        data["trades"] = [
            {**asdict(t), "side": t.side.value, "entry_time": t.entry_time.isoformat(),
             "exit_time": t.exit_time.isoformat()}
            for t in self.trades
        ]
        return data


def _rules_json(setup: Setup) -> str:
    return json.dumps([{"name": r.name, "passed": r.passed, "observed": r.observed} for r in setup.rules])


class TradingEngine:
    """See the module docstring. `indicators` is keyed by symbol; `session` (the day's
    `engine.calendar.TradingSession`, or anything with `open`/`close`) defaults to the NSE
    calendar's session of `trading_day`, or 09:15–15:30 when the calendar does not cover it."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        instruments: list[Instrument],
        indicators: dict[str, InstrumentIndicators],
        strategy: Strategy,
        order_manager: OrderManagerLike,
        db: Engine,
        trading_day: date,
        broker: Broker | None = None,
        *,
        session: SessionLike | None = None,
        exits_at_broker: bool | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.instruments = {i.instrument_key: i for i in instruments}
        self.indicators = indicators
        self.strategy = GuardedStrategy(strategy)
        self.orders = order_manager
        self.db = db
        self.trading_day = trading_day
        self.broker = broker
        self.session = session if session is not None else _default_session(settings, trading_day)
        self.exits_at_broker = exits_at_broker if exits_at_broker is not None else (
            broker.capabilities.gtt if broker is not None else True
        )
        self.poll_seconds = poll_seconds
        self.window = EntryWindow(settings.entry_windows)
        self.stops = StopPolicy(settings.risk)
        self.validator = validator_from_settings(settings.strategy.validator)
        self.charges = ChargeCalculator(settings.charges)
        self.positions = PositionBook(db, self.charges, self.instruments)
        self.ledger = RiskLedger(db, clock, trading_day, settings)
        # instrument_key -> the latest setup with what it was found on; validated when recorded and
        # when the entry window runs, not on every tick
        self.candidates: dict[str, RuleContext] = {}
        self.setup_ids: dict[str, int] = {}  # instrument_key -> today's setups row
        self.pending: dict[str, PendingEntry] = {}  # client_order_id -> entry awaiting its fill
        self.entered_today: set[str] = set()  # instrument keys with an entry order today
        self.market_status: MarketStatus | None = None
        self.entries_halted_reason = ""
        self._started = False
        self._last_poll: datetime | None = None
        self._last_sync: datetime | None = None
        self._sync_wanted = False
        self._reference_set: set[str] = set()
        self._protection_tried: set[int] = set()  # position ids
        self._realized_before_today = 0.0  # net P&L of earlier days' trades: the funds carry it
        self.broker_errors = 0

    # ---- state ---------------------------------------------------------------------------------
    @property
    def kill_switch(self) -> bool:
        return self.ledger.kill_switch

    @property
    def kill_reason(self) -> str:
        return self.ledger.kill_reason

    @property
    def strategy_errors(self) -> int:
        return self.strategy.errors.total

    def held(self) -> frozenset[str]:
        """Instruments that may not be entered: open position, pending entry, or entered today."""
        pending = {p.instrument.instrument_key for p in self.pending.values()}
        return frozenset(self.positions.open.keys() | pending | self.entered_today)

    def _entry_id(self, instrument: Instrument) -> str:
        return make_client_order_id(self.trading_day, instrument.instrument_key, OrderPurpose.ENTRY)

    def _exit_id(self, position: OpenPosition, kind: str) -> str:
        return make_client_order_id(self.trading_day, f"{position.id}|{kind}", OrderPurpose.EXIT)

    # ---- start / restart -----------------------------------------------------------------------
    async def _ensure_started(self) -> None:
        if not self._started:
            await self.resume()

    async def resume(self) -> None:
        """Rebuild the day's state from the database (safe to call on a fresh database): open
        positions, today's entry orders (pending ones are followed, filled ones without a position
        get one), the setups rows, and a GTT for any open position that has none."""
        self._started = True
        self.positions.load()
        with session_scope(self.db) as session:
            setups, entries = self._todays_setups_and_entries(session)
            with_positions = set(session.exec(select(PositionRow.entry_client_order_id)).all())
            self._realized_before_today = sum(
                session.exec(select(TradeRow.net_pnl).where(TradeRow.trading_day < self.trading_day)).all()
            )
        by_order = {s.client_order_id: s for s in setups if s.client_order_id}
        for row in setups:
            assert row.id is not None
            self.setup_ids[row.instrument_key] = row.id
        for order_row in entries:
            self.entered_today.add(order_row.instrument_key)
            instrument = self.instruments.get(order_row.instrument_key)
            setup = by_order.get(order_row.client_order_id)
            if instrument is None or setup is None or order_row.client_order_id in with_positions:
                continue
            self.pending[order_row.client_order_id] = PendingEntry(
                order_row.client_order_id, instrument, order_row.quantity, order_row.price or setup.entry,
                setup.stop, setup.target, setup.id,
            )
        if self.pending:
            await self._safely("order poll", self._poll_orders(force=True))
        await self._safely("exit sync", self._sync_exits(force=True))
        self._recompute_ledger()
        # positions found without a GTT are protected on their first tick (at a current price)
        self.strategy.on_start(trading_day=self.trading_day, clock=self.clock)
        log.info(
            "engine resumed %s: %d open positions, %d pending entries, risk used %.2f of %.2f%s",
            self.trading_day, len(self.positions.open), len(self.pending), self.ledger.risk_used,
            self.ledger.daily_risk_cap, f", KILL SWITCH ({self.kill_reason})" if self.kill_switch else "",
        )

    def _todays_setups_and_entries(self, session: Session) -> tuple[Sequence[SetupRow], Sequence[OrderRow]]:
        setups = session.exec(select(SetupRow).where(SetupRow.trading_day == self.trading_day)).all()
        entries = session.exec(
            select(OrderRow).where(OrderRow.trading_day == self.trading_day, OrderRow.purpose == "ENTRY")
        ).all()
        return setups, entries

    def _recompute_ledger(self) -> None:
        """The single source of truth of the day's risk, from the order journal: risk used = Σ over
        today's entry orders of `entry_initial_risk` (filled quantity × (average fill − stop), plus
        the unfilled rest × (LIMIT − stop) while the order still works); realised P&L = Σ net P&L of
        today's trades."""
        with session_scope(self.db) as session:
            setup_rows, entries = self._todays_setups_and_entries(session)
            realized = sum(session.exec(select(TradeRow.net_pnl).where(TradeRow.trading_day == self.trading_day)).all())
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

    # ---- hot path ------------------------------------------------------------------------------
    async def on_ticks(self, ticks: list[Tick]) -> None:
        """Fold a batch of ticks in: broker (paper fills), indicators, exits, candidates."""
        await self._ensure_started()
        looking = self._looking_for_entries()
        for tick in ticks:
            instrument = self.instruments.get(tick.instrument_key)
            if instrument is None:
                continue
            if self.broker is not None:
                await self.broker.on_tick(tick)
            indicators = self.indicators.get(instrument.symbol)
            if indicators is None or not indicators.on_tick(tick):
                continue
            key = tick.instrument_key
            position = self.positions.open.get(key)
            if position is not None:
                await self._safely("exit check", self._watch_position(position, tick, indicators))
            elif looking and key not in self.entered_today:  # one entry per instrument and day
                self._refresh_candidate(instrument, tick, indicators.snapshot())
        await self._safely("order poll", self._poll_orders())
        await self._safely("exit sync", self._sync_exits())
        await self._safely("kill switch", self._check_kill_switch())

    async def _safely(self, what: str, call: Awaitable[None]) -> None:
        """Broker trouble (after the order manager's own retries) is logged and counted, and the
        step is retried on a later tick: it never ends the session."""
        try:
            await call
        except BrokerError as error:
            self.broker_errors += 1
            log.error("%s failed (%s: %s); retried on a later tick", what, type(error).__name__, error)
            if isinstance(error, TokenExpired):
                self.entries_halted_reason = f"broker token expired: {error}"

    def _looking_for_entries(self) -> bool:
        if self.kill_switch or self.entries_halted_reason or self.market_status in _CLOSED_MARKET:
            return False
        return self.window.next_open(self.clock.now(), self.session) is not None

    def _refresh_candidate(self, instrument: Instrument, tick: Tick, snapshot: IndicatorSnapshot) -> None:
        key = instrument.instrument_key
        setup = self.strategy.on_tick(instrument, tick, snapshot) if self.strategy.is_warmed_up(snapshot) else None
        if setup is None or self.stops.apply(setup, instrument, snapshot) is not None:
            self.candidates.pop(key, None)
            return
        context = RuleContext(setup, instrument, tick, snapshot)
        self.candidates[key] = context
        if key not in self.setup_ids:
            self.validator.validate(context)
            self.setup_ids[key] = self._save_setup(setup, status="CANDIDATE")

    def _validated(self, context: RuleContext) -> Candidate:
        """The candidate with the validator's rules recorded on its setup."""
        self.validator.validate(context)
        return Candidate(context.setup, context.instrument, context.snapshot.daily.get(self.stops.atr_indicator))

    def _save_setup(self, setup: Setup, *, status: str, reason: str = "", quantity: int = 0,
                    client_order_id: str | None = None, setup_id: int | None = None) -> int:
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

    # ---- exits ---------------------------------------------------------------------------------
    async def _watch_position(self, position: OpenPosition, tick: Tick, indicators: InstrumentIndicators) -> None:
        if position.key not in self._reference_set:
            self._reference_set.add(position.key)
            if position.opened_at.astimezone(IST).date() < self.trading_day and tick.close_prev > 0:
                position.reference_price = tick.close_prev
        position.last_price = tick.ltp
        if position.exit_client_order_id is not None:
            return
        if position.exit_id is None and position.id not in self._protection_tried:
            await self._protect(position, tick.ltp)
            if position.exit_client_order_id is not None or position.key not in self.positions.open:
                return
        if self.strategy.has_exit_hook:
            reason = self.strategy.on_exit(position.as_position(), tick, indicators.snapshot())
            if reason:
                await self._exit_now(position, f"strategy: {reason}")
                return
        trigger = exit_trigger(position, tick.ltp)
        if trigger is None:
            return
        if position.exit_id is not None:
            self._sync_wanted = True  # the broker's GTT exits; reconcile instead of selling twice
        else:
            await self._exit_now(position, trigger)

    async def _exit_now(self, position: OpenPosition, reason: str) -> None:
        """Sell the whole position at market ourselves (cancelling its GTT first)."""
        if position.exit_id is not None:
            try:
                await self.orders.cancel_exit(position.exit_id)
            except OrderRejected:
                self._sync_wanted = True  # it fired meanwhile: the sync closes the position
                return
            self.positions.set_exit(position, None)
        position.exit_attempts += 1  # a refused exit is retried under a new id
        client_order_id = self._exit_id(position, f"exit{position.exit_attempts}")
        position.exit_client_order_id = client_order_id
        position.exit_reason = reason
        intent = OrderIntent(client_order_id, position.instrument, Side.SELL, position.quantity,
                             product=Product(self.settings.execution.product), purpose=OrderPurpose.EXIT)
        try:
            order = await self.orders.submit(intent)
        except BrokerError:
            position.exit_client_order_id = None
            raise
        await self._settle_exit_order(position, order)

    async def _settle_exit_order(self, position: OpenPosition, order: Order) -> None:
        if order.status is OrderStatus.FILLED:
            self._close(position, order.average_price, reason=position.exit_reason)
        elif order.status.is_terminal:  # rejected / cancelled: still open, try again on a later tick
            log.warning("exit of %s failed (%s): %s", position.instrument.symbol, order.status, order.message)
            position.exit_client_order_id = None

    def _close(self, position: OpenPosition, price: float, *, reason: str) -> None:
        trade = self.positions.close(position, price, self.clock.now(), reason, self.trading_day)
        self._recompute_ledger()
        log.info("closed %s x%d at %.2f (%s): net %.2f", trade.symbol, trade.quantity, price, reason, trade.net_pnl)

    async def _sync_exits(self, *, force: bool = False) -> None:
        now = self.clock.now()
        due = self._last_sync is None or (now - self._last_sync).total_seconds() >= (
            self.poll_seconds if self._sync_wanted else self.settings.execution.reconcile_interval_seconds
        )
        if not (force or due) or not any(p.exit_id for p in self.positions.open.values()):
            return
        self._last_sync = now
        self._sync_wanted = False
        settled = {e.exit_id: e for e in await self.orders.sync_exits()}
        settled.update(self._settled_in_db(settled))
        self._apply_settled_exits(settled)

    def _apply_settled_exits(self, settled: dict[str, ExitOrder]) -> None:
        """Close the positions whose GTT filled; those whose GTT ended otherwise are unprotected."""
        for position in list(self.positions.open.values()):
            exit_order = settled.get(position.exit_id or "")
            if exit_order is None:
                continue
            if exit_order.status in (ExitStatus.TRIGGERED_STOP, ExitStatus.TRIGGERED_TARGET) and exit_order.exit_price:
                kind = "stop" if exit_order.status is ExitStatus.TRIGGERED_STOP else "target"
                self._close(position, exit_order.exit_price, reason=f"{kind} (GTT)")
            else:  # cancelled at the broker, or fired without a fill: we watch it ourselves now
                log.warning("exit %s of %s is %s: position unprotected, the engine exits it",
                            exit_order.exit_id, position.instrument.symbol, exit_order.status)
                self.positions.set_exit(position, None)

    def _settled_in_db(self, already: dict[str, ExitOrder]) -> dict[str, ExitOrder]:
        """Exits of open positions that settled before a restart (the gtts table knows)."""
        wanted = [p.exit_id for p in self.positions.open.values() if p.exit_id and p.exit_id not in already]
        if not wanted:
            return {}
        settled: dict[str, ExitOrder] = {}
        with session_scope(self.db) as session:
            rows = session.exec(select(GttRow).where(col(GttRow.exit_id).in_(wanted))).all()
            for row in rows:
                if row.status == ExitStatus.ACTIVE.value:
                    continue
                leg = session.get(OrderRow, triggered_order_id(row.exit_id))
                exit_price = leg.average_price if leg is not None and leg.filled_quantity else None
                settled[row.exit_id] = replace(gtt_to_exit(row), exit_price=exit_price)
        return settled

    async def _protect(self, position: OpenPosition, last_price: float) -> None:
        """Place the GTT OCO exit of a new position (or of one found unprotected on restart); tried
        once per position, after that the engine watches stop and target itself."""
        self._protection_tried.add(position.id)
        if not self.exits_at_broker:
            return
        if not position.stop < last_price < position.target:
            trigger = exit_trigger(position, last_price) or "stop"
            await self._exit_now(position, f"{trigger} (price {last_price:.2f} already beyond it at entry)")
            return
        request = exit_request_for(
            position.instrument, position.quantity, stop=position.stop, target=position.target,
            last_price=last_price, tag=self._exit_id(position, "gtt"),
            limit_offset_pct=self.settings.execution.gtt_limit_offset_pct,
        )
        try:
            exit_order = await self.orders.place_exit(request, position_id=position.id)
        except (BrokerError, ValueError) as error:
            log.error("GTT for %s refused (%s): the engine watches stop and target itself",
                      position.instrument.symbol, error)
            return
        self.positions.set_exit(position, exit_order.exit_id)

    # ---- entries -------------------------------------------------------------------------------
    async def _budget(self) -> RiskBudget:
        invested = sum(self._buy_cost(p.quantity, p.average_price) for p in self.positions.open.values())
        reserved = sum(self._buy_cost(p.quantity, p.limit_price) for p in self.pending.values())
        realized = self._realized_before_today + self.ledger.realized_pnl
        funds = self.ledger.capital + realized - invested - reserved
        if self.broker is not None:
            at_broker = await self.broker.funds()
            if at_broker is not None:
                funds = min(funds, at_broker)
        return RiskBudget(
            capital=self.ledger.capital,
            daily_risk_cap=self.ledger.daily_risk_cap,
            risk_used=self.ledger.risk_used,
            funds_available=funds,
            open_positions=len(self.positions.open) + len(self.pending),
            held=self.held(),
            kill_switch=self.kill_switch or bool(self.entries_halted_reason),
            kill_reason=self.kill_reason or self.entries_halted_reason,
        )

    def _buy_cost(self, quantity: int, price: float) -> float:
        """What buying costs in cash: the value plus the buy-side charges."""
        return quantity * price + self.charges.order(Side.BUY, quantity, price).total

    def window_open(self) -> bool:
        return self.window.is_open(self.clock.now(), self.session)

    async def execute_entry_window(self) -> list[EntryDecision]:
        """Inside an entry window: choose among the candidates (highest score first, within the
        risk budget, funds and limits), journal every decision on its setup row, and submit the
        approved entries. Outside a window it does nothing and returns []."""
        await self._ensure_started()
        if not self.window_open():
            log.info("entry window %s is not open at %s", self.window, self.clock.now())
            return []
        # a loss settled since the last tick (by `reconcile()`) must halt entries before any is sent
        await self._safely("kill switch", self._check_kill_switch())
        candidates = [self._validated(context) for context in self.candidates.values()]
        decisions = plan_entries(candidates, await self._budget(), self.settings.risk,
                                 self.charges, limit_offset_pct=self.settings.execution.entry_limit_offset_pct)
        for decision in decisions:
            key = decision.setup.instrument_key
            self.candidates.pop(key, None)
            setup_id = self.setup_ids.get(key)
            if not decision.approved:
                self.setup_ids[key] = self._save_setup(decision.setup, status="SKIPPED", reason=decision.reason,
                                                       setup_id=setup_id)
                continue
            await self._safely(f"entry of {decision.setup.symbol}", self._enter(decision, setup_id))
        self._expire_setups(f"conditions no longer held when the entry window ran at {self.clock.now():%H:%M:%S}")
        return decisions

    def _expire_setups(self, reason: str, status: str = "EXPIRED") -> None:
        """Setups rows still CANDIDATE whose instrument is not a candidate now end the day (EXPIRED,
        or SKIPPED when a limit such as the kill switch refused them)."""
        with session_scope(self.db) as session:
            rows = session.exec(
                select(SetupRow).where(SetupRow.trading_day == self.trading_day, SetupRow.status == "CANDIDATE")
            ).all()
            for row in rows:
                if row.instrument_key not in self.candidates:
                    row.status, row.status_reason = status, reason
                    session.add(row)

    async def _enter(self, decision: EntryDecision, setup_id: int | None) -> None:
        setup, instrument = decision.setup, decision.instrument
        client_order_id = self._entry_id(instrument)
        setup_id = self._save_setup(setup, status="EXECUTED", reason=decision.reason, quantity=decision.quantity,
                                    client_order_id=client_order_id, setup_id=setup_id)
        self.setup_ids[setup.instrument_key] = setup_id
        self.entered_today.add(setup.instrument_key)
        self.ledger.add_entry(decision.risk)  # reserved at the LIMIT price before the order leaves
        pending = PendingEntry(client_order_id, instrument, decision.quantity, decision.limit_price, setup.stop,
                               setup.target, setup_id)
        self.pending[client_order_id] = pending
        intent = OrderIntent(client_order_id, instrument, Side.BUY, decision.quantity, OrderType.LIMIT,
                             price=decision.limit_price, product=Product(self.settings.execution.product))
        try:
            order = await self.orders.submit(intent, setup_id=setup_id)
        except TokenExpired as error:
            self.entries_halted_reason = f"broker token expired: {error}"
            try:
                order = await self.orders.refresh(client_order_id)
            except KeyError:  # refused before it was journaled: it was never sent
                order = Order(client_order_id, setup.instrument_key, Side.BUY, decision.quantity, OrderStatus.REJECTED,
                              message=self.entries_halted_reason)
        log.info("entry %s %s x%d (%s): %s", client_order_id, setup.symbol, decision.quantity, decision.reason,
                 order.status)
        await self._on_entry_update(pending, order)

    async def _poll_orders(self, *, force: bool = False) -> None:
        """Follow our working orders (entries, and exits we sent ourselves) to their fills."""
        exiting = [p for p in self.positions.open.values() if p.exit_client_order_id is not None]
        if not self.pending and not exiting:
            return
        now = self.clock.now()
        if not force and self._last_poll is not None and (now - self._last_poll).total_seconds() < self.poll_seconds:
            return
        self._last_poll = now
        window_open = self.window_open()
        for pending in list(self.pending.values()):
            order = await self.orders.refresh(pending.client_order_id)
            if not order.status.is_terminal and not window_open:  # the window is over: no late entries
                log.info("entry %s not filled by the end of the window: cancelling", pending.client_order_id)
                order = await self.orders.cancel(pending.client_order_id)
            await self._on_entry_update(pending, order)
        for position in exiting:
            if position.exit_client_order_id is not None:
                await self._settle_exit_order(position, await self.orders.refresh(position.exit_client_order_id))

    async def _on_entry_update(self, pending: PendingEntry, order: Order) -> None:
        if not order.status.is_terminal:
            return
        del self.pending[pending.client_order_id]
        filled = order.filled_quantity
        self._recompute_ledger()  # the actual initial risk replaces the reservation; the unfilled part is released
        if filled <= 0:
            log.info("entry %s %s: %s", pending.client_order_id, order.status, order.message)
            return
        position = self.positions.open_position(
            pending.instrument, filled, order.average_price, pending.stop, pending.target, self.clock.now(),
            pending.client_order_id,
        )
        await self._protect(position, order.average_price)

    async def reconcile(self) -> ReconcileReport:
        """Run the order manager's reconciliation (database vs broker) and bring the engine's view
        in line: exits that settled are closed as trades, positions it closed (by hand at the
        broker) leave the book. Returns the manager's `ReconcileReport`."""
        await self._ensure_started()
        report = await self.orders.reconcile()
        self._apply_settled_exits({e.exit_id: e for e in report.settled_exits})
        with session_scope(self.db) as session:
            still_open = set(session.exec(select(PositionRow.id).where(PositionRow.status == "OPEN")).all())
        for position in list(self.positions.open.values()):
            if position.id not in still_open:
                log.warning("reconciliation closed %s (no longer held at the broker)", position.instrument.symbol)
                self.positions.open.pop(position.key, None)
        return report

    # ---- kill switch, market status, end of day ------------------------------------------------
    def day_pnl(self) -> float:
        """Realised net P&L of the day plus the open positions' P&L since their reference price."""
        return self.ledger.realized_pnl + sum(p.day_pnl for p in self.positions.open.values())

    async def _check_kill_switch(self) -> None:
        if self.kill_switch:
            return
        limit = self.ledger.capital * self.settings.risk.max_daily_loss_pct / 100
        pnl = self.day_pnl()
        if pnl > -limit:
            return
        self.ledger.trip(f"day P&L {pnl:.2f} reached the max daily loss {limit:.2f}")
        self.candidates.clear()
        self._expire_setups(f"kill switch on: {self.kill_reason}", status="SKIPPED")  # as plan_entries says it
        log.error("KILL SWITCH: %s", self.kill_reason)
        if self.settings.risk.flatten_on_kill:
            for position in list(self.positions.open.values()):
                if position.exit_client_order_id is None:
                    await self._exit_now(position, "kill switch")

    async def on_market_status(self, status: MarketStatus, **_: Any) -> None:
        """Segment status from the feed: after the close no candidate is refreshed."""
        self.market_status = status
        if status in _CLOSED_MARKET:
            self.candidates.clear()

    def _close_bars(self) -> None:
        """Close the day in every instrument's indicators and show each closed daily bar to the
        strategy's `on_bar`. A setup found on a closed bar comes after today's entry windows: it is
        recorded (EXPIRED) for the report, not traded."""
        for instrument in self.instruments.values():
            indicators = self.indicators.get(instrument.symbol)
            if indicators is None:
                continue
            traded_today = indicators.last_day == self.trading_day
            indicators.close_day()
            if not traded_today:
                continue
            snapshot = indicators.snapshot()
            daily = snapshot.daily
            bar = Bar(instrument.symbol, datetime.combine(self.trading_day, time(), IST), daily.open, daily.high,
                      daily.low, daily.close, int(daily.volume))
            setup = self.strategy.on_bar(instrument, bar, snapshot)
            if setup is not None and self.stops.apply(setup, instrument, snapshot) is None:
                self._save_setup(setup, status="EXPIRED", reason="found on the closed daily bar, after the window")

    async def end_of_day(self) -> DaySummary:
        """Settle what can be settled, expire unexecuted candidates, close the indicators' day
        and summarise. Open positions stay open (delivery), protected by their GTTs."""
        await self._ensure_started()
        await self._safely("order poll", self._poll_orders(force=True))
        await self._safely("exit sync", self._sync_exits(force=True))
        self._close_bars()
        self.candidates.clear()
        if self.kill_switch:  # rows a crash left CANDIDATE after the kill: the kill is why they ended
            self._expire_setups(f"kill switch on: {self.kill_reason}", status="SKIPPED")
        self._expire_setups("not executed: no entry window ran after it was found")
        with session_scope(self.db) as session:
            setups = len(session.exec(select(SetupRow.id).where(SetupRow.trading_day == self.trading_day)).all())
        trades = self.positions.trades_of(self.trading_day)
        return DaySummary(
            trading_day=self.trading_day,
            setups=setups,
            entries=self.ledger.row.entries,
            exits=len(trades),
            open_positions=len(self.positions.open),
            gross_pnl=round(sum(t.gross_pnl for t in trades), 2),
            net_pnl=round(sum(t.net_pnl for t in trades), 2),
            capital=self.ledger.capital,
            daily_risk_cap=self.ledger.daily_risk_cap,
            risk_used=round(self.ledger.risk_used, 2),
            kill_switch=self.kill_switch,
            kill_reason=self.kill_reason,
            strategy_errors=self.strategy_errors,
            trades=trades,
        )


def required_indicator_config(
    settings: Settings, strategy: Strategy, base: IndicatorConfig | None = None
) -> IndicatorConfig:
    """`base` (default: `IndicatorConfig()`) plus every period the strategy, the stop policy
    (swing lookback, ATR period) and the validator (average volume) read. Build the indicators
    (and the pre-open metadata) with this so no value the engine needs is missing."""
    base = base or IndicatorConfig()
    wanted: dict[str, set[int]] = {name: set(getattr(base, name)) for name in base.to_dict()}
    wanted["extreme_periods"].add(settings.risk.swing_lookback)
    wanted["atr_periods"].add(settings.risk.atr_period)
    wanted["avg_volume_periods"].add(settings.strategy.validator.volume_period)
    for name, periods in strategy.indicator_periods().items():
        if name not in wanted:
            raise ValueError(f"strategy {strategy.name!r} asks for unknown indicator family {name!r}")
        wanted[name].update(periods)
    return IndicatorConfig(**{name: tuple(sorted(periods)) for name, periods in wanted.items()})


def _default_session(settings: Settings, trading_day: date) -> SessionLike | None:
    from engine.calendar import CalendarRangeError, load_calendar

    try:
        return load_calendar(settings.calendar_file).session(trading_day)
    except (CalendarRangeError, OSError, ValueError) as error:
        log.warning("calendar: %s; assuming a normal session 09:15-15:30", error)
        return normal_session(trading_day)
