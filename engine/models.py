"""Domain model shared by every part of the engine.

Prices are floats on the instrument's tick grid (see `Instrument.round_price`); quantities are
whole lots. Times are tz-aware (Asia/Kolkata) except on the hot tick path, where `Tick.ltt_ms`
holds epoch milliseconds to keep decoding cheap.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(enum.StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    SL = "SL"
    SL_M = "SL-M"


class Product(enum.StrEnum):
    CNC = "CNC"  # delivery
    MIS = "MIS"  # intraday


class OrderPurpose(enum.StrEnum):
    ENTRY = "ENTRY"
    EXIT = "EXIT"


class OrderStatus(enum.StrEnum):
    """Order state machine; see `engine.brokers.journal` for the allowed transitions."""

    PENDING = "PENDING"  # written to the journal, not yet sent
    SUBMITTED = "SUBMITTED"  # sent, broker has not answered (or answer lost)
    OPEN = "OPEN"  # accepted by the broker, working
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def is_terminal(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)


class ExitStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    TRIGGERED_STOP = "TRIGGERED_STOP"
    TRIGGERED_TARGET = "TRIGGERED_TARGET"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def is_terminal(self) -> bool:
        return self is not ExitStatus.ACTIVE


class SetupStatus(enum.StrEnum):
    """A setup's life in the `setups` table: found, then executed, skipped or expired at the day's end."""

    CANDIDATE = "CANDIDATE"
    EXECUTED = "EXECUTED"
    SKIPPED = "SKIPPED"
    EXPIRED = "EXPIRED"


class PositionStatus(enum.StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


class StageStatus(enum.StrEnum):
    """A trading-day stage's checkpoint (`session_state`)."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    INTERRUPTED = "INTERRUPTED"  # the flow was cancelled or crashed; a re-run resumes it


class Timeframe(enum.StrEnum):
    MIN5 = "5min"
    DAY = "1d"
    WEEK = "1w"
    MONTH = "1mo"


class MarketStatus(enum.StrEnum):
    """Segment status as carried by Upstox's market_info."""

    PRE_OPEN_START = "PRE_OPEN_START"
    PRE_OPEN_END = "PRE_OPEN_END"
    NORMAL_OPEN = "NORMAL_OPEN"
    NORMAL_CLOSE = "NORMAL_CLOSE"
    CLOSING_START = "CLOSING_START"
    CLOSING_END = "CLOSING_END"


@dataclass(frozen=True, slots=True)
class Instrument:
    instrument_key: str  # Upstox key, e.g. "NSE_EQ|INE002A01018"
    symbol: str  # NSE trading symbol, e.g. "RELIANCE"
    isin: str
    tick_size: float = 0.05  # rupees
    lot_size: int = 1
    kite_token: int | None = None  # Kite instrument_token
    exchange_token: str | None = None
    name: str = ""

    def round_price(self, price: float, direction: str = "nearest") -> float:
        """Snap a price to the tick grid: direction is "nearest", "down" or "up"."""
        steps = price / self.tick_size
        if direction == "down":
            n = math.floor(steps + 1e-9)
        elif direction == "up":
            n = math.ceil(steps - 1e-9)
        else:
            n = round(steps)
        return round(n * self.tick_size, 2)

    def on_tick_grid(self, price: float) -> bool:
        return abs(self.round_price(price) - price) < 1e-6

    def whole_lots(self, quantity: float) -> int:
        """Largest whole-lot quantity not above `quantity` (never negative)."""
        if quantity <= 0:
            return 0
        return int(quantity // self.lot_size) * self.lot_size


@dataclass(slots=True)
class Tick:
    """One market data update for one instrument (hot path: keep cheap)."""

    instrument_key: str
    ltp: float
    ltt_ms: int  # last trade time, epoch milliseconds
    ltq: int = 0
    volume: int = 0  # cumulative traded volume today (vtt)
    close_prev: float = 0.0  # previous day's close (cp)
    day_open: float = 0.0
    day_high: float = 0.0
    day_low: float = 0.0
    atp: float = 0.0
    oi: float = 0.0
    bid: float = 0.0
    ask: float = 0.0

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.ltt_ms / 1000, IST)


@dataclass(frozen=True, slots=True)
class Bar:
    """An OHLCV bar; `ts` is the bar's start (midnight IST for daily and longer bars)."""

    symbol: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int
    timeframe: Timeframe = Timeframe.DAY

    @property
    def day(self) -> date:
        return self.ts.astimezone(IST).date()

    def is_consistent(self) -> bool:
        return (
            self.low > 0
            and self.low <= min(self.open, self.close)
            and self.high >= max(self.open, self.close)
            and self.volume >= 0
        )


@dataclass(frozen=True, slots=True)
class RuleResult:
    name: str
    passed: bool
    observed: str  # the values seen, readable in the daily report


@dataclass(slots=True)
class Setup:
    """A strategy's proposal to enter: validated, sized and executed (or not) later."""

    instrument_key: str
    symbol: str
    side: Side
    entry: float
    stop: float
    target: float
    score: float
    reason: str
    strategy: str
    found_at: datetime
    rules: list[RuleResult] = field(default_factory=list)

    @property
    def risk_per_share(self) -> float:
        return abs(self.entry - self.stop)


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What we mean to send; journaled before it is sent. `client_order_id` is the idempotency key
    and goes to the broker as the order tag (max 20 characters, Kite's limit)."""

    client_order_id: str
    instrument: Instrument
    side: Side
    quantity: int
    order_type: OrderType = OrderType.MARKET
    price: float | None = None
    trigger_price: float | None = None
    product: Product = Product.CNC
    purpose: OrderPurpose = OrderPurpose.ENTRY
    # percent: a MARKET / SL-M order fills no worse than the last price ± this (Kite requires it since
    # April 2026); None lets the broker adapter apply its configured default
    market_protection: float | None = None


@dataclass(slots=True)
class Order:
    client_order_id: str
    instrument_key: str
    side: Side
    quantity: int
    status: OrderStatus
    broker_order_id: str | None = None
    order_type: OrderType = OrderType.MARKET
    price: float | None = None
    trigger_price: float | None = None
    filled_quantity: int = 0
    average_price: float = 0.0
    message: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    fill_id: str
    client_order_id: str
    broker_order_id: str
    instrument_key: str
    side: Side
    quantity: int
    price: float
    ts: datetime


@dataclass(frozen=True, slots=True)
class ExitRequest:
    """A two-leg OCO exit (GTT) protecting an open long: stop below, target above.
    `*_limit` are the LIMIT prices of the triggered orders (Kite GTTs place LIMIT orders only)."""

    instrument: Instrument
    quantity: int
    stop_trigger: float
    stop_limit: float
    target_trigger: float
    target_limit: float
    last_price: float
    tag: str  # our id for the exit; lets a retry find what an earlier attempt created


@dataclass(slots=True)
class ExitOrder:
    exit_id: str  # broker's GTT id
    instrument_key: str
    quantity: int
    stop_trigger: float
    stop_limit: float
    target_trigger: float
    target_limit: float
    status: ExitStatus = ExitStatus.ACTIVE
    tag: str = ""
    updated_at: datetime | None = None
    triggered_order_id: str | None = None  # broker order the triggered leg placed
    exit_price: float | None = None  # average fill price of that order, once known
    exit_quantity: int | None = None  # what that order sold, once known (less than `quantity`: partly filled)
    message: str = ""  # why the broker refused it, e.g. the reason a fired leg's order was rejected


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    instrument_key: str
    quantity: int
    average_price: float


@dataclass(slots=True)
class Position:
    instrument_key: str
    symbol: str
    quantity: int
    average_price: float
    stop: float
    target: float
    opened_at: datetime
    entry_client_order_id: str
    exit_id: str | None = None


@dataclass(frozen=True, slots=True)
class Trade:
    instrument_key: str
    symbol: str
    side: Side
    quantity: int
    entry_time: datetime
    entry_price: float
    exit_time: datetime
    exit_price: float
    gross_pnl: float
    charges: float
    net_pnl: float
    exit_reason: str
