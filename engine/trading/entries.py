"""Entries: candidates (the strategy's setups on ticks) → decisions (the entry window, within the
risk budget) → submissions (entry orders, followed to their fills). A filled entry opens a position,
which the router hands to the position guard.

Candidates are refreshed lazily: an instrument's setup is looked for on its first tick of each
`REFRESH_MS` slice of time (slices staggered across instruments, so no frame pays for all of them),
and its later ticks in the slice are only remembered. Before anything reads the candidates (the entry
window's decision, a view) the remembered ticks are evaluated on the snapshot they arrived with, so
the decision is the one a refresh on every tick would make. With `refresh_ms=None` (a daily-bar
backtest, whose intraday ticks are a path made up from the bar) setups are looked for only when the
candidates are read: each instrument's latest tick before the window; a tick no window reads is dropped.

It also keeps the entry windows (`window`, the day's `session`) and the market's status: candidates
are looked for while entries are allowed, the market is not closed and a window is still to come.

Restart safety: entry order ids are deterministic per (day, instrument), and every instrument with
an entry order in today's journal or an open position is skipped."""

from __future__ import annotations

import asyncio
import logging
import zlib
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
    MarketStatus,
    Order,
    OrderIntent,
    OrderPurpose,
    OrderStatus,
    OrderType,
    Product,
    SetupStatus,
    Side,
    Tick,
)
from engine.portfolio.charges import ChargeCalculator
from engine.portfolio.positions import OpenPosition, PositionBook
from engine.risk.limits import Candidate, EntryDecision, plan_entries
from engine.risk.stops import StopPolicy
from engine.settings import Settings
from engine.storage.journal import JournaledOrder
from engine.storage.setups import SetupRecord
from engine.strategy.base import GuardedStrategy
from engine.strategy.validator import RuleContext, validator_from_settings
from engine.strategy.window import EntryWindow, SessionLike
from engine.trading.events import Command, EntryAnswered, Event, FundsAnswered, Issue, OrderManagerLike
from engine.trading.requirements import default_session
from engine.trading.risk_control import RiskController
from engine.trading.setups import SetupStore

log = logging.getLogger(__name__)

CLOSED_MARKET = frozenset({MarketStatus.NORMAL_CLOSE, MarketStatus.CLOSING_START, MarketStatus.CLOSING_END})

# A replay's derived ticks come at least 42 s apart, so replays and backtests still evaluate every tick.
REFRESH_MS = 30_000


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
    def __init__(self, settings: Settings, clock: Clock, trading_day: date, session: SessionLike | None,
                 instruments: dict[str, Instrument], strategy: GuardedStrategy, orders: OrderManagerLike,
                 positions: PositionBook, risk: RiskController, setups: SetupStore, charges: ChargeCalculator,
                 issue: Issue, *, refresh_ms: int | None = REFRESH_MS) -> None:
        self.settings = settings
        self.refresh_ms = refresh_ms  # None: setups looked for only when the candidates are read
        self.session = session if session is not None else default_session(settings, trading_day)
        self.window = EntryWindow(settings.entry_windows)
        self.market_status: MarketStatus | None = None
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
        self._candidates: dict[str, RuleContext] = {}
        self._refresh_due: dict[str, int] = {}  # instrument_key -> when (epoch ms) its next slice starts
        self._phase: dict[str, int] = {}  # instrument_key -> offset (ms) of its slices
        # instrument_key -> its latest tick not evaluated yet (its indicators have not moved since)
        self._unseen: dict[str, tuple[Instrument, Tick, InstrumentIndicators]] = {}
        self.pending: dict[str, PendingEntry] = {}  # client_order_id -> entry awaiting its fill
        self.entered_today: set[str] = set()  # instrument keys with an entry order today
        self._awaiting: set[str] = set()  # client_order_ids with a broker call under way

    def held(self) -> frozenset[str]:
        """Instruments that may not be entered: open position, pending entry, or entered today."""
        pending = {p.instrument.instrument_key for p in self.pending.values()}
        return frozenset(self.positions.open.keys() | pending | self.entered_today)

    def resume(self) -> None:
        """After a restart: today's setups rows and entry orders, the positions opened (load them first)."""
        setups, entry_orders = self.setups.todays_setups_and_entries()
        self.restore(setups, entry_orders, self.positions.entry_order_ids())

    def restore(self, setups: Sequence[SetupRecord], entries: Sequence[JournaledOrder],
                with_positions: set[str]) -> None:
        """Today's setups rows and entry orders after a restart: pending ones are followed again."""
        by_order = {s.client_order_id: s for s in setups if s.client_order_id}
        for row in setups:
            assert row.id is not None
            self.setups.ids[row.instrument_key] = row.id
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

    # ---- the entry window ------------------------------------------------------------------------
    def window_open(self) -> bool:
        return self.window.is_open(self.clock.now(), self.session)

    def looking(self, now: datetime) -> bool:
        """Whether candidates are looked for now: entries allowed, the market not closed and an entry
        window still to come today."""
        return (self.risk.entries_allowed and self.market_status not in CLOSED_MARKET
                and self.window.next_open(now, self.session) is not None)

    def on_market_status(self, status: MarketStatus) -> None:
        """Segment status from the feed: after the close no candidate is refreshed."""
        self.market_status = status
        if status in CLOSED_MARKET:
            self.clear_candidates()

    async def window_due(self, broker: Broker | None, reply: asyncio.Future[list[EntryDecision]]) -> None:
        """The window's first step, when it is open: the funds the broker reports (an answer
        `FundsAnswered`). Outside a window the reply is no decision."""
        if not self.window_open():
            log.info("entry window %s is not open at %s", self.window, self.clock.now())
            reply.set_result([])
            return

        async def funds() -> FundsAnswered:
            return FundsAnswered(funds=await broker.funds() if broker is not None else None, reply=reply)

        await self.issue(Command("funds", funds, partial(_no_funds, reply)))

    # ---- candidates ------------------------------------------------------------------------------
    @property
    def candidates(self) -> dict[str, RuleContext]:
        """The current candidates (every tick seen so far evaluated)."""
        self.catch_up()
        return self._candidates

    def on_tick(self, instrument: Instrument, tick: Tick, indicators: InstrumentIndicators) -> None:
        """A tick of an instrument that may be entered, just folded into its indicators. The caller
        must `settle` the instrument before its indicators take a tick that does not come here."""
        key = instrument.instrument_key
        refresh_ms = self.refresh_ms
        if refresh_ms is None:
            self._unseen[key] = (instrument, tick, indicators)
            return
        due = self._refresh_due.get(key)
        if due is not None and tick.ltt_ms < due:
            self._unseen[key] = (instrument, tick, indicators)
            return
        self._unseen.pop(key, None)
        phase = self._phase.get(key)
        if phase is None:
            phase = self._phase[key] = zlib.crc32(key.encode()) % refresh_ms  # staggers the instruments' slices
        self._refresh_due[key] = tick.ltt_ms + refresh_ms - (tick.ltt_ms + phase) % refresh_ms
        self.refresh_candidate(instrument, tick, indicators.snapshot())

    def settle(self, instrument_key: str) -> None:
        """The instrument's indicators are about to move on: its remembered tick, if any, is evaluated now
        (dropped when setups are looked for only as the candidates are read)."""
        unseen = self._unseen.pop(instrument_key, None)
        if unseen is not None and self.refresh_ms is not None:
            instrument, tick, indicators = unseen
            self.refresh_candidate(instrument, tick, indicators.snapshot())

    def catch_up(self) -> None:
        """Evaluate every remembered tick."""
        unseen, self._unseen = self._unseen, {}
        for instrument, tick, indicators in unseen.values():
            self.refresh_candidate(instrument, tick, indicators.snapshot())

    def clear_candidates(self) -> None:
        """No candidate is looked for any more today (the kill switch, the market's close, the day's
        end). The remembered ticks are evaluated first, the rows of setups they found kept (with
        `refresh_ms` None they are dropped: no window reads them)."""
        if self.refresh_ms is None:
            self._unseen.clear()
        else:
            self.catch_up()
        self._candidates.clear()

    def refresh_candidate(self, instrument: Instrument, tick: Tick, snapshot: IndicatorSnapshot) -> None:
        key = instrument.instrument_key
        setup = self.strategy.on_tick(instrument, tick, snapshot) if self.strategy.is_warmed_up(snapshot) else None
        if setup is None or self.stops.apply(setup, instrument, snapshot) is not None:
            self._candidates.pop(key, None)
            return
        context = RuleContext(setup, instrument, tick, snapshot)
        self._candidates[key] = context
        if not self.setups.known(key):
            self.validator.validate(context)
            self.setups.stage_candidate(setup)

    def halt(self, reason: str) -> None:
        """No entry any more today (the kill switch): the candidates' rows are SKIPPED with `reason`."""
        self.clear_candidates()
        self.expire_others(reason, status=SetupStatus.SKIPPED)  # as plan_entries says

    def expire_others(self, reason: str, status: SetupStatus = SetupStatus.EXPIRED) -> None:
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
            if not traded_today or not self.strategy.has_bar_hook:
                continue
            snapshot = instrument_indicators.snapshot()
            daily = snapshot.daily
            bar = Bar(instrument.symbol, datetime.combine(self.trading_day, time(), IST), daily.open, daily.high,
                      daily.low, daily.close, int(daily.volume))
            setup = self.strategy.on_bar(instrument, bar, snapshot)
            if setup is not None and self.stops.apply(setup, instrument, snapshot) is None:
                self.setups.record(setup, status=SetupStatus.EXPIRED,
                                   reason="found on the closed daily bar, after the window")

    def end_day(self, indicators: dict[str, InstrumentIndicators]) -> None:
        """After the close: setups on the closed bars recorded, every candidate left ends the day."""
        self.clear_candidates()
        self.record_closing_setups(indicators)
        if self.risk.kill_switch:  # rows a crash left CANDIDATE after the kill: the kill is why they ended
            self.expire_others(f"kill switch on: {self.risk.kill_reason}", status=SetupStatus.SKIPPED)
        self.expire_others("not executed: no entry window ran after it was found")

    # ---- decisions and submissions ---------------------------------------------------------------
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
            self._candidates.pop(decision.setup.instrument_key, None)
            if decision.approved:
                await self._enter(decision)
            else:
                self.setups.save(decision.setup, status=SetupStatus.SKIPPED, reason=decision.reason)
        self.expire_others(f"conditions no longer held when the entry window ran at {self.clock.now():%H:%M:%S}")
        return decisions

    def _validated(self, context: RuleContext) -> Candidate:
        """The candidate with the validator's rules recorded on its setup (once per context: its rules read
        only the context)."""
        if not context.setup.rules:
            self.validator.validate(context)
        return Candidate(context.setup, context.instrument, context.snapshot.daily.get(self.stops.atr_indicator))

    async def _enter(self, decision: EntryDecision) -> None:
        setup, instrument = decision.setup, decision.instrument
        client_order_id = make_client_order_id(self.trading_day, instrument.instrument_key, OrderPurpose.ENTRY)
        setup_id = self.setups.save(setup, status=SetupStatus.EXECUTED, reason=decision.reason,
                                    quantity=decision.quantity, client_order_id=client_order_id)
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
