"""What goes through the trading engine's one queue (events in) and what it asks of the broker side
(commands out).

Inputs (ticks, the entry-window trigger, market status, the order/exit timers) and the answers to
commands are events; one owner handles them in order. A command is a broker call (through the
order manager) that never touches trading state: it returns an answer event, or its `failed`
builds one from the error, and that event is handled by the owner like any other."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from engine.execution.reconcile import ReconcileReport
from engine.models import ExitOrder, ExitRequest, MarketStatus, Order, OrderIntent, Tick
from engine.risk.limits import EntryDecision
from engine.trading.summary import DaySummary


class OrderManagerLike(Protocol):
    """The part of `engine.execution.manager.OrderManager` the engine uses."""

    async def submit(self, intent: OrderIntent, *, setup_id: int | None = None) -> Order: ...
    async def refresh(self, client_order_id: str) -> Order: ...
    async def cancel(self, client_order_id: str) -> Order: ...
    async def place_exit(self, request: ExitRequest, *, position_id: int | None = None) -> ExitOrder: ...
    async def cancel_exit(self, exit_id: str) -> None: ...
    async def sync_exits(self) -> list[ExitOrder]: ...
    async def reconcile(self) -> ReconcileReport: ...


# ---- inputs ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Resume:
    """Rebuild the day's state from the database (always the first event an engine handles)."""


@dataclass(slots=True)
class TicksArrived:
    ticks: list[Tick]


@dataclass(slots=True)
class MarketStatusChanged:
    status: MarketStatus


@dataclass(slots=True)
class EntryWindowDue:
    reply: asyncio.Future[list[EntryDecision]]


@dataclass(slots=True)
class OrdersDue:
    """Timer: follow working orders and sync the exits (`force`: now, whatever the intervals)."""

    force: bool = False


@dataclass(slots=True)
class ReconcileDue:
    reply: asyncio.Future[ReconcileReport]


@dataclass(slots=True)
class DayEnding:
    reply: asyncio.Future[DaySummary]


# ---- answers to commands -------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Answer:
    """A command's result; `error` is set when the broker call failed (the owner counts it)."""

    error: Exception | None = None


@dataclass(slots=True, kw_only=True)
class FundsAnswered(Answer):
    funds: float | None
    reply: asyncio.Future[list[EntryDecision]]


@dataclass(slots=True, kw_only=True)
class EntryAnswered(Answer):
    client_order_id: str
    order: Order | None  # None: the call failed; the entry stays pending and is polled again
    halt_reason: str = ""  # the broker refused our token: no more entries today


@dataclass(slots=True, kw_only=True)
class ExitPlaced(Answer):
    position_id: int
    exit_id: str | None  # None: refused, the engine watches stop and target itself


@dataclass(slots=True, kw_only=True)
class ExitCancelled(Answer):
    position_id: int
    exit_id: str
    cancelled: bool  # False: it fired meanwhile (or the call failed): a sync settles it
    reason: str  # why we exit


@dataclass(slots=True, kw_only=True)
class ExitOrderAnswered(Answer):
    position_id: int
    client_order_id: str
    order: Order | None  # None: the call failed
    never_sent: bool = False  # the failed call was the submit: exit again later under a new id


@dataclass(slots=True, kw_only=True)
class ExitsSynced(Answer):
    settled: dict[str, ExitOrder] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class Reconciled(Answer):
    report: ReconcileReport | None
    reply: asyncio.Future[ReconcileReport]


Event = (
    Resume | TicksArrived | MarketStatusChanged | EntryWindowDue | OrdersDue | ReconcileDue | DayEnding
    | FundsAnswered | EntryAnswered | ExitPlaced | ExitCancelled | ExitOrderAnswered | ExitsSynced | Reconciled
)


@dataclass(frozen=True, slots=True)
class Command:
    """One broker call: `call` returns the answer event, `failed` turns its error into one."""

    what: str
    call: Callable[[], Awaitable[Event]]
    failed: Callable[[Exception], Event]


Issue = Callable[[Command], Awaitable[None]]
