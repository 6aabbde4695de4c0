"""Positions in the database (table `positions`), the active-positions filter and the trade log.

`PositionBook` is the in-memory view of the open positions, loaded from the database at start
(so a restart knows what it holds) and written through on every change. It is the only code that
changes an `OpenPosition` or the `open` map: the trading engine calls its methods (mark, begin or
fail an exit, set the GTT, reduce, close, drop). Closing a position writes a `trades` row with
gross and net P&L after charges; so does reducing it (an exit that sold part of it), for the part sold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine
from sqlmodel import col, select

from engine.models import IST, Instrument, Position, Side, Trade
from engine.portfolio.charges import ChargeCalculator
from engine.portfolio.times import from_db, to_db
from engine.storage import session_scope
from engine.storage.tables import PositionRow, TradeRow


@dataclass(slots=True)
class OpenPosition:
    id: int
    instrument: Instrument
    quantity: int
    average_price: float
    stop: float
    target: float
    opened_at: datetime
    entry_client_order_id: str
    initial_risk: float
    exit_id: str | None = None
    reference_price: float = 0.0  # today's P&L is measured from here (entry, or the previous close)
    last_price: float = 0.0
    exit_client_order_id: str | None = None  # an exit order we sent ourselves, pending
    exit_reason: str = ""
    exit_attempts: int = 0  # exit orders we sent ourselves (each under its own id)

    @property
    def key(self) -> str:
        return self.instrument.instrument_key

    @property
    def day_pnl(self) -> float:
        """Unrealised P&L since the reference price (gross)."""
        price = self.last_price or self.reference_price
        return self.quantity * (price - self.reference_price)

    def as_position(self) -> Position:
        return Position(
            instrument_key=self.key,
            symbol=self.instrument.symbol,
            quantity=self.quantity,
            average_price=self.average_price,
            stop=self.stop,
            target=self.target,
            opened_at=self.opened_at,
            entry_client_order_id=self.entry_client_order_id,
            exit_id=self.exit_id,
        )


def exit_trigger(position: OpenPosition, price: float) -> str | None:
    """"stop" when the price is at or below the stop, "target" at or above the target."""
    if price <= position.stop:
        return "stop"
    if price >= position.target:
        return "target"
    return None


def _open_position_from(row: PositionRow, instrument: Instrument) -> OpenPosition:
    assert row.id is not None
    return OpenPosition(
        id=row.id,
        instrument=instrument,
        quantity=row.quantity,
        average_price=row.average_price,
        stop=row.stop,
        target=row.target,
        opened_at=from_db(row.opened_at),
        entry_client_order_id=row.entry_client_order_id,
        initial_risk=row.initial_risk,
        exit_id=row.exit_id,
        reference_price=row.average_price,
    )


class PositionBook:
    def __init__(self, db: Engine, charges: ChargeCalculator, instruments: dict[str, Instrument]) -> None:
        self.db = db
        self.charges = charges
        self.instruments = instruments
        self.open: dict[str, OpenPosition] = {}

    def load(self) -> list[OpenPosition]:
        """Read every OPEN position from the database (instruments we no longer trade included,
        as far as the instrument list knows them)."""
        self.open.clear()
        with session_scope(self.db) as session:
            rows = session.exec(select(PositionRow).where(PositionRow.status == "OPEN")).all()
        for row in rows:
            instrument = self.instruments.get(row.instrument_key) or Instrument(row.instrument_key, row.symbol, "")
            self.open[row.instrument_key] = _open_position_from(row, instrument)
        return list(self.open.values())

    def holds(self, instrument_key: str) -> bool:
        return instrument_key in self.open

    def by_id(self, position_id: int) -> OpenPosition | None:
        """The open position with this id (None once it closed: a late answer about it is moot)."""
        return next((p for p in self.open.values() if p.id == position_id), None)

    def exiting(self) -> list[OpenPosition]:
        """Open positions with an exit order of our own still working."""
        return [p for p in self.open.values() if p.exit_client_order_id is not None]

    def entry_order_ids(self) -> set[str]:
        """The entry orders that opened a position (open or closed, any day)."""
        with session_scope(self.db) as session:
            return set(session.exec(select(PositionRow.entry_client_order_id)).all())

    def mark(self, position: OpenPosition, last_price: float, *, reference_price: float | None = None) -> None:
        """The latest price (and, on the first tick of a later day, the previous close that today's
        P&L is measured from)."""
        if reference_price is not None:
            position.reference_price = reference_price
        position.last_price = last_price

    def begin_exit(self, position: OpenPosition, client_order_id: str, reason: str, *, attempt: int) -> None:
        """Exit order number `attempt` of our own is on its way (each attempt under its own id)."""
        position.exit_attempts = attempt
        position.exit_client_order_id = client_order_id
        position.exit_reason = reason

    def exit_failed(self, position: OpenPosition) -> None:
        """Our exit order was refused or ended unfilled: the position is still open, exited again later."""
        position.exit_client_order_id = None

    def drop_closed_elsewhere(self) -> list[OpenPosition]:
        """Forget the positions the database no longer holds OPEN (reconciliation closed them, e.g.
        sold by hand at the broker); returns them."""
        with session_scope(self.db) as session:
            still_open = set(session.exec(select(PositionRow.id).where(PositionRow.status == "OPEN")).all())
        dropped = [p for p in self.open.values() if p.id not in still_open]
        for position in dropped:
            self.open.pop(position.key, None)
        return dropped

    def open_position(
        self,
        instrument: Instrument,
        quantity: int,
        average_price: float,
        stop: float,
        target: float,
        opened_at: datetime,
        entry_client_order_id: str,
    ) -> OpenPosition:
        if instrument.instrument_key in self.open:
            raise ValueError(f"{instrument.symbol} already has an open position")
        initial_risk = round(quantity * (average_price - stop), 2)
        row = PositionRow(
            instrument_key=instrument.instrument_key,
            symbol=instrument.symbol,
            quantity=quantity,
            average_price=average_price,
            stop=stop,
            target=target,
            opened_at=to_db(opened_at),
            entry_client_order_id=entry_client_order_id,
            initial_risk=initial_risk,
        )
        with session_scope(self.db) as session:
            session.add(row)
            session.flush()
            position = _open_position_from(row, instrument)
        self.open[instrument.instrument_key] = position
        return position

    def set_exit(self, position: OpenPosition, exit_id: str | None) -> None:
        position.exit_id = exit_id
        with session_scope(self.db) as session:
            row = session.get(PositionRow, position.id)
            if row is not None:
                row.exit_id = exit_id
                session.add(row)

    def close(
        self, position: OpenPosition, exit_price: float, exit_time: datetime, reason: str, trading_day: date
    ) -> Trade:
        """Close the position at `exit_price`: mark it CLOSED and log the trade with P&L."""
        trade = self._trade(position, position.quantity, exit_price, exit_time, reason)
        with session_scope(self.db) as session:
            row = session.get(PositionRow, position.id)
            if row is not None:
                row.status = "CLOSED"
                row.closed_at = to_db(exit_time)
                session.add(row)
            session.add(_trade_row(trade, position.id, trading_day))
        self.open.pop(position.key, None)
        return trade

    def reduce(
        self, position: OpenPosition, sold: int, exit_price: float, exit_time: datetime, reason: str,
        trading_day: date,
    ) -> Trade:
        """An exit sold `sold` shares of the position (fewer than it holds) at `exit_price`: log that
        trade and keep the rest open, its quantity and initial risk reduced."""
        if not 0 < sold < position.quantity:
            raise ValueError(f"{position.instrument.symbol}: a reduction sells 1..{position.quantity - 1}, got {sold}")
        trade = self._trade(position, sold, exit_price, exit_time, reason)
        position.initial_risk = round(position.initial_risk * (position.quantity - sold) / position.quantity, 2)
        position.quantity -= sold
        with session_scope(self.db) as session:
            row = session.get(PositionRow, position.id)
            if row is not None:
                row.quantity, row.initial_risk = position.quantity, position.initial_risk
                session.add(row)
            session.add(_trade_row(trade, position.id, trading_day))
        return trade

    def _trade(self, position: OpenPosition, quantity: int, exit_price: float, exit_time: datetime,
               reason: str) -> Trade:
        # Dated: the day's rates, intraday rates for a same-day round trip, a DP charge for a later sell.
        gross, charges, net = self.charges.trade_pnl(quantity, position.average_price, exit_price,
                                                     entry_day=position.opened_at.astimezone(IST).date(),
                                                     exit_day=exit_time.astimezone(IST).date())
        return Trade(
            instrument_key=position.key,
            symbol=position.instrument.symbol,
            side=Side.BUY,
            quantity=quantity,
            entry_time=position.opened_at,
            entry_price=position.average_price,
            exit_time=exit_time,
            exit_price=exit_price,
            gross_pnl=gross,
            charges=charges,
            net_pnl=net,
            exit_reason=reason,
        )

    def trades_of(self, trading_day: date) -> list[Trade]:
        """The trades closed on `trading_day` (also those of an earlier process that day)."""
        with session_scope(self.db) as session:
            rows = session.exec(
                select(TradeRow).where(TradeRow.trading_day == trading_day).order_by(col(TradeRow.exit_time))
            ).all()
        return [
            Trade(row.instrument_key, row.symbol, Side(row.side), row.quantity, from_db(row.entry_time),
                  row.entry_price, from_db(row.exit_time), row.exit_price, row.gross_pnl, row.charges, row.net_pnl,
                  row.exit_reason)
            for row in rows
        ]


def _trade_row(trade: Trade, position_id: int, trading_day: date) -> TradeRow:
    return TradeRow(position_id=position_id, instrument_key=trade.instrument_key, symbol=trade.symbol,
                    side=trade.side.value, quantity=trade.quantity, entry_time=to_db(trade.entry_time),
                    entry_price=trade.entry_price, exit_time=to_db(trade.exit_time), exit_price=trade.exit_price,
                    gross_pnl=trade.gross_pnl, charges=trade.charges, net_pnl=trade.net_pnl,
                    exit_reason=trade.exit_reason, trading_day=trading_day)
