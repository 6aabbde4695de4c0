"""Reconciliation: the database against the broker's orders, positions and exits (GTTs).

Run at start and periodically (`settings.execution.reconcile_interval_seconds`). Every difference
is reported as a `Difference(kind, key, db, broker, resolution)` and resolved by this table, never
by guessing. The broker is the source of truth for what happened (fills, positions, whether an
exit fired); the database is the source of truth for what we meant (intents, which exits belong
to which position) and for how much of a holding is ours. Nothing unknown is adopted.

Rules (kind: condition -> resolution):
- ORDER_STATUS: journal order not terminal, broker shows another status/fill -> broker's view applied.
- ORDER_NEVER_SENT: PENDING (certainly not sent) older than the grace period -> CANCELLED (a stale
  intent is never sent late).
- ORDER_LOST: SUBMITTED, not at the broker, older than the grace period -> REJECTED (never arrived).
- ORDER_UNCONFIRMED: PENDING/SUBMITTED, not at the broker, within the grace period -> none yet.
- ORDER_MISSING: OPEN/PARTIALLY_FILLED today but absent from the broker's book -> none: for a human.
- ORDER_STALE: not terminal, from an earlier day, absent from today's book -> none: for a human
  (brokers list today's orders only, so whether it filled cannot be read; a fill shows up as a
  position difference). Left open, it keeps blocking a second entry: the safe side.
- UNKNOWN_ORDER: broker order whose tag is not in the journal (not a fired GTT's leg) -> reported,
  not adopted.
- EXIT_SETTLED: journal exit ACTIVE, at the broker it fired (also while we were down) or is gone
  -> settled as `sync_exits` does; listed in `settled_exits` for the portfolio.
- EXIT_MISMATCH: both ACTIVE, quantity or triggers differ -> reported; the journal (intent) is kept.
- UNKNOWN_EXIT: ACTIVE broker exit not in the journal -> reported, not adopted.
- POSITION_BY_EXIT: journal position OPEN, its exit settled -> none here: the portfolio records the
  trade from `settled_exits` (what the broker still holds is not this position's); its exit fired
  but cannot settle yet (the leg's order not readable) -> none yet: settled by a later sync, never
  "closed by hand".
- POSITION_CLOSED: journal position OPEN, broker holds none, no exit explains it (closed by hand)
  -> its ACTIVE exit cancelled; listed in `closed_by_hand` for the portfolio, which closes the position
  with a trade (`PositionBook.apply_sold_by_hand`).
- POSITION_QUANTITY: both hold it, the broker fewer than our journal (sold by hand in part) -> listed
  in `quantity_reduced` for the portfolio, which reduces the position to the broker's quantity with a
  trade of the part sold.
Reconciliation writes no position: `SoldByHand.price` is the broker's average price of the day's
SELL fills of the instrument that are not our orders', when its trade book lists them.
- POSITION_SURPLUS: the broker holds more than our journal's open quantity (bought by hand, or what is
  left after our exit sold ours) -> reported ("surplus at broker, not ours"), not adopted: our
  position keeps the quantity its journal bought, so our exits never sell the surplus.
- POSITION_UNRECORDED: broker position with no journal position, but our filled entry order for it
  that opened no position yet (it filled while we were down) -> reported for the portfolio to open from that order.
- UNKNOWN_POSITION: broker position with no journal position and no entry of ours -> reported,
  not adopted.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.brokers.base import OrderRejected, TemporaryBrokerError
from engine.execution.tradebook import TradeBook
from engine.models import ExitOrder, ExitStatus, Order, OrderStatus, Side
from engine.storage.journal import JournaledOrder
from engine.storage.positions import PositionRecord, position_store

if TYPE_CHECKING:
    from engine.execution.manager import OrderManager

OPEN_STATUSES = (OrderStatus.PENDING, OrderStatus.SUBMITTED, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
FIRED = (ExitStatus.TRIGGERED_STOP, ExitStatus.TRIGGERED_TARGET)


@dataclasses.dataclass(frozen=True, slots=True)
class Difference:
    kind: str
    key: str  # client_order_id, exit id or instrument key
    db: str  # what the database says
    broker: str  # what the broker says
    resolution: str  # what was done about it


@dataclasses.dataclass(frozen=True, slots=True)
class SoldByHand:
    """A position sold outside autotrader, all of it (`left` 0) or in part."""

    position_id: int
    instrument_key: str
    left: int  # what the broker still holds of it
    price: float | None  # the average price of the sales outside autotrader, if the broker's trade book shows them


@dataclasses.dataclass(slots=True)
class ReconcileReport:
    at: datetime
    broker: str
    differences: list[Difference] = dataclasses.field(default_factory=list)
    settled_exits: list[ExitOrder] = dataclasses.field(default_factory=list)
    closed_by_hand: list[SoldByHand] = dataclasses.field(default_factory=list)
    quantity_reduced: list[SoldByHand] = dataclasses.field(default_factory=list)
    orders_checked: int = 0
    positions_checked: int = 0
    exits_checked: int = 0

    @property
    def clean(self) -> bool:
        return not self.differences

    @property
    def sold_by_hand(self) -> list[SoldByHand]:
        return [*self.closed_by_hand, *self.quantity_reduced]

    def kinds(self) -> list[str]:
        return [d.kind for d in self.differences]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "broker": self.broker,
            "clean": self.clean,
            "orders_checked": self.orders_checked,
            "positions_checked": self.positions_checked,
            "exits_checked": self.exits_checked,
            "differences": [dataclasses.asdict(d) for d in self.differences],
            "closed_by_hand": [dataclasses.asdict(s) for s in self.closed_by_hand],
            "quantity_reduced": [dataclasses.asdict(s) for s in self.quantity_reduced],
            "settled_exits": [
                {"exit_id": e.exit_id, "instrument_key": e.instrument_key, "status": e.status.value,
                 "quantity": e.quantity, "exit_price": e.exit_price, "tag": e.tag}
                for e in self.settled_exits
            ],
        }


def _describe(order: Order | JournaledOrder) -> str:
    return f"{order.status} filled {order.filled_quantity}/{order.quantity}"


def _age_seconds(manager: OrderManager, row: JournaledOrder) -> float:
    return (manager.clock.now() - row.created_at).total_seconds()


async def reconcile(manager: OrderManager) -> ReconcileReport:
    report = ReconcileReport(at=manager.clock.now(), broker=manager.broker.name)
    # exits before the order book, as in `sync_exits`: an exit seen fired finds its leg in the book
    exits = await manager.call_broker("reconcile", manager.broker.list_exits)
    book = await manager.call_broker("reconcile", manager.broker.list_orders)
    legs = await _reconcile_exits(manager, report, exits, book)
    await _reconcile_orders(manager, report, book, legs)
    await _reconcile_positions(manager, report, {e.exit_id for e in exits if e.status in FIRED})
    return report


async def _reconcile_orders(
    manager: OrderManager, report: ReconcileReport, book: list[Order], legs: set[str]
) -> None:
    journal = manager.journal
    by_tag = {o.client_order_id: o for o in book if o.client_order_id}
    by_id = {o.broker_order_id: o for o in book if o.broker_order_id}
    open_rows = journal.orders(statuses=OPEN_STATUSES)  # of any day: earlier ones may have expired
    known = {row.client_order_id: row for row in journal.orders(trading_day=manager.trading_day)}
    known.update({row.client_order_id: row for row in open_rows})
    ours = {row.broker_order_id for row in known.values() if row.broker_order_id} | legs  # broker ids we own
    trade_book = TradeBook(manager.broker)
    for row in open_rows:
        status = OrderStatus(row.status)
        report.orders_checked += 1
        found = by_tag.get(row.client_order_id) or (by_id.get(row.broker_order_id) if row.broker_order_id else None)
        key = row.client_order_id
        if found is not None:
            if (found.status, found.filled_quantity) != (status, row.filled_quantity):
                after = await manager.absorb(key, found, trade_book=trade_book)
                report.differences.append(Difference("ORDER_STATUS", key, _describe(row), _describe(found),
                                                     f"broker's view applied: {_describe(after)}"))
            continue
        if row.trading_day < manager.trading_day:
            # Kite lists today's orders only: whether it filled before expiring cannot be read here
            report.differences.append(Difference("ORDER_STALE", key, _describe(row), "absent (earlier day)",
                                                 "none: needs a human; a fill shows as a position difference"))
        elif status in (OrderStatus.PENDING, OrderStatus.SUBMITTED):
            if _age_seconds(manager, row) < manager.submitted_grace_seconds:
                report.differences.append(Difference("ORDER_UNCONFIRMED", key, status.value, "absent",
                                                     "none yet: looked up again next time"))
            elif status is OrderStatus.PENDING:
                journal.transition(key, OrderStatus.CANCELLED, message="never sent (reconciled)")
                report.differences.append(Difference("ORDER_NEVER_SENT", key, status.value, "absent",
                                                     "CANCELLED: a stale intent is never sent late"))
            else:
                journal.transition(key, OrderStatus.REJECTED, message="never reached the broker (reconciled)")
                report.differences.append(Difference("ORDER_LOST", key, status.value, "absent",
                                                     "REJECTED: never reached the broker"))
        else:
            report.differences.append(Difference("ORDER_MISSING", key, _describe(row), "absent",
                                                 "none: needs a human"))
        journal.event(key, "RECONCILE", difference=report.differences[-1].kind)
    for order in book:
        if order.client_order_id in known or order.broker_order_id in ours:
            continue
        report.differences.append(Difference("UNKNOWN_ORDER", order.broker_order_id or order.client_order_id, "absent",
                                             f"{order.side} {order.quantity} {order.instrument_key} "
                                             f"tag={order.client_order_id or '-'} {order.status}",
                                             "reported, not adopted"))


async def _reconcile_exits(
    manager: OrderManager, report: ReconcileReport, at_broker: list[ExitOrder], book: list[Order]
) -> set[str]:
    """Settle fired exits; return the broker ids of the orders fired exits placed."""
    journal = manager.journal
    active = journal.gtts(active_only=True)
    settled = await manager.settle_exits(active, at_broker, book) if active else []
    report.settled_exits.extend(settled)
    for exit_order in settled:
        report.differences.append(Difference("EXIT_SETTLED", exit_order.exit_id, ExitStatus.ACTIVE.value,
                                             exit_order.status.value,
                                             f"settled; exit price {exit_order.exit_price}"))
    rows = {row.exit_id: row for row in journal.gtts()}
    report.exits_checked = len(at_broker)
    legs = {e.triggered_order_id for e in at_broker if e.triggered_order_id}
    for exit_order in at_broker:
        row = rows.get(exit_order.exit_id)
        if row is None:
            if exit_order.status is ExitStatus.ACTIVE:
                report.differences.append(Difference(
                    "UNKNOWN_EXIT", exit_order.exit_id, "absent",
                    f"ACTIVE {exit_order.instrument_key} qty {exit_order.quantity}", "reported, not adopted"))
            continue
        if row.status == ExitStatus.ACTIVE.value and exit_order.status is ExitStatus.ACTIVE:
            mine = (row.quantity, row.stop_trigger, row.target_trigger)
            theirs = (exit_order.quantity, exit_order.stop_trigger, exit_order.target_trigger)
            if any(abs(a - b) > 1e-6 for a, b in zip(mine, theirs, strict=True)):
                report.differences.append(Difference("EXIT_MISMATCH", exit_order.exit_id, f"qty/stop/target {mine}",
                                                     f"qty/stop/target {theirs}", "reported; journal kept"))
    return legs


async def _reconcile_positions(manager: OrderManager, report: ReconcileReport, fired_exit_ids: set[str]) -> None:
    at_broker = {p.instrument_key: p for p in await manager.call_broker("reconcile", manager.broker.positions)
                 if p.quantity != 0}
    settled_by_instrument = {e.instrument_key: e for e in report.settled_exits if e.status in FIRED}
    store = position_store(manager.db)
    open_rows = store.open_positions()
    hand_prices = _HandSalePrices(manager)
    report.positions_checked = len({row.instrument_key for row in open_rows} | set(at_broker))
    ours: dict[str, int] = {}  # per instrument, the quantity our journal expects the broker to hold
    for row in open_rows:
        broker_position = at_broker.get(row.instrument_key)
        if row.instrument_key in settled_by_instrument or row.exit_id in fired_exit_ids:
            # sold by its own exit (its order maybe not readable yet): the portfolio records the trade
            # from settled_exits; whatever the broker still holds is not this position's
            settled = row.instrument_key in settled_by_instrument
            if not settled and broker_position is not None:  # its leg may still be working: not a surplus yet
                ours[row.instrument_key] = ours.get(row.instrument_key, 0) + row.quantity
            report.differences.append(Difference(
                "POSITION_BY_EXIT", row.instrument_key, f"OPEN {row.quantity}",
                "exit settled" if settled else f"exit {row.exit_id} fired",
                "none here: the portfolio records the trade from settled_exits" if settled
                else "none yet: the exit settles on a later sync, then the portfolio records the trade"))
            continue
        held = broker_position.quantity - ours.get(row.instrument_key, 0) if broker_position is not None else 0
        if held <= 0:
            await _close_by_hand(manager, row, report, await hand_prices.of(row.instrument_key))
            continue
        if held < row.quantity:  # sold by hand in part: we hold what is left
            price = await hand_prices.of(row.instrument_key)
            report.quantity_reduced.append(SoldByHand(row.id, row.instrument_key, held, price))
            report.differences.append(Difference("POSITION_QUANTITY", row.instrument_key, str(row.quantity),
                                                 str(held), "reported: the portfolio reduces the position to "
                                                 f"the broker's quantity (sold at {price or 'an unknown price'})"))
        ours[row.instrument_key] = ours.get(row.instrument_key, 0) + min(held, row.quantity)
    journaled = {row.instrument_key for row in open_rows}
    opened = store.entry_order_ids()  # entries whose position exists (open or closed) explain nothing new
    filled_entries: dict[str, list[str]] = {}
    for order in manager.journal.orders(statuses=(OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED)):
        if order.purpose == "ENTRY" and order.side == "BUY" and order.client_order_id not in opened:
            filled_entries.setdefault(order.instrument_key, []).append(order.client_order_id)
    for instrument_key, position in at_broker.items():
        if instrument_key in journaled:
            surplus = position.quantity - ours.get(instrument_key, 0)
            if surplus > 0:
                report.differences.append(Difference(
                    "POSITION_SURPLUS", instrument_key, f"OPEN {ours.get(instrument_key, 0)}", str(position.quantity),
                    f"surplus at broker, not ours: {surplus} reported, not adopted; our exits sell only ours"))
            continue
        entries = filled_entries.get(instrument_key)
        if entries:
            report.differences.append(Difference(
                "POSITION_UNRECORDED", instrument_key, "none", f"{position.quantity} @ {position.average_price}",
                f"reported: the portfolio opens it from filled entry {', '.join(entries)}"))
        else:
            report.differences.append(Difference("UNKNOWN_POSITION", instrument_key, "none",
                                                 f"{position.quantity} @ {position.average_price}",
                                                 "reported, not adopted"))


class _HandSalePrices:
    """The average price of the day's SELL fills of an instrument that no order of our journal made, from
    the broker's trade book (read once, on first need); None when it lists none or cannot list fills."""

    def __init__(self, manager: OrderManager) -> None:
        self._manager = manager
        self._book = TradeBook(manager.broker)

    async def of(self, instrument_key: str) -> float | None:
        fills = await self._book.fills() or []
        journal = self._manager.journal
        sales = [f for f in fills if f.instrument_key == instrument_key and f.side is Side.SELL
                 and not (f.client_order_id and journal.get(f.client_order_id) is not None)]
        sold = sum(f.quantity for f in sales)
        return sum(f.quantity * f.price for f in sales) / sold if sold else None


async def _close_by_hand(manager: OrderManager, row: PositionRecord, report: ReconcileReport,
                         price: float | None) -> None:
    resolution = "reported: the portfolio closes the position (closed outside autotrader)"
    if row.exit_id:
        gtt = manager.journal.gtt(row.exit_id)
        if gtt is not None and gtt.status == ExitStatus.ACTIVE.value:
            try:
                await manager.cancel_exit(row.exit_id)
                resolution += f"; exit {row.exit_id} cancelled"
            except (OrderRejected, TemporaryBrokerError) as error:
                resolution += f"; exit {row.exit_id} could not be cancelled: {error}"
    report.closed_by_hand.append(SoldByHand(row.id, row.instrument_key, 0, price))
    report.differences.append(Difference("POSITION_CLOSED", row.instrument_key, f"OPEN {row.quantity}", "none",
                                         resolution))


__all__ = ["Difference", "ReconcileReport", "SoldByHand", "reconcile"]
