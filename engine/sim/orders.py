"""What the simulated exchange holds: orders, their fills, and GTTs (good-till-triggered rules)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from engine.models import OrderStatus, OrderType, Side


class RejectCode(enum.StrEnum):
    """Why the exchange refused an order (each venue's codec words it in its own message)."""

    INSUFFICIENT_HOLDINGS = "INSUFFICIENT_HOLDINGS"
    MARKET_PROTECTION = "MARKET_PROTECTION"
    RATE_LIMIT = "RATE_LIMIT"
    LOT_SIZE = "LOT_SIZE"


@dataclass(slots=True)
class SimOrder:
    order_id: str
    instrument_key: str
    side: Side
    quantity: int
    order_type: OrderType
    product: str  # the venue's product code ("CNC", "MIS", "D", "I"…)
    placed_at: datetime
    price: float | None = None  # the limit of a LIMIT / SL order
    trigger_price: float | None = None  # SL / SL-M
    market_protection: float | None = None  # percent: a MARKET / SL-M fills no worse than last ± this
    tag: str | None = None
    gtt_id: str | None = None  # the GTT whose leg placed it
    status: OrderStatus = OrderStatus.OPEN
    filled_quantity: int = 0
    average_price: float = 0.0
    triggered: bool = False  # an SL / SL-M order's trigger was crossed (it stays triggered)
    protection_bound: float | None = None  # worst price a protected MARKET / SL-M order accepts
    armed: bool = True  # False until a traded price after arrival (fill model `fills_at_next_tick`)
    reason: str = ""  # why it was rejected, cancelled or expired
    reject_code: RejectCode | None = None
    updated_at: datetime | None = None

    @property
    def pending_quantity(self) -> int:
        return 0 if self.status.is_terminal else self.quantity - self.filled_quantity

    @property
    def is_working(self) -> bool:
        return not self.status.is_terminal

    @property
    def trigger_pending(self) -> bool:
        return self.order_type in (OrderType.SL, OrderType.SL_M) and not self.triggered and self.is_working

    @property
    def cancelled_quantity(self) -> int:
        return self.quantity - self.filled_quantity if self.status is OrderStatus.CANCELLED else 0


@dataclass(slots=True)
class SimFill:
    fill_id: str
    order_id: str
    instrument_key: str
    side: Side
    product: str
    quantity: int
    price: float
    fee: float
    ts: datetime


class TriggerDirection(enum.StrEnum):
    ABOVE = "ABOVE"  # fires when the traded price is at or above the trigger
    BELOW = "BELOW"  # at or below
    IMMEDIATE = "IMMEDIATE"  # at the first traded price once armed

    def crossed(self, price: float, trigger: float) -> bool:
        if self is TriggerDirection.ABOVE:
            return price >= trigger
        if self is TriggerDirection.BELOW:
            return price <= trigger
        return True


class LegState(enum.StrEnum):
    PENDING = "PENDING"  # waits for the GTT's entry leg to complete
    SCHEDULED = "SCHEDULED"  # armed: fires when its trigger is crossed
    TRIGGERED = "TRIGGERED"  # fired: its order was placed and works
    COMPLETED = "COMPLETED"  # its order filled
    FAILED = "FAILED"  # its order was rejected or cancelled
    CANCELLED = "CANCELLED"  # cancelled (by the user, or because another leg fired)

    @property
    def waiting(self) -> bool:
        return self in _WAITING

    @property
    def fired(self) -> bool:
        return self in _FIRED


# sets, not tuples of `LegState.X`: a member looked up on the class costs more than the whole test (GTT sync)
_WAITING = frozenset({LegState.PENDING, LegState.SCHEDULED})
_FIRED = frozenset({LegState.TRIGGERED, LegState.COMPLETED, LegState.FAILED})


@dataclass(slots=True)
class GttLeg:
    """One rule of a GTT: when the price crosses `trigger_price` in `direction`, place a LIMIT
    order of `side` at `limit_price` (None: at the traded price that fired it)."""

    name: str  # "stop", "target", "entry"…: the venue's name for the rule
    direction: TriggerDirection
    trigger_price: float
    side: Side
    limit_price: float | None = None
    state: LegState = LegState.SCHEDULED
    order_id: str | None = None
    triggered_at_price: float | None = None
    message: str = ""


@dataclass(slots=True)
class SimGtt:
    """A GTT: its exit legs are one-cancels-the-other. With `has_entry`, legs[0] is an entry rule
    and the other legs stay PENDING until its order filled (Upstox's MULTIPLE GTT)."""

    gtt_id: str
    instrument_key: str
    quantity: int
    product: str
    legs: list[GttLeg]
    created_at: datetime
    has_entry: bool = False
    tag: str | None = None
    updated_at: datetime | None = None
    deleted: bool = False

    @property
    def exit_legs(self) -> list[GttLeg]:
        return self.legs[1:] if self.has_entry else self.legs

    @property
    def active(self) -> bool:
        return not self.deleted and any(leg.state.waiting for leg in self.legs)

    @property
    def fired_leg(self) -> GttLeg | None:
        """The exit leg that fired, if any."""
        return next((leg for leg in self.exit_legs if leg.state.fired), None)


@dataclass(slots=True)
class Holding:
    quantity: int
    average_price: float
