"""Database tables (SQLModel). One schema for SQLite and PostgreSQL.

Instants are one column type, `UTCDateTime` (aware UTC in and out); JSON details as text (portable across both)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from engine.models import ExitStatus, OrderStatus, PositionStatus, SetupStatus
from engine.storage.columns import UTCDateTime


class InstrumentRow(SQLModel, table=True):
    __tablename__ = "instruments"
    instrument_key: str = Field(primary_key=True)
    symbol: str = Field(index=True, unique=True)
    isin: str
    name: str = ""
    tick_size: float = 0.05
    lot_size: int = 1
    kite_token: int | None = None
    exchange_token: str | None = None
    shares_outstanding: float | None = None
    market_cap_cr: float | None = None
    history_complete: bool = True
    in_universe: bool = False
    updated_on: date | None = None


class SetupRow(SQLModel, table=True):
    __tablename__ = "setups"
    id: int | None = Field(default=None, primary_key=True)
    trading_day: date = Field(index=True)
    found_at: datetime = Field(sa_type=UTCDateTime)
    instrument_key: str = Field(index=True)
    symbol: str
    strategy: str
    side: str
    entry: float
    stop: float
    target: float
    score: float
    reason: str
    rules_json: str = "[]"  # [{"name", "passed", "observed"}]
    status: str = SetupStatus.CANDIDATE.value
    status_reason: str = ""
    quantity: int = 0
    client_order_id: str | None = None


class OrderRow(SQLModel, table=True):
    """The order journal: written before an order is sent (write-ahead)."""

    __tablename__ = "orders"
    client_order_id: str = Field(primary_key=True)
    trading_day: date = Field(index=True)
    broker: str
    broker_order_id: str | None = Field(default=None, index=True)
    instrument_key: str = Field(index=True)
    symbol: str
    side: str
    quantity: int
    order_type: str
    price: float | None = None
    trigger_price: float | None = None
    product: str = "CNC"
    purpose: str = "ENTRY"
    status: str = Field(default=OrderStatus.PENDING.value, index=True)
    filled_quantity: int = 0
    average_price: float = 0.0
    message: str = ""
    setup_id: int | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class OrderEventRow(SQLModel, table=True):
    """Every attempt, response and state change of an order, with times."""

    __tablename__ = "order_events"
    id: int | None = Field(default=None, primary_key=True)
    client_order_id: str = Field(index=True)
    ts: datetime = Field(sa_type=UTCDateTime)
    kind: str  # INTENT | ATTEMPT | RESPONSE | ERROR | STATUS | RECONCILE
    detail_json: str = "{}"


class FillRow(SQLModel, table=True):
    __tablename__ = "fills"
    fill_id: str = Field(primary_key=True)
    client_order_id: str = Field(index=True)
    broker_order_id: str
    instrument_key: str
    side: str
    quantity: int
    price: float
    ts: datetime = Field(sa_type=UTCDateTime)


class PositionRow(SQLModel, table=True):
    __tablename__ = "positions"
    id: int | None = Field(default=None, primary_key=True)
    instrument_key: str = Field(index=True)
    symbol: str
    quantity: int
    average_price: float
    stop: float
    target: float
    status: str = Field(default=PositionStatus.OPEN.value, index=True)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    entry_client_order_id: str
    exit_id: str | None = None
    initial_risk: float = 0.0


class TradeRow(SQLModel, table=True):
    __tablename__ = "trades"
    id: int | None = Field(default=None, primary_key=True)
    position_id: int | None = Field(default=None, index=True)
    instrument_key: str = Field(index=True)
    symbol: str
    side: str
    quantity: int
    entry_time: datetime = Field(sa_type=UTCDateTime)
    entry_price: float
    exit_time: datetime = Field(sa_type=UTCDateTime)
    exit_price: float
    gross_pnl: float
    charges: float
    net_pnl: float
    exit_reason: str
    trading_day: date = Field(index=True)


class GttRow(SQLModel, table=True):
    __tablename__ = "gtts"
    exit_id: str = Field(primary_key=True)
    broker: str
    tag: str = Field(index=True)
    instrument_key: str = Field(index=True)
    position_id: int | None = None
    quantity: int
    stop_trigger: float
    stop_limit: float
    target_trigger: float
    target_limit: float
    status: str = ExitStatus.ACTIVE.value
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class RiskLedgerRow(SQLModel, table=True):
    """One row per trading day: the daily risk budget and what was used of it."""

    __tablename__ = "risk_ledger"
    trading_day: date = Field(primary_key=True)
    capital: float
    daily_risk_cap: float
    risk_used: float = 0.0
    realized_pnl: float = 0.0
    entries: int = 0
    kill_switch: bool = False
    kill_reason: str = ""
    updated_at: datetime = Field(sa_type=UTCDateTime)


class SessionStateRow(SQLModel, table=True):
    """Checkpoints of each trading-day stage, so a re-run resumes instead of starting over."""

    __tablename__ = "session_state"
    trading_day: date = Field(primary_key=True)
    stage: str = Field(primary_key=True)  # pre_open | live_session | post_close
    status: str  # a StageStatus
    checkpoint_json: str = "{}"
    updated_at: datetime = Field(sa_type=UTCDateTime)


class SchemaVersionRow(SQLModel, table=True):
    __tablename__ = "schema_version"
    version: int = Field(primary_key=True)
    applied_at: datetime = Field(sa_type=UTCDateTime)
    description: str


class NotificationRow(SQLModel, table=True):
    """One row per notification key (engine/notify): claimed before sending, so a restart never sends
    the same event twice."""

    __tablename__ = "notifications"
    key: str = Field(primary_key=True)  # e.g. "entry:<entry client order id>", "summary:<day>"
    sent_at: datetime = Field(sa_type=UTCDateTime)
    channel: str  # the channels it went to, comma-separated ("webhook", "block:slack-webhook/desk")
    status: str  # SENDING (claimed) | SENT | FAILED


class CorporateActionRow(SQLModel, table=True):
    """The journal of splits and bonuses (engine/data/corporate_actions.py): one row per symbol and ex-date,
    written before anything is rebased, so an action is applied at most once and a crash resumes its steps."""

    __tablename__ = "corporate_actions"
    __table_args__ = (UniqueConstraint("symbol", "ex_date"),)
    id: int | None = Field(default=None, primary_key=True)
    symbol: str = Field(index=True)
    ex_date: date
    factor: float  # new shares per old share: prices / factor, quantities x factor
    kind: str  # split | bonus | adjustment (seen in the broker's candles only)
    source: str  # file | candles
    status: str = "PENDING"  # PENDING (steps left) | APPLIED
    detected_on: date
    applied_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rebased_json: str = "{}"  # what was rebased, step by step: {"done": [...], "bars": ..., "positions": ...}
