"""Positions in the database (table `positions`), the active-positions filter and the trade log.

`PositionBook` is the in-memory view of the open positions, loaded from the database at start
(so a restart knows what it holds) and written through the positions repository
(`engine.storage.positions`) on every change. It is the only code that changes an `OpenPosition` or the
`open` map: the trading engine calls its methods (mark, begin or fail an exit, set the GTT, reduce, close,
book what was sold outside autotrader). Closing a position writes a `trades` row with gross and net P&L
after charges; so does reducing it (an exit that sold part of it), for the part sold."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime

from engine.execution.reconcile import ReconcileReport, SoldByHand
from engine.models import IST, Instrument, Position, Side, Trade
from engine.portfolio.charges import ChargeCalculator
from engine.storage.memory import Database
from engine.storage.positions import PositionRecord, position_store

CLOSED_BY_HAND = "closed_by_hand"  # the exit reason of a trade made outside autotrader


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


def _open_position_from(record: PositionRecord, instrument: Instrument) -> OpenPosition:
    return OpenPosition(
        id=record.id,
        instrument=instrument,
        quantity=record.quantity,
        average_price=record.average_price,
        stop=record.stop,
        target=record.target,
        opened_at=record.opened_at,
        entry_client_order_id=record.entry_client_order_id,
        initial_risk=record.initial_risk,
        exit_id=record.exit_id,
        reference_price=record.average_price,
    )


class PositionBook:
    def __init__(self, db: Database, charges: ChargeCalculator, instruments: dict[str, Instrument]) -> None:
        self.db = db
        self.store = position_store(db)
        self.charges = charges
        self.instruments = instruments
        self.open: dict[str, OpenPosition] = {}

    def load(self) -> list[OpenPosition]:
        """Read every OPEN position from the database (instruments we no longer trade included,
        as far as the instrument list knows them)."""
        self.open.clear()
        for record in self.store.open_positions():
            instrument = self.instruments.get(record.instrument_key) or Instrument(record.instrument_key,
                                                                                   record.symbol, "")
            self.open[record.instrument_key] = _open_position_from(record, instrument)
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
        return self.store.entry_order_ids()

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
        record = PositionRecord(
            instrument_key=instrument.instrument_key,
            symbol=instrument.symbol,
            quantity=quantity,
            average_price=average_price,
            stop=stop,
            target=target,
            opened_at=opened_at.astimezone(IST),
            entry_client_order_id=entry_client_order_id,
            initial_risk=initial_risk,
        )
        position = _open_position_from(replace(record, id=self.store.add(record)), instrument)
        self.open[instrument.instrument_key] = position
        return position

    def set_exit(self, position: OpenPosition, exit_id: str | None) -> None:
        position.exit_id = exit_id
        self.store.update(position.id, exit_id=exit_id)

    def close(
        self, position: OpenPosition, exit_price: float, exit_time: datetime, reason: str, trading_day: date
    ) -> Trade:
        """Close the position at `exit_price`: mark it CLOSED and log the trade with P&L."""
        trade = self._trade(position, position.quantity, exit_price, exit_time, reason)
        self.store.close(position.id, exit_time, trade, trading_day)
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
        self.store.reduce(position.id, position.quantity, position.initial_risk, trade, trading_day)
        return trade

    def apply_sold_by_hand(self, sales: Iterable[SoldByHand], at: datetime, trading_day: date) -> list[Trade]:
        """Book what reconciliation found sold outside autotrader: a position the broker no longer holds
        is closed, one it holds fewer of is reduced to what is left, each with a trade (reason
        "closed_by_hand") at the broker's average price of those sales when its trade book shows them,
        else the position's last mark, else its average price (no P&L booked). Positions already closed or
        reduced (e.g. by an earlier application of the same report) are left as they are."""
        trades = []
        for sale in sales:
            position = self.by_id(sale.position_id)
            if position is None or position.quantity <= sale.left:
                continue
            price = sale.price or position.last_price or position.average_price
            if sale.left <= 0:
                trades.append(self.close(position, price, at, CLOSED_BY_HAND, trading_day))
            else:
                trades.append(self.reduce(position, position.quantity - sale.left, price, at, CLOSED_BY_HAND,
                                          trading_day))
        return trades

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
        return self.store.trades_of(trading_day)


def book_sold_by_hand(db: Database, charges: ChargeCalculator, instruments: dict[str, Instrument],
                      report: ReconcileReport, at: datetime, trading_day: date) -> list[Trade]:
    """Book the positions `report` found sold outside autotrader when no engine runs (its start, the
    `reconcile` command); a running engine books them in its guard."""
    book = PositionBook(db, charges, instruments)
    book.load()
    return book.apply_sold_by_hand(report.sold_by_hand, at, trading_day)
