"""OrderManager: the one way the trading engine places and tracks orders and exits.

Exactly-once submission:
1. The intent is journaled PENDING (write-ahead) before anything is sent.
2. Before each send the order is marked SUBMITTED and an ATTEMPT event written; the response (or
   error) is written after it, with the elapsed time.
3. Only `TemporaryBrokerError` is retried (tenacity, sleeping on the injected clock), and every retry
   first looks the tag up in the broker's order book (`Broker.find_order`): an order that reached
   the broker despite a lost answer is adopted, never placed again.
4. A client_order_id already in the journal is never blindly resent: PENDING (certainly never sent)
   is sent; SUBMITTED (maybe sent, e.g. a crash between send and answer) is looked up first; any
   other status is only refreshed.
`OrderRejected` is recorded (REJECTED) and returned, never retried; `TokenExpired` halts entries,
raises the alert callback and propagates.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from engine.brokers.base import Broker, OrderRejected, TemporaryBrokerError, TokenExpired
from engine.clock import Clock
from engine.execution.ids import triggered_order_id
from engine.execution.journal import OrderJournal, gtt_to_exit, row_to_order
from engine.execution.ratelimit import RateLimiter
from engine.execution.reconcile import OPEN_STATUSES, ReconcileReport, reconcile
from engine.execution.tradebook import TradeBook
from engine.models import ExitOrder, ExitRequest, ExitStatus, Fill, Order, OrderIntent, OrderPurpose, OrderStatus
from engine.storage.journal import JournaledExit, JournaledOrder
from engine.storage.memory import Database

log = logging.getLogger(__name__)
T = TypeVar("T")
_FIRED = frozenset({ExitStatus.TRIGGERED_STOP, ExitStatus.TRIGGERED_TARGET})



@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of `TemporaryBrokerError`: attempts in all, exponential backoff on the clock."""

    attempts: int = 4
    backoff_seconds: float = 0.2
    max_backoff_seconds: float = 5.0


class OrderManager:
    """Journal + exactly-once submission + GTT exits + reconciliation on top of any `Broker`."""

    def __init__(
        self,
        broker: Broker,
        db: Database,
        clock: Clock,
        *,
        trading_day: date,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        on_alert: Callable[[str], None] | None = None,
        submitted_grace_seconds: float = 120.0,
    ) -> None:
        self.broker = broker
        self.db = db
        self.clock = clock
        self.trading_day = trading_day
        self.retry = retry or RetryPolicy()
        self.rate_limiter = rate_limiter or RateLimiter.for_capabilities(clock, broker.capabilities)
        self.on_alert = on_alert
        self.submitted_grace_seconds = submitted_grace_seconds
        self.journal = OrderJournal(db, clock, broker=broker.name, trading_day=trading_day)
        self.entries_halted = False
        self.halt_reason = ""
        self._fills_pending: set[str] = set()  # orders whose trade-book fills lag their filled quantity

    # helpers ----------------------------------------------------------------------------------
    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception_type(TemporaryBrokerError),
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_exponential(multiplier=self.retry.backoff_seconds, max=self.retry.max_backoff_seconds),
            sleep=self.clock.sleep,
            reraise=True,
        )

    def _token_expired(self, error: TokenExpired, key: str) -> None:
        self.entries_halted = True
        self.halt_reason = f"broker token expired: {error}"
        self.journal.event(key, "ERROR", error="TokenExpired", message=str(error))
        log.error("broker %s: token expired, entries halted (%s)", self.broker.name, error)
        if self.on_alert is not None:
            self.on_alert(self.halt_reason)

    async def call_broker(self, key: str, call: Callable[[], Awaitable[T]]) -> T:
        """An idempotent broker call (look-ups, modify, cancel) with retries of temporary errors."""
        try:
            async for attempt in self._retrying():
                with attempt:
                    return await call()
        except TokenExpired as error:
            self._token_expired(error, key)
            raise
        raise AssertionError("unreachable")  # pragma: no cover - reraise=True always raises

    async def _timed_send(self, key: str, attempt: int, send: Callable[[], Awaitable[T]]) -> tuple[T, float]:
        """One send to the broker and its elapsed milliseconds; a temporary failure is journaled
        (with its time) before it propagates to the retry loop."""
        started = time.perf_counter()
        try:
            result = await send()
        except TemporaryBrokerError as error:
            self.journal.event(key, "ERROR", attempt=attempt, error=type(error).__name__, message=str(error),
                               retry=True, elapsed_ms=round((time.perf_counter() - started) * 1000, 3))
            raise
        return result, round((time.perf_counter() - started) * 1000, 3)

    async def absorb(
        self, client_order_id: str, order: Order, *, event: tuple[str, dict[str, Any]] | None = None,
        trade_book: TradeBook | None = None,
    ) -> Order:
        """Apply the broker's view of an order to the journal and record new fills (from
        `trade_book` when the caller refreshes several orders in one pass)."""
        before_filled, before_average, after = self.journal.apply(client_order_id, order, event=event)
        if after.filled_quantity > before_filled or client_order_id in self._fills_pending:
            await self._record_fills(before_filled, before_average, after, trade_book or TradeBook(self.broker))
        return row_to_order(after)

    async def _record_fills(
        self, before_filled: int, before_average: float, after: JournaledOrder, trade_book: TradeBook
    ) -> None:
        broker_fills = await trade_book.fills()
        if broker_fills is not None:
            # The trade book is the truth; when it lags the order, look again on the next refresh.
            mine = [dataclasses.replace(fill, client_order_id=after.client_order_id)
                    for fill in broker_fills if fill.broker_order_id == after.broker_order_id]
            self.journal.record_fills(mine)
            if sum(fill.quantity for fill in mine) < after.filled_quantity:
                self._fills_pending.add(after.client_order_id)
            else:
                self._fills_pending.discard(after.client_order_id)
            return
        # The broker cannot list executions: derive one fill from the change in filled quantity.
        delta = after.filled_quantity - before_filled
        value = after.average_price * after.filled_quantity - before_average * before_filled
        self.journal.record_fills([Fill(
            fill_id=f"{after.client_order_id}#{after.filled_quantity}",
            client_order_id=after.client_order_id,
            broker_order_id=after.broker_order_id or "",
            instrument_key=after.instrument_key,
            side=after.side,
            quantity=delta,
            price=round(value / delta, 4),
            ts=self.clock.now(),
        )])

    # orders -----------------------------------------------------------------------------------
    async def submit(self, intent: OrderIntent, *, setup_id: int | None = None) -> Order:
        """Place `intent` exactly once (see the module docstring). Returns the order as known after
        the attempt: REJECTED when refused, SUBMITTED when the broker stayed unreachable (the
        reconciliation resolves it; it is never resent blindly). Raises `TokenExpired`, and
        `ValueError` for an id longer than the broker's tag limit or reused for another intent."""
        client_order_id = intent.client_order_id
        if not client_order_id or len(client_order_id) > self.broker.capabilities.max_tag_length:
            raise ValueError(f"client_order_id {client_order_id!r} must be 1..{self.broker.capabilities.max_tag_length}"
                             " characters (it is the broker tag)")
        if intent.quantity <= 0:
            raise ValueError(f"order {client_order_id}: quantity must be positive, got {intent.quantity}")
        row = self.journal.get(client_order_id)
        never_sent = row is None or row.status is OrderStatus.PENDING
        if never_sent and intent.purpose is OrderPurpose.ENTRY and self.entries_halted:
            raise TokenExpired(f"entries halted: {self.halt_reason}")
        lookup_first = False
        if row is None:
            self.journal.record_intent(intent, setup_id=setup_id)
        else:
            if (row.instrument_key, row.side, row.quantity) != (
                intent.instrument.instrument_key, intent.side.value, intent.quantity
            ):
                raise ValueError(f"client_order_id {client_order_id} is already journaled for a different order")
            status = row.status
            if status is OrderStatus.SUBMITTED:
                lookup_first = True
            elif status is not OrderStatus.PENDING:
                return row_to_order(row) if status.is_terminal else await self.refresh(client_order_id)
        return await self._send(intent, lookup_first=lookup_first)

    async def _send(self, intent: OrderIntent, *, lookup_first: bool) -> Order:
        client_order_id = intent.client_order_id
        attempts = 0
        try:
            async for attempt in self._retrying():
                with attempt:
                    attempts += 1
                    if lookup_first or attempts > 1:
                        found = await self.broker.find_order(client_order_id)
                        lookup = ("LOOKUP", {"attempt": attempts, "found": found.broker_order_id if found else None})
                        if found is not None:
                            return await self.absorb(client_order_id, found, event=lookup)
                        self.journal.event(client_order_id, lookup[0], **lookup[1])
                    await self.rate_limiter.acquire()
                    self.journal.transition(client_order_id, OrderStatus.SUBMITTED,
                                            event=("ATTEMPT", {"attempt": attempts}))
                    order, elapsed_ms = await self._timed_send(
                        client_order_id, attempts, lambda: self.broker.place_order(intent))
                    response = {"attempt": attempts, "broker_order_id": order.broker_order_id,
                                "status": order.status.value, "elapsed_ms": elapsed_ms}
                    return await self.absorb(client_order_id, order, event=("RESPONSE", response))
        except OrderRejected as error:
            self.journal.event(client_order_id, "ERROR", attempt=attempts, error="OrderRejected", message=str(error),
                               retry=False)
            return row_to_order(self.journal.transition(client_order_id, OrderStatus.REJECTED, message=str(error)))
        except TokenExpired as error:
            self._token_expired(error, client_order_id)
            if attempts == 1 and not lookup_first:  # refused on the first send: it cannot be at the broker
                self.journal.transition(client_order_id, OrderStatus.REJECTED, message=f"token expired: {error}")
            raise
        except TemporaryBrokerError as error:
            self.journal.event(client_order_id, "GAVE_UP", attempts=attempts, message=str(error))
            row = self.journal.get(client_order_id)
            assert row is not None
            order = row_to_order(row)
            order.message = f"broker unreachable after {attempts} attempts; left for reconciliation: {error}"
            return order
        raise AssertionError("unreachable")  # pragma: no cover

    async def refresh(self, client_order_id: str) -> Order:
        """Status and fills of one order from the broker into the journal and the fills table."""
        row = self.journal.get(client_order_id)
        if row is None:
            raise KeyError(f"order {client_order_id} is not in the journal")
        if row.status is OrderStatus.PENDING:
            return row_to_order(row)
        if row.broker_order_id:  # by broker id: also finds orders we did not tag (fired GTT legs)
            broker_order_id = row.broker_order_id
            found = await self.call_broker(client_order_id, lambda: self.broker.get_order(broker_order_id))
        else:
            found = await self.call_broker(client_order_id, lambda: self.broker.find_order(client_order_id))
        if found is None:
            return row_to_order(row)
        return await self.absorb(client_order_id, found)

    async def open_orders(self) -> list[Order]:
        """Today's orders not yet terminal, refreshed from the broker's order book in one call (the
        journal's view when the broker is unreachable)."""
        rows = self.journal.orders(statuses=OPEN_STATUSES, trading_day=self.trading_day)
        if not rows:
            return []
        try:
            book = await self.call_broker("open_orders", self.broker.list_orders)
        except TemporaryBrokerError:
            return [row_to_order(row) for row in rows]
        by_tag = {o.client_order_id: o for o in book if o.client_order_id}
        by_id = {o.broker_order_id: o for o in book if o.broker_order_id}
        trade_book = TradeBook(self.broker)
        result = []
        for row in rows:
            found = by_tag.get(row.client_order_id) or (by_id.get(row.broker_order_id) if row.broker_order_id else None)
            order = (await self.absorb(row.client_order_id, found, trade_book=trade_book) if found is not None
                     else row_to_order(row))
            if not order.status.is_terminal:
                result.append(order)
        return result

    async def cancel(self, client_order_id: str) -> Order:
        """Cancel a working order (e.g. an entry not filled by the end of the window)."""
        row = self.journal.get(client_order_id)
        if row is None:
            raise KeyError(f"order {client_order_id} is not in the journal")
        status = row.status
        if status.is_terminal:
            return row_to_order(row)
        if status is OrderStatus.PENDING:
            return row_to_order(self.journal.transition(client_order_id, OrderStatus.CANCELLED, message="never sent"))
        if row.broker_order_id is None:
            await self.refresh(client_order_id)
            row = self.journal.get(client_order_id)
            assert row is not None
        if row.broker_order_id is not None:
            broker_order_id = row.broker_order_id
            self.journal.event(client_order_id, "CANCEL", broker_order_id=broker_order_id)
            try:
                await self.call_broker(client_order_id, lambda: self.broker.cancel_order(broker_order_id))
            except OrderRejected as error:  # already filled or cancelled: the refresh tells which
                self.journal.event(client_order_id, "ERROR", error="OrderRejected", message=str(error))
        return await self.refresh(client_order_id)

    # exits ------------------------------------------------------------------------------------
    async def place_exit(self, request: ExitRequest, *, position_id: int | None = None) -> ExitOrder:
        """Place a two-leg exit exactly once per `request.tag`: an ACTIVE exit already journaled
        under the tag is returned; a retry (or a restart after an attempt) first looks for the exit
        at the broker. Raises `OrderRejected` (recorded) when the broker refuses it."""
        existing, lookup_first = self.journal.exit_state(request.tag)
        if existing is not None:
            if existing.status is ExitStatus.ACTIVE:
                return gtt_to_exit(existing)
            raise ValueError(f"exit tag {request.tag} belongs to a settled exit ({existing.status}); use a new tag")
        intent = {"instrument_key": request.instrument.instrument_key, "quantity": request.quantity,
                  "stop_trigger": request.stop_trigger, "stop_limit": request.stop_limit,
                  "target_trigger": request.target_trigger, "target_limit": request.target_limit,
                  "position_id": position_id}
        attempts = 0
        try:
            async for attempt in self._retrying():
                with attempt:
                    attempts += 1
                    if lookup_first or attempts > 1:
                        found = await self.broker.find_exit(request)
                        lookup = ("LOOKUP", {"attempt": attempts, "found": found.exit_id if found else None})
                        if found is not None:
                            return self._exit_placed(found, request, position_id, event=lookup)
                        self.journal.event(request.tag, lookup[0], **lookup[1])
                    pending: list[tuple[str, str, dict[str, Any]]] = [
                        (request.tag, "EXIT_ATTEMPT", {"attempt": attempts})]
                    if attempts == 1 and not lookup_first:
                        pending.insert(0, (request.tag, "EXIT_INTENT", intent))
                    self.journal.events_add(pending)
                    exit_order, elapsed_ms = await self._timed_send(
                        request.tag, attempts, lambda: self.broker.place_exit_oco(request))
                    response = {"attempt": attempts, "exit_id": exit_order.exit_id, "elapsed_ms": elapsed_ms}
                    return self._exit_placed(exit_order, request, position_id, event=("EXIT_RESPONSE", response))
        except OrderRejected as error:
            self.journal.event(request.tag, "ERROR", attempt=attempts, error="OrderRejected", message=str(error),
                               retry=False)
            raise
        except TokenExpired as error:
            self._token_expired(error, request.tag)
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _exit_placed(
        self, exit_order: ExitOrder, request: ExitRequest, position_id: int | None,
        *, event: tuple[str, dict[str, Any]] | None = None,
    ) -> ExitOrder:
        exit_order.tag = request.tag
        self.journal.save_gtt(exit_order, tag=request.tag, position_id=position_id, event=event)
        return exit_order

    async def modify_exit(self, exit_id: str, request: ExitRequest) -> ExitOrder:
        """Move the stop/target (or quantity) of a live exit; modifying to the same values is
        idempotent, so temporary errors are retried."""
        row = self.journal.gtt(exit_id)
        tag = row.tag if row is not None else request.tag
        self.journal.event(tag, "EXIT_MODIFY", exit_id=exit_id, stop_trigger=request.stop_trigger,
                           target_trigger=request.target_trigger, quantity=request.quantity)
        try:
            exit_order = await self.call_broker(tag, lambda: self.broker.modify_exit(exit_id, request))
        except OrderRejected as error:
            self.journal.event(tag, "ERROR", error="OrderRejected", message=str(error), retry=False)
            raise
        exit_order.tag = tag
        self.journal.save_gtt(exit_order, tag=tag)
        return exit_order

    async def cancel_exit(self, exit_id: str) -> None:
        """Delete a live exit. Raises `OrderRejected` when it already fired: the journal then keeps
        it ACTIVE so that the next `sync_exits` settles it with its exit price (never sell twice).
        An exit the broker reports cancelled or no longer lists is journaled CANCELLED."""
        row = self.journal.gtt(exit_id)
        tag = row.tag if row is not None else exit_id
        self.journal.event(tag, "EXIT_CANCEL", exit_id=exit_id)
        try:
            await self.call_broker(tag, lambda: self.broker.cancel_exit(exit_id))
        except OrderRejected as error:
            self.journal.event(tag, "ERROR", error="OrderRejected", message=str(error), retry=False)
            exits = await self.call_broker(tag, self.broker.list_exits)
            current = next((e for e in exits if e.exit_id == exit_id), None)
            if current is not None and current.status is not ExitStatus.CANCELLED:
                raise
        self.journal.set_gtt_status(exit_id, ExitStatus.CANCELLED)

    async def sync_exits(self) -> list[ExitOrder]:
        """Refresh the gtts table from the broker; return the exits settled since the last call.

        The order a triggered exit's leg placed is journaled (id `GTT<exit_id>`) as soon as it is
        seen, working or not (a working one is chased by the position guard). The exit is settled
        once that order is terminal: `exit_price` is its average price and `exit_quantity` what it
        sold (None and 0 if it did not fill: the position is then still open and unprotected; less
        than the quantity if it filled in part). An exit the broker no longer lists is settled as
        CANCELLED; the broker's `message` (a leg's rejection reason) is journaled and logged."""
        active = self.journal.gtts(active_only=True)
        if not active:
            return []
        ids = [row.exit_id for row in active]
        return await self.settle_exits(active, await self.call_broker("sync_exits", lambda: self.broker.get_exits(ids)))

    async def settle_exits(
        self, active: list[JournaledExit], exits: list[ExitOrder], orders: list[Order] | None = None
    ) -> list[ExitOrder]:
        """`sync_exits` on the broker's `exits`; `orders` is the order book when the caller has it
        (else it is read when a fired exit needs it)."""
        at_broker = {e.exit_id: e for e in exits}
        book = {o.broker_order_id: o for o in orders if o.broker_order_id} if orders is not None else None
        fired_legs = [e.triggered_order_id for e in (at_broker.get(row.exit_id) for row in active)
                      if e is not None and e.status in _FIRED and e.triggered_order_id is not None]
        if book is None and len(fired_legs) == 1:  # one leg to read: one order, cheaper than the whole book
            leg_id = fired_legs[0]
            found = await self.call_broker("sync_exits", lambda: self.broker.get_order(leg_id))
            book = {leg_id: found} if found is not None else {}
        settled: list[ExitOrder] = []
        for row in active:
            current = at_broker.get(row.exit_id)
            if current is None:
                current = dataclasses.replace(gtt_to_exit(row), status=ExitStatus.CANCELLED)
                self.journal.event(row.tag, "EXIT_MISSING", exit_id=row.exit_id)
            elif current.status is ExitStatus.ACTIVE:
                continue
            elif current.status in _FIRED:
                if current.triggered_order_id is None:
                    continue  # fired but its order not yet visible: settle on a later call
                if book is None:
                    orders = await self.call_broker("sync_exits", self.broker.list_orders)
                    book = {o.broker_order_id: o for o in orders if o.broker_order_id}
                leg = book.get(current.triggered_order_id)
                if leg is None:
                    continue
                # journaled while it works too: a leg that gapped through its limit is chased from there
                leg_order = await self._journal_triggered_leg(row.exit_id, leg)
                if not leg_order.status.is_terminal:
                    continue
                current.exit_price = leg_order.average_price if leg_order.filled_quantity else None
                current.exit_quantity = leg_order.filled_quantity
            current.tag = row.tag
            self.journal.save_gtt(current, tag=row.tag)
            self.journal.event(row.tag, "EXIT_SETTLED", exit_id=row.exit_id, status=current.status.value,
                               exit_price=current.exit_price, exit_quantity=current.exit_quantity,
                               message=current.message)
            if current.message:  # e.g. why Kite refused to place the fired leg's order
                log.warning("exit %s (%s) settled %s: %s", row.exit_id, row.tag, current.status, current.message)
            settled.append(current)
        return settled

    async def _journal_triggered_leg(self, exit_id: str, leg: Order) -> Order:
        client_order_id = triggered_order_id(exit_id)
        if self.journal.get(client_order_id) is None:
            adopted = dataclasses.replace(leg, client_order_id=client_order_id, status=OrderStatus.OPEN,
                                          filled_quantity=0, average_price=0.0)
            symbol = self.journal.symbol_of(leg.instrument_key) or leg.instrument_key
            self.journal.record_external(adopted, symbol=symbol, purpose=OrderPurpose.EXIT.value)
        return await self.absorb(client_order_id, leg)

    # reconciliation ---------------------------------------------------------------------------
    async def reconcile(self) -> ReconcileReport:
        """Database vs broker orders, positions and exits, resolved by the rules in
        `engine.execution.reconcile`."""
        return await reconcile(self)
