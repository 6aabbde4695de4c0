"""Entries: candidates (the strategy's setups on ticks) → decisions (the entry window, within the
risk budget) → submissions (entry orders, followed to their fills). A filled entry opens a position,
which the router hands to the position guard.

Restart safety: entry order ids are deterministic per (day, instrument), and every instrument with
an entry order in today's journal or an open position is skipped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import partial

from engine.brokers.base import Broker, TokenExpired
from engine.clock import Clock
from engine.execution.ids import make_client_order_id
from engine.indicators.multitimeframe import InstrumentIndicators
from engine.indicators.snapshot import IndicatorSnapshot
from engine.models import (
    IST,
    Bar,
    Instrument,
    Order,
    OrderIntent,
    OrderPurpose,
    OrderStatus,
    OrderType,
    Product,
    Side,
    Tick,
)
from engine.portfolio.charges import ChargeCalculator
from engine.portfolio.positions import OpenPosition, PositionBook
from engine.risk.limits import Candidate, EntryDecision, plan_entries
from engine.risk.stops import StopPolicy
from engine.settings import Settings
from engine.storage.tables import OrderRow, SetupRow
from engine.strategy.base import GuardedStrategy
from engine.strategy.validator import RuleContext, validator_from_settings
from engine.trading.events import Command, EntryAnswered, Event, FundsAnswered, Issue, OrderManagerLike
from engine.trading.risk_control import RiskController
from engine.trading.setups import SetupStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PendingEntry:
    client_order_id: str
    instrument: Instrument
    quantity: int
    limit_price: float  # the most the entry can pay (reserved from the funds until it fills)
    stop: float
    target: float
    setup_id: int | None


class Entries:
    def __init__(self, settings: Settings, clock: Clock, trading_day: date, instruments: dict[str, Instrument],
                 strategy: GuardedStrategy, orders: OrderManagerLike, positions: PositionBook, risk: RiskController,
                 setups: SetupStore, charges: ChargeCalculator, issue: Issue) -> None:
        self.settings = settings
        self.clock = clock
        self.trading_day = trading_day
        self.instruments = instruments
        self.strategy = strategy
        self.orders = orders
        self.positions = positions
        self.risk = risk
        self.setups = setups
        self.charges = charges
        self.issue = issue
        self.stops = StopPolicy(settings.risk)
        self.validator = validator_from_settings(settings.strategy.validator)
        # instrument_key -> the latest setup with what it was found on; validated when recorded and
        # when the entry window runs, not on every tick
        self.candidates: dict[str, RuleContext] = {}
        self.setup_ids: dict[str, int] = {}  # instrument_key -> today's setups row
        self.pending: dict[str, PendingEntry] = {}  # client_order_id -> entry awaiting its fill
        self.entered_today: set[str] = set()  # instrument keys with an entry order today
        self._awaiting: set[str] = set()  # client_order_ids with a broker call under way

    def held(self) -> frozenset[str]:
        """Instruments that may not be entered: open position, pending entry, or entered today."""
        pending = {p.instrument.instrument_key for p in self.pending.values()}
        return frozenset(self.positions.open.keys() | pending | self.entered_today)

    def restore(self, setups: Sequence[SetupRow], entries: Sequence[OrderRow], with_positions: set[str]) -> None:
        """Today's setups rows and entry orders after a restart: pending ones are followed again."""
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

    # ---- candidates ------------------------------------------------------------------------------
    def refresh_candidate(self, instrument: Instrument, tick: Tick, snapshot: IndicatorSnapshot) -> None:
        key = instrument.instrument_key
        setup = self.strategy.on_tick(instrument, tick, snapshot) if self.strategy.is_warmed_up(snapshot) else None
        if setup is None or self.stops.apply(setup, instrument, snapshot) is not None:
            self.candidates.pop(key, None)
            return
        context = RuleContext(setup, instrument, tick, snapshot)
        self.candidates[key] = context
        if key not in self.setup_ids:
            self.validator.validate(context)
            self.setup_ids[key] = self.setups.save(setup, status="CANDIDATE")

    def expire_others(self, reason: str, status: str = "EXPIRED") -> None:
        """Setups rows still CANDIDATE whose instrument is not a candidate now end the day."""
        self.setups.expire(reason, keep=self.candidates.keys(), status=status)

    def record_closing_setups(self, indicators: dict[str, InstrumentIndicators]) -> None:
        """Close the day in every instrument's indicators and show each closed daily bar to the
        strategy's `on_bar`. A setup found on a closed bar comes after today's entry windows: it is
        recorded (EXPIRED) for the report, not traded."""
        for instrument in self.instruments.values():
            instrument_indicators = indicators.get(instrument.symbol)
            if instrument_indicators is None:
                continue
            traded_today = instrument_indicators.last_day == self.trading_day
            instrument_indicators.close_day()
            if not traded_today:
                continue
            snapshot = instrument_indicators.snapshot()
            daily = snapshot.daily
            bar = Bar(instrument.symbol, datetime.combine(self.trading_day, time(), IST), daily.open, daily.high,
                      daily.low, daily.close, int(daily.volume))
            setup = self.strategy.on_bar(instrument, bar, snapshot)
            if setup is not None and self.stops.apply(setup, instrument, snapshot) is None:
                self.setups.save(setup, status="EXPIRED", reason="found on the closed daily bar, after the window")

    def end_day(self, indicators: dict[str, InstrumentIndicators]) -> None:
        """After the close: setups on the closed bars recorded, every candidate left ends the day."""
        self.record_closing_setups(indicators)
        self.candidates.clear()
        if self.risk.kill_switch:  # rows a crash left CANDIDATE after the kill: the kill is why they ended
            self.expire_others(f"kill switch on: {self.risk.kill_reason}", status="SKIPPED")
        self.expire_others("not executed: no entry window ran after it was found")

    # ---- decisions and submissions ---------------------------------------------------------------
    async def ask_funds(self, broker: Broker | None, reply: asyncio.Future[list[EntryDecision]]) -> None:
        """The window's first step: the funds the broker reports (an answer `FundsAnswered`)."""
        async def funds() -> FundsAnswered:
            return FundsAnswered(funds=await broker.funds() if broker is not None else None, reply=reply)

        await self.issue(Command("funds", funds, partial(_no_funds, reply)))

    async def on_funds(self, answer: FundsAnswered) -> None:
        """Decide and submit; the window's caller gets the decisions (none when the funds call failed:
        the next call of the window retries)."""
        answer.reply.set_result([] if answer.error is not None else await self.decide_and_submit(answer.funds))

    async def decide_and_submit(self, funds_at_broker: float | None) -> list[EntryDecision]:
        """Choose among the candidates (highest score first, within the risk budget, funds and
        limits), journal every decision on its setup row, and submit the approved entries."""
        candidates = [self._validated(context) for context in self.candidates.values()]
        budget = self.risk.budget(((p.quantity, p.limit_price) for p in self.pending.values()), self.held(),
                                  funds_at_broker, len(self.pending))
        decisions = plan_entries(candidates, budget, self.settings.risk, self.charges,
                                 limit_offset_pct=self.settings.execution.entry_limit_offset_pct)
        for decision in decisions:
            key = decision.setup.instrument_key
            self.candidates.pop(key, None)
            setup_id = self.setup_ids.get(key)
            if decision.approved:
                await self._enter(decision, setup_id)
            else:
                self.setup_ids[key] = self.setups.save(decision.setup, status="SKIPPED", reason=decision.reason,
                                                       setup_id=setup_id)
        self.expire_others(f"conditions no longer held when the entry window ran at {self.clock.now():%H:%M:%S}")
        return decisions

    def _validated(self, context: RuleContext) -> Candidate:
        """The candidate with the validator's rules recorded on its setup."""
        self.validator.validate(context)
        return Candidate(context.setup, context.instrument, context.snapshot.daily.get(self.stops.atr_indicator))

    async def _enter(self, decision: EntryDecision, setup_id: int | None) -> None:
        setup, instrument = decision.setup, decision.instrument
        client_order_id = make_client_order_id(self.trading_day, instrument.instrument_key, OrderPurpose.ENTRY)
        setup_id = self.setups.save(setup, status="EXECUTED", reason=decision.reason, quantity=decision.quantity,
                                    client_order_id=client_order_id, setup_id=setup_id)
        self.setup_ids[setup.instrument_key] = setup_id
        self.entered_today.add(setup.instrument_key)
        self.risk.ledger.add_entry(decision.risk)  # reserved at the LIMIT price before the order leaves
        pending = PendingEntry(client_order_id, instrument, decision.quantity, decision.limit_price, setup.stop,
                               setup.target, setup_id)
        self.pending[client_order_id] = pending
        intent = OrderIntent(client_order_id, instrument, Side.BUY, decision.quantity, OrderType.LIMIT,
                             price=decision.limit_price, product=Product(self.settings.execution.product))
        log.info("entry %s %s x%d (%s): submitting", client_order_id, setup.symbol, decision.quantity, decision.reason)
        await self._command(f"entry of {setup.symbol}", pending, partial(self._submit, pending, intent))

    async def poll(self, window_open: bool) -> None:
        """Follow the pending entries to their fills; once the window is over, cancel what is unfilled."""
        for pending in list(self.pending.values()):
            if pending.client_order_id not in self._awaiting:
                await self._command("order poll", pending, partial(self._refresh, pending, window_open))

    async def _command(self, what: str, pending: PendingEntry, call: Callable[[], Awaitable[Event]]) -> None:
        self._awaiting.add(pending.client_order_id)
        await self.issue(Command(what, call, partial(_failed, pending.client_order_id)))

    # the commands: broker calls only, their results come back as `EntryAnswered`
    async def _submit(self, pending: PendingEntry, intent: OrderIntent) -> EntryAnswered:
        try:
            order = await self.orders.submit(intent, setup_id=pending.setup_id)
        except TokenExpired as error:
            halt = f"broker token expired: {error}"
            order = await self._journaled_or_never_sent(pending, halt)
            return EntryAnswered(client_order_id=pending.client_order_id, order=order, halt_reason=halt)
        return EntryAnswered(client_order_id=pending.client_order_id, order=order)

    async def _refresh(self, pending: PendingEntry, window_open: bool) -> EntryAnswered:
        order = await self._journaled_or_never_sent(pending, "not in the journal: never sent")
        if not order.status.is_terminal and not window_open:  # the window is over: no late entries
            log.info("entry %s not filled by the end of the window: cancelling", pending.client_order_id)
            order = await self.orders.cancel(pending.client_order_id)
        return EntryAnswered(client_order_id=pending.client_order_id, order=order)

    async def _journaled_or_never_sent(self, pending: PendingEntry, message: str) -> Order:
        try:
            return await self.orders.refresh(pending.client_order_id)
        except KeyError:  # refused before it was journaled: it was never sent
            return Order(pending.client_order_id, pending.instrument.instrument_key, Side.BUY, pending.quantity,
                         OrderStatus.REJECTED, message=message)

    def on_answer(self, answer: EntryAnswered) -> tuple[OpenPosition, float] | None:
        """Settle an entry whose order ended (at most once: a late or repeated answer is ignored).
        Returns the position a fill opened, with its fill price, for the guard to protect."""
        self._awaiting.discard(answer.client_order_id)
        if answer.halt_reason:
            self.risk.halt_entries(answer.halt_reason)
        order = answer.order
        if order is None or not order.status.is_terminal:
            return None
        pending = self.pending.pop(answer.client_order_id, None)
        if pending is None:
            return None  # settled already
        self.risk.recompute()  # the actual initial risk replaces the reservation; the unfilled part is released
        log.info("entry %s %s: %s filled %d %s", pending.client_order_id, pending.instrument.symbol, order.status,
                 order.filled_quantity, order.message)
        if order.filled_quantity <= 0 or self.positions.holds(pending.instrument.instrument_key):
            return None
        position = self.positions.open_position(
            pending.instrument, order.filled_quantity, order.average_price, pending.stop, pending.target,
            self.clock.now(), pending.client_order_id,
        )
        return position, order.average_price


def _failed(client_order_id: str, error: Exception) -> EntryAnswered:
    return EntryAnswered(client_order_id=client_order_id, order=None, error=error)


def _no_funds(reply: asyncio.Future[list[EntryDecision]], error: Exception) -> FundsAnswered:
    return FundsAnswered(funds=None, reply=reply, error=error)
