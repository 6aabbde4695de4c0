"""The position guard: protects each new position with a GTT OCO exit at the broker, watches the
open positions on every tick (the strategy's exit hook, stop and target when no GTT holds them),
exits at market when it must, and syncs the GTTs to close the positions whose exit fired.

Every broker call is a command whose answer comes back as an event; at most one exit command per
position is under way, and an answer about a position that closed meanwhile is ignored, so an exit
is never settled twice.

Stops that hold (settings `execution.*`): the engine's own exits are MARKET orders with
`market_protection`; one refused is sent again under a new id after a backoff on the clock (doubling),
at most `exit_retry_max_attempts` per position and day, counted from the journal (so a restart does
not start over); then an EXIT_FAILED order event {symbol, reason, attempts} is written under the last
exit's id, an ERROR logged, and the position stays held and watched. A fired GTT leg or an exit order
of ours still working `gtt_chase_seconds` after it was placed (the price gapped through its limit or
protection) is chased: cancelled, what it sold booked as a trade (the position reduced), and the rest
sold again at the new price, or protected by a new GTT when the price is back between stop and target."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from functools import partial

from engine.brokers.base import Broker, BrokerError, OrderRejected
from engine.clock import Clock
from engine.execution.exits import exit_request_for
from engine.execution.ids import make_client_order_id, triggered_order_id
from engine.execution.journal import gtt_to_exit
from engine.execution.reconcile import ReconcileReport
from engine.indicators.multitimeframe import InstrumentIndicators
from engine.models import (
    IST,
    ExitOrder,
    ExitRequest,
    ExitStatus,
    Order,
    OrderIntent,
    OrderPurpose,
    OrderStatus,
    OrderType,
    Product,
    Side,
    Tick,
)
from engine.portfolio.positions import OpenPosition, PositionBook, exit_trigger
from engine.portfolio.times import from_db, to_db
from engine.settings import Settings
from engine.storage.journal import OrderEvent, journal_store
from engine.storage.memory import Database
from engine.strategy.base import GuardedStrategy
from engine.trading.events import (
    Command,
    Event,
    ExitCancelled,
    ExitOrderAnswered,
    ExitPlaced,
    ExitsSynced,
    Issue,
    OrderManagerLike,
    Reconciled,
)
from engine.trading.risk_control import RiskController

log = logging.getLogger(__name__)

EXIT_FAILED = "EXIT_FAILED"  # order event kind: an exit we could not get accepted (the notifier reads it)
_WORKING = (OrderStatus.SUBMITTED, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


class PositionGuard:
    def __init__(self, settings: Settings, clock: Clock, db: Database, trading_day: date, strategy: GuardedStrategy,
                 orders: OrderManagerLike, positions: PositionBook, risk: RiskController, issue: Issue, *,
                 broker: Broker | None, exits_at_broker: bool | None, poll_seconds: float) -> None:
        """`exits_at_broker` (GTTs) defaults to whether the broker has them (with no broker: yes)."""
        self.settings = settings
        self.clock = clock
        self.db = db
        self.journal = journal_store(db)  # the order journal's reads (the order manager writes it)
        self.trading_day = trading_day
        self.strategy = strategy
        self.orders = orders
        self.positions = positions
        self.risk = risk
        self.issue = issue
        self.exits_at_broker = (exits_at_broker if exits_at_broker is not None
                                else broker is None or broker.capabilities.gtt)
        self.broker = broker
        self.poll_seconds = poll_seconds
        self._reference_set: set[str] = set()  # instrument keys whose day P&L reference is set
        self._protection_tried: set[int] = set()  # position ids
        self._awaiting: set[int] = set()  # position ids with an exit command under way
        self._last_sync: datetime | None = None
        self._sync_wanted = False
        self._syncing = False  # a sync is under way (concurrent mode): never two at once
        self._synced_changes: int | None = None  # the venue's `exit_changes` the last sync saw
        self._retry: dict[int, tuple[datetime, str]] = {}  # position id -> (not before, reason) of an exit to resend
        self._exit_sent_at: dict[int, datetime] = {}  # position id -> when its working exit order was sent
        self._exhausted: set[int] = set()  # position ids whose exit attempts of the day are used up
        self._resting_legs: dict[str, tuple[int, datetime]] = {}  # fired GTT leg id -> (position id, placed at)

    def _exit_id(self, position: OpenPosition, kind: str) -> str:
        return make_client_order_id(self.trading_day, f"{position.id}|{kind}", OrderPurpose.EXIT)

    async def _command(self, what: str, position: OpenPosition, call: Callable[[], Awaitable[Event]],
                       failed: Callable[[Exception], Event]) -> None:
        self._awaiting.add(position.id)
        await self.issue(Command(what, call, failed))

    # ---- watching --------------------------------------------------------------------------------
    async def watch(self, position: OpenPosition, tick: Tick, indicators: InstrumentIndicators) -> None:
        reference = None
        if position.key not in self._reference_set:
            self._reference_set.add(position.key)
            if position.opened_at.astimezone(IST).date() < self.trading_day and tick.close_prev > 0:
                reference = tick.close_prev
        self.positions.mark(position, tick.ltp, reference_price=reference)
        if position.exit_client_order_id is not None or position.id in self._awaiting:
            return
        retry = self._retry.get(position.id)
        if retry is not None:  # an exit of ours was refused or chased: sent again once its wait is over
            if self.clock.now() >= retry[0]:
                await self.exit_now(position, retry[1])
            return
        if position.exit_id is None and position.id not in self._protection_tried:
            await self.protect(position, tick.ltp)
            if position.exit_client_order_id is not None or position.id in self._awaiting \
                    or position.key not in self.positions.open:
                return
        if self.strategy.has_exit_hook:
            reason = self.strategy.on_exit(position.as_position(), tick, indicators.snapshot())
            if reason:
                await self.exit_now(position, f"strategy: {reason}")
                return
        trigger = exit_trigger(position, tick.ltp)
        if trigger is None:
            return
        if position.exit_id is not None:
            self._sync_wanted = True  # the broker's GTT exits; reconcile instead of selling twice
        else:
            await self.exit_now(position, trigger)

    # ---- protection ------------------------------------------------------------------------------
    async def protect(self, position: OpenPosition, last_price: float) -> None:
        """Place the GTT OCO exit of a new position (or of one found unprotected on restart); tried
        once per position, after that the engine watches stop and target itself."""
        self._protection_tried.add(position.id)
        if not self.exits_at_broker:
            return
        if not position.stop < last_price < position.target:
            trigger = exit_trigger(position, last_price) or "stop"
            await self.exit_now(position, f"{trigger} (price {last_price:.2f} already beyond it at entry)")
            return
        request = exit_request_for(
            position.instrument, position.quantity, stop=position.stop, target=position.target,
            last_price=last_price, tag=self._gtt_tag(position),
            limit_offset_pct=self.settings.execution.gtt_limit_offset_pct,
        )
        await self._command(f"GTT for {position.instrument.symbol}", position,
                            partial(self._place_exit, position, request), partial(_not_placed, position.id))

    def _gtt_tag(self, position: OpenPosition) -> str:
        """The tag of the position's next GTT: "gtt", then "gtt2", "gtt3"… once earlier ones settled (a
        partly filled or chased exit leaves the rest to protect anew); an ACTIVE one's tag is reused."""
        number = 1
        while True:
            tag = self._exit_id(position, "gtt" if number == 1 else f"gtt{number}")
            statuses = self.journal.gtt_statuses(tag)
            if not statuses or ExitStatus.ACTIVE in statuses:
                return tag
            number += 1

    async def _place_exit(self, position: OpenPosition, request: ExitRequest) -> ExitPlaced:
        try:
            exit_order = await self.orders.place_exit(request, position_id=position.id)
        except (BrokerError, ValueError) as error:
            log.error("GTT for %s refused (%s): the engine watches stop and target itself",
                      position.instrument.symbol, error)
            return ExitPlaced(position_id=position.id, exit_id=None)
        return ExitPlaced(position_id=position.id, exit_id=exit_order.exit_id)

    def on_exit_placed(self, answer: ExitPlaced) -> None:
        self._awaiting.discard(answer.position_id)
        position = self.positions.by_id(answer.position_id)
        if position is not None and answer.exit_id is not None:
            self.positions.set_exit(position, answer.exit_id)

    # ---- exits of our own ------------------------------------------------------------------------
    async def on_kill_switch(self) -> None:
        """The kill switch tripped: with `flatten_on_kill`, every open position not already being
        exited is sold at market."""
        if not self.settings.risk.flatten_on_kill:
            return
        for position in list(self.positions.open.values()):
            if position.exit_client_order_id is None:
                await self.exit_now(position, "kill switch")

    async def exit_now(self, position: OpenPosition, reason: str) -> None:
        """Sell the whole position at market ourselves (cancelling its GTT first), unless the day's
        exit attempts of the position are used up (then its GTT, if any, is left alone)."""
        if position.id in self._awaiting or position.id in self._exhausted:
            return
        self._retry.pop(position.id, None)
        attempt = self._next_exit_attempt(position)
        if attempt > self.settings.execution.exit_retry_max_attempts:
            self._give_up(position, reason, attempt - 1)
            return
        if position.exit_id is None:
            await self._sell(position, reason)
            return
        exit_id = position.exit_id
        await self._command(f"cancel of the GTT of {position.instrument.symbol}", position,
                            partial(self._cancel_exit, position.id, exit_id, reason),
                            partial(_not_cancelled, position.id, exit_id, reason))

    async def _cancel_exit(self, position_id: int, exit_id: str, reason: str) -> ExitCancelled:
        try:
            await self.orders.cancel_exit(exit_id)
        except OrderRejected:
            return ExitCancelled(position_id=position_id, exit_id=exit_id, cancelled=False, reason=reason)
        return ExitCancelled(position_id=position_id, exit_id=exit_id, cancelled=True, reason=reason)

    async def on_exit_cancelled(self, answer: ExitCancelled) -> None:
        self._awaiting.discard(answer.position_id)
        position = self.positions.by_id(answer.position_id)
        if position is None or position.exit_id != answer.exit_id:
            return
        if answer.error is not None:
            return  # the broker could not be reached: exited again on a later tick
        if not answer.cancelled:
            self._sync_wanted = True  # it fired meanwhile: the sync closes the position
            return
        self.positions.set_exit(position, None)
        await self._sell(position, answer.reason)

    def _next_exit_attempt(self, position: OpenPosition) -> int:
        """The number of the position's next exit order of ours: after the last one journaled today
        (also by an earlier process of the day)."""
        attempt = position.exit_attempts + 1
        while self.journal.order(self._exit_id(position, f"exit{attempt}")) is not None:
            attempt += 1
        return attempt

    def _give_up(self, position: OpenPosition, reason: str, attempts: int) -> None:
        """The day's exit attempts are used up: record EXIT_FAILED once under the last exit's id, log an
        ERROR; the position stays held and watched (the next day's run tries again), and one whose GTT
        an exit attempt cancelled is protected by a new GTT on its next tick, if the price allows."""
        self._exhausted.add(position.id)
        if position.exit_id is None:
            self._protection_tried.discard(position.id)
        client_order_id = self._exit_id(position, f"exit{attempts}")
        symbol = position.instrument.symbol
        if not self.journal.has_event(client_order_id, EXIT_FAILED):
            detail = {"symbol": symbol, "reason": reason, "attempts": attempts}
            self.journal.add_events([OrderEvent(client_order_id=client_order_id, ts=to_db(self.clock.now()),
                                                kind=EXIT_FAILED, detail=detail)])
        log.error("exit of %s (%s) failed %d times today: no further exit order today, the position stays "
                  "open and watched", symbol, reason, attempts)

    async def _sell(self, position: OpenPosition, reason: str) -> None:
        attempt = self._next_exit_attempt(position)
        client_order_id = self._exit_id(position, f"exit{attempt}")  # each attempt under its own id
        self.positions.begin_exit(position, client_order_id, reason, attempt=attempt)
        self._exit_sent_at[position.id] = self.clock.now()
        execution = self.settings.execution
        intent = OrderIntent(client_order_id, position.instrument, Side.SELL, position.quantity,
                             order_type=OrderType.MARKET, product=Product(execution.product),
                             purpose=OrderPurpose.EXIT, market_protection=execution.market_protection)
        # a failed submit never reached the broker (the order manager answers SUBMITTED when unsure)
        submit = partial(self.orders.submit, intent)
        await self._command(f"exit of {position.instrument.symbol}", position,
                            partial(self._exit_order, position.id, client_order_id, submit),
                            partial(_exit_order_failed, position.id, client_order_id, True))

    async def poll(self) -> None:
        """Follow our own exit orders to their fills; one still working `gtt_chase_seconds` after it
        was sent is cancelled (the answer books what it sold, and the rest is sold again)."""
        now = self.clock.now()
        for position in self.positions.exiting():
            if position.id in self._awaiting or position.exit_client_order_id is None:
                continue
            client_order_id = position.exit_client_order_id
            sent = self._exit_sent_at.get(position.id, now)
            chase = (now - sent).total_seconds() >= self.settings.execution.gtt_chase_seconds
            call = self.orders.cancel if chase else self.orders.refresh
            await self._command("exit order chase" if chase else "exit order poll", position,
                                partial(self._exit_order, position.id, client_order_id, partial(call, client_order_id)),
                                partial(_exit_order_failed, position.id, client_order_id, False))

    @staticmethod
    async def _exit_order(position_id: int, client_order_id: str,
                          call: Callable[[], Awaitable[Order]]) -> ExitOrderAnswered:
        return ExitOrderAnswered(position_id=position_id, client_order_id=client_order_id, order=await call())

    def on_exit_order(self, answer: ExitOrderAnswered) -> None:
        self._awaiting.discard(answer.position_id)
        position = self.positions.by_id(answer.position_id)
        if position is None:
            return  # closed already
        if position.exit_id is not None and answer.client_order_id == triggered_order_id(position.exit_id):
            self._resting_legs.pop(answer.client_order_id, None)  # found again by the next sync if still working
            self._sync_wanted = True  # a chased GTT leg: the next sync settles its exit
            return
        if position.exit_client_order_id != answer.client_order_id:
            return  # an answer about an earlier attempt
        order = answer.order
        if order is None:
            if answer.never_sent:
                self._exit_again(position, refused=True)
        elif order.status is OrderStatus.FILLED:
            self.close(position, order.average_price, reason=position.exit_reason)
        elif order.status.is_terminal:  # rejected, or cancelled by a chase: still open, exited again
            if 0 < order.filled_quantity < position.quantity:  # a chased order that sold part of it
                self.reduce(position, order.filled_quantity, order.average_price, reason=position.exit_reason)
            refused = order.status is OrderStatus.REJECTED
            if refused:
                log.warning("exit of %s refused: %s", position.instrument.symbol, order.message)
            self._exit_again(position, refused=refused)

    def _exit_again(self, position: OpenPosition, *, refused: bool) -> None:
        """Send the exit again under a new id on a later tick: at once after a chase, after a backoff
        doubling with each attempt after a refusal."""
        self._exit_sent_at.pop(position.id, None)
        self.positions.exit_failed(position)
        execution = self.settings.execution
        wait = 0.0
        if refused:
            wait = min(execution.exit_retry_backoff_seconds * 2 ** (position.exit_attempts - 1),
                       execution.exit_retry_max_backoff_seconds)
        self._retry[position.id] = (self.clock.now() + timedelta(seconds=wait), position.exit_reason)

    def close(self, position: OpenPosition, price: float, *, reason: str) -> None:
        self._forget(position.id)
        trade = self.positions.close(position, price, self.clock.now(), reason, self.trading_day)
        self.risk.recompute()
        log.info("closed %s x%d at %.2f (%s): net %.2f", trade.symbol, trade.quantity, price, reason, trade.net_pnl)

    def reduce(self, position: OpenPosition, sold: int, price: float, *, reason: str) -> None:
        """An exit sold part of the position: book that part; the rest stays open."""
        trade = self.positions.reduce(position, sold, price, self.clock.now(), reason, self.trading_day)
        self.risk.recompute()
        log.warning("sold %s x%d at %.2f (%s), %d still held: net %.2f", trade.symbol, sold, price, reason,
                    position.quantity, trade.net_pnl)

    def _forget(self, position_id: int) -> None:
        self._retry.pop(position_id, None)
        self._exit_sent_at.pop(position_id, None)

    # ---- reconciliation --------------------------------------------------------------------------
    async def reconcile(self, reply: asyncio.Future[ReconcileReport]) -> None:
        """The order manager's reconciliation (database vs broker), answered by `Reconciled`."""
        async def reconcile() -> Reconciled:
            return Reconciled(report=await self.orders.reconcile(), reply=reply)

        await self.issue(Command("reconciliation", reconcile, partial(_unreconciled, reply)))

    def on_reconciled(self, answer: Reconciled) -> None:
        """Settled exits close their positions; positions sold outside autotrader are closed or reduced,
        with their trades (the day's realised P&L)."""
        report = answer.report
        if report is None:
            answer.reply.set_exception(answer.error or RuntimeError("reconciliation failed"))
            return
        self.apply_settled({e.exit_id: e for e in report.settled_exits})
        for sale in report.closed_by_hand:
            self._forget(sale.position_id)
        trades = self.positions.apply_sold_by_hand(report.sold_by_hand, self.clock.now(), self.trading_day)
        for trade in trades:
            log.warning("reconciliation: %s x%d sold outside autotrader at %.2f: net %.2f", trade.symbol,
                        trade.quantity, trade.exit_price, trade.net_pnl)
        if trades:
            self.risk.recompute()
        answer.reply.set_result(report)

    # ---- GTT sync --------------------------------------------------------------------------------
    async def sync(self, *, force: bool = False) -> None:
        now = self.clock.now()
        if self._resting_legs:  # seldom any: no coroutine on each batch of ticks
            await self._chase_resting_legs(now)
        due = self._last_sync is None or (now - self._last_sync).total_seconds() >= (
            self.poll_seconds if self._sync_wanted else self.settings.execution.reconcile_interval_seconds
        )
        if self._syncing or not (force or due) or not any(p.exit_id for p in self.positions.open.values()):
            return
        self._last_sync = now
        self._sync_wanted = False
        changes = self.broker.exit_changes() if self.broker is not None else None
        if changes is not None and changes == self._synced_changes:
            return  # no exit changed at the (simulated) venue since the last sync: it would find nothing
        self._syncing = True
        self._synced_changes = changes
        await self.issue(Command("exit sync", self._sync_exits, _sync_failed))

    async def _sync_exits(self) -> ExitsSynced:
        return ExitsSynced(settled={e.exit_id: e for e in await self.orders.sync_exits()})

    def carry_sync(self, previous: PositionGuard) -> None:
        """Take over what the previous day's guard of this engine last synced: the venue's `exit_changes` it
        saw and the fired legs it found resting (the journal and the venue carry over the day roll)."""
        if not previous._syncing:
            self._synced_changes = previous._synced_changes
            self._resting_legs = dict(previous._resting_legs)

    def on_synced(self, answer: ExitsSynced) -> None:
        self._syncing = False
        if answer.error is not None:
            self._synced_changes = None
            return
        settled = dict(answer.settled)
        settled.update(self._settled_in_db(settled))
        self.apply_settled(settled)
        self._find_resting_legs()

    def _find_resting_legs(self) -> None:
        """The fired GTT legs of open positions still working at the broker (the sync journals them as
        `GTT<exit_id>`): chased once they have rested `gtt_chase_seconds`."""
        by_leg = {triggered_order_id(p.exit_id): p.id for p in self.positions.open.values() if p.exit_id}
        self._resting_legs = {}
        if not by_leg:
            return
        self._resting_legs = {leg.client_order_id: (by_leg[leg.client_order_id], from_db(leg.created_at))
                              for leg in self.journal.orders_with_ids(by_leg) if leg.status in _WORKING}

    async def _chase_resting_legs(self, now: datetime) -> None:
        chase_seconds = self.settings.execution.gtt_chase_seconds
        for leg_id, (position_id, placed_at) in list(self._resting_legs.items()):
            position = self.positions.by_id(position_id)
            if position is None or position.id in self._awaiting or (now - placed_at).total_seconds() < chase_seconds:
                continue
            log.warning("the fired GTT leg of %s rests unfilled since %s: cancelled, the rest is sold or protected "
                        "again", position.instrument.symbol, placed_at)
            await self._command(f"chase of the GTT leg of {position.instrument.symbol}", position,
                                partial(self._exit_order, position.id, leg_id, partial(self.orders.cancel, leg_id)),
                                partial(_exit_order_failed, position.id, leg_id, False))

    def apply_settled(self, settled: dict[str, ExitOrder]) -> None:
        """Close the positions whose GTT sold them; one it sold in part is reduced by what it sold.
        What is left unsold (or a GTT that ended otherwise) is protected again on its next tick: by a
        new GTT, or sold by us when the price is beyond its stop or target."""
        for position in list(self.positions.open.values()):
            exit_order = settled.get(position.exit_id or "")
            if exit_order is None:
                continue
            fired = exit_order.status in (ExitStatus.TRIGGERED_STOP, ExitStatus.TRIGGERED_TARGET)
            sold = position.quantity if exit_order.exit_quantity is None else exit_order.exit_quantity
            reason = f"{'stop' if exit_order.status is ExitStatus.TRIGGERED_STOP else 'target'} (GTT)"
            if fired and exit_order.exit_price and sold >= position.quantity:
                self.close(position, exit_order.exit_price, reason=reason)
                continue
            if fired and exit_order.exit_price and sold > 0:
                self.reduce(position, sold, exit_order.exit_price, reason=reason)
            else:  # cancelled at the broker, or fired without a fill
                log.warning("exit %s of %s is %s%s: position unprotected, protected or exited again",
                            exit_order.exit_id, position.instrument.symbol, exit_order.status,
                            f" ({exit_order.message})" if exit_order.message else "")
            self.positions.set_exit(position, None)
            self._protection_tried.discard(position.id)

    def _settled_in_db(self, already: dict[str, ExitOrder]) -> dict[str, ExitOrder]:
        """Exits of open positions that settled before a restart (the gtts table knows)."""
        wanted = [p.exit_id for p in self.positions.open.values() if p.exit_id and p.exit_id not in already]
        if not wanted:
            return {}
        settled: dict[str, ExitOrder] = {}
        for row in self.journal.gtts_with_ids(wanted):
            if row.status is ExitStatus.ACTIVE:
                continue
            leg = self.journal.order(triggered_order_id(row.exit_id))
            exit_price = leg.average_price if leg is not None and leg.filled_quantity else None
            settled[row.exit_id] = replace(gtt_to_exit(row), exit_price=exit_price,
                                           exit_quantity=leg.filled_quantity if leg is not None else None)
        return settled


# answers built from a failed command's error
def _not_placed(position_id: int, error: Exception) -> ExitPlaced:
    return ExitPlaced(position_id=position_id, exit_id=None, error=error)


def _not_cancelled(position_id: int, exit_id: str, reason: str, error: Exception) -> ExitCancelled:
    return ExitCancelled(position_id=position_id, exit_id=exit_id, cancelled=False, reason=reason, error=error)


def _exit_order_failed(position_id: int, client_order_id: str, never_sent: bool, error: Exception
                       ) -> ExitOrderAnswered:
    return ExitOrderAnswered(position_id=position_id, client_order_id=client_order_id, order=None,
                             never_sent=never_sent, error=error)


def _sync_failed(error: Exception) -> ExitsSynced:
    return ExitsSynced(error=error)


def _unreconciled(reply: asyncio.Future[ReconcileReport], error: Exception) -> Reconciled:
    return Reconciled(report=None, reply=reply, error=error)
