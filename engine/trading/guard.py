"""The position guard: protects each new position with a GTT OCO exit at the broker, watches the
open positions on every tick (the strategy's exit hook, stop and target when no GTT holds them),
exits at market when it must, and syncs the GTTs to close the positions whose exit fired.

Every broker call is a command whose answer comes back as an event; at most one exit command per
position is under way, and an answer about a position that closed meanwhile is ignored, so an exit
is never settled twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime
from functools import partial

from sqlalchemy import Engine
from sqlmodel import col, select

from engine.brokers.base import BrokerError, OrderRejected
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
    Product,
    Side,
    Tick,
)
from engine.portfolio.positions import OpenPosition, PositionBook, exit_trigger
from engine.settings import Settings
from engine.storage import session_scope
from engine.storage.tables import GttRow, OrderRow
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


class PositionGuard:
    def __init__(self, settings: Settings, clock: Clock, db: Engine, trading_day: date, strategy: GuardedStrategy,
                 orders: OrderManagerLike, positions: PositionBook, risk: RiskController, issue: Issue, *,
                 exits_at_broker: bool, poll_seconds: float) -> None:
        self.settings = settings
        self.clock = clock
        self.db = db
        self.trading_day = trading_day
        self.strategy = strategy
        self.orders = orders
        self.positions = positions
        self.risk = risk
        self.issue = issue
        self.exits_at_broker = exits_at_broker
        self.poll_seconds = poll_seconds
        self._reference_set: set[str] = set()  # instrument keys whose day P&L reference is set
        self._protection_tried: set[int] = set()  # position ids
        self._awaiting: set[int] = set()  # position ids with an exit command under way
        self._last_sync: datetime | None = None
        self._sync_wanted = False
        self._syncing = False  # a sync is under way (concurrent mode): never two at once

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
            last_price=last_price, tag=self._exit_id(position, "gtt"),
            limit_offset_pct=self.settings.execution.gtt_limit_offset_pct,
        )
        await self._command(f"GTT for {position.instrument.symbol}", position,
                            partial(self._place_exit, position, request), partial(_not_placed, position.id))

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
    async def exit_now(self, position: OpenPosition, reason: str) -> None:
        """Sell the whole position at market ourselves (cancelling its GTT first)."""
        if position.id in self._awaiting:
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

    async def _sell(self, position: OpenPosition, reason: str) -> None:
        client_order_id = self._exit_id(position, f"exit{position.exit_attempts + 1}")  # a refused exit: new id
        self.positions.begin_exit(position, client_order_id, reason)
        intent = OrderIntent(client_order_id, position.instrument, Side.SELL, position.quantity,
                             product=Product(self.settings.execution.product), purpose=OrderPurpose.EXIT)
        # a failed submit never reached the broker (the order manager answers SUBMITTED when unsure)
        submit = partial(self.orders.submit, intent)
        await self._command(f"exit of {position.instrument.symbol}", position,
                            partial(self._exit_order, position.id, client_order_id, submit),
                            partial(_exit_order_failed, position.id, client_order_id, True))

    async def poll(self) -> None:
        """Follow our own exit orders to their fills."""
        for position in self.positions.exiting():
            if position.id in self._awaiting or position.exit_client_order_id is None:
                continue
            client_order_id = position.exit_client_order_id
            await self._command("exit order poll", position,
                                partial(self._exit_order, position.id, client_order_id,
                                        partial(self.orders.refresh, client_order_id)),
                                partial(_exit_order_failed, position.id, client_order_id, False))

    @staticmethod
    async def _exit_order(position_id: int, client_order_id: str,
                          call: Callable[[], Awaitable[Order]]) -> ExitOrderAnswered:
        return ExitOrderAnswered(position_id=position_id, client_order_id=client_order_id, order=await call())

    def on_exit_order(self, answer: ExitOrderAnswered) -> None:
        self._awaiting.discard(answer.position_id)
        position = self.positions.by_id(answer.position_id)
        if position is None or position.exit_client_order_id != answer.client_order_id:
            return  # closed already, or an answer about an earlier attempt
        order = answer.order
        if order is None:
            if answer.never_sent:
                self.positions.exit_failed(position)
        elif order.status is OrderStatus.FILLED:
            self.close(position, order.average_price, reason=position.exit_reason)
        elif order.status.is_terminal:  # rejected / cancelled: still open, try again on a later tick
            log.warning("exit of %s failed (%s): %s", position.instrument.symbol, order.status, order.message)
            self.positions.exit_failed(position)

    def close(self, position: OpenPosition, price: float, *, reason: str) -> None:
        trade = self.positions.close(position, price, self.clock.now(), reason, self.trading_day)
        self.risk.recompute()
        log.info("closed %s x%d at %.2f (%s): net %.2f", trade.symbol, trade.quantity, price, reason, trade.net_pnl)

    # ---- reconciliation --------------------------------------------------------------------------
    async def reconcile(self, reply: asyncio.Future[ReconcileReport]) -> None:
        """The order manager's reconciliation (database vs broker), answered by `Reconciled`."""
        async def reconcile() -> Reconciled:
            return Reconciled(report=await self.orders.reconcile(), reply=reply)

        await self.issue(Command("reconciliation", reconcile, partial(_unreconciled, reply)))

    def on_reconciled(self, answer: Reconciled) -> None:
        """Settled exits close their positions; positions closed at the broker leave the book."""
        if answer.report is None:
            answer.reply.set_exception(answer.error or RuntimeError("reconciliation failed"))
            return
        self.apply_settled({e.exit_id: e for e in answer.report.settled_exits})
        for position in self.positions.drop_closed_elsewhere():
            log.warning("reconciliation closed %s (no longer held at the broker)", position.instrument.symbol)
        answer.reply.set_result(answer.report)

    # ---- GTT sync --------------------------------------------------------------------------------
    async def sync(self, *, force: bool = False) -> None:
        now = self.clock.now()
        due = self._last_sync is None or (now - self._last_sync).total_seconds() >= (
            self.poll_seconds if self._sync_wanted else self.settings.execution.reconcile_interval_seconds
        )
        if self._syncing or not (force or due) or not any(p.exit_id for p in self.positions.open.values()):
            return
        self._syncing = True
        self._last_sync = now
        self._sync_wanted = False
        await self.issue(Command("exit sync", self._sync_exits, _sync_failed))

    async def _sync_exits(self) -> ExitsSynced:
        return ExitsSynced(settled={e.exit_id: e for e in await self.orders.sync_exits()})

    def on_synced(self, answer: ExitsSynced) -> None:
        self._syncing = False
        if answer.error is not None:
            return
        settled = dict(answer.settled)
        settled.update(self._settled_in_db(settled))
        self.apply_settled(settled)

    def apply_settled(self, settled: dict[str, ExitOrder]) -> None:
        """Close the positions whose GTT filled; those whose GTT ended otherwise are unprotected."""
        for position in list(self.positions.open.values()):
            exit_order = settled.get(position.exit_id or "")
            if exit_order is None:
                continue
            if exit_order.status in (ExitStatus.TRIGGERED_STOP, ExitStatus.TRIGGERED_TARGET) and exit_order.exit_price:
                kind = "stop" if exit_order.status is ExitStatus.TRIGGERED_STOP else "target"
                self.close(position, exit_order.exit_price, reason=f"{kind} (GTT)")
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
