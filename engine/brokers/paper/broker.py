"""PaperBroker: a simulated venue behind the same `Broker` contract as the real ones.

- Orders work until the next tick of their instrument (a market order fills at the next tick's
  price, never at the price that made us decide); market fills pay `slippage_bps` against us.
- LIMIT fills at the limit or better; SL / SL-M trigger when the price crosses the trigger, then
  behave as LIMIT / MARKET.
- Partial fills: each tick fills `partial_fill_ratio` of the order's quantity (whole lots, at
  least one lot) until it is done.
- Exits are simulated two-leg GTTs: when a tick crosses the stop (at or below) or the target (at
  or above), the GTT fires and places a SELL LIMIT at that leg's limit price, which fills on that
  tick or a later one when the price allows, like Kite's.
- CNC sells beyond the held quantity are rejected, as at a real broker.
- With `db`, `connect()` restores positions and ACTIVE exits from the journal (the same database the
  order manager writes), so a restarted process keeps its overnight positions and their exits.
  What the journal never saw (an exit that fired but was not synced before the process ended) is
  lost with the process: the paper venue lives in memory.
Deterministic: no randomness; times come from the injected clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING

from engine.brokers.base import Broker, BrokerCapabilities, OrderRejected, check_exit_request, check_order_intent
from engine.clock import Clock
from engine.models import (
    BrokerPosition,
    ExitOrder,
    ExitRequest,
    ExitStatus,
    Fill,
    Instrument,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Product,
    Side,
    Tick,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from engine.settings import Settings


@dataclasses.dataclass(slots=True)
class _Working:
    order: Order
    instrument: Instrument
    product: Product
    triggered: bool = False


@dataclasses.dataclass(slots=True)
class _Exit:
    exit_order: ExitOrder
    instrument: Instrument


class PaperBroker(Broker):
    name = "paper"
    capabilities = BrokerCapabilities(gtt=True, orders_per_second=1000.0, orders_per_minute=100_000)

    def __init__(
        self,
        clock: Clock,
        *,
        slippage_bps: float = 5.0,
        partial_fill_ratio: float = 1.0,
        instruments: Iterable[Instrument] = (),
        db: Engine | None = None,
    ) -> None:
        if slippage_bps < 0:
            raise ValueError(f"slippage_bps must be >= 0, got {slippage_bps}")
        if not 0 < partial_fill_ratio <= 1:
            raise ValueError(f"partial_fill_ratio must be in (0, 1], got {partial_fill_ratio}")
        self.clock = clock
        self.slippage = slippage_bps / 10_000
        self.partial_fill_ratio = partial_fill_ratio
        self.instruments = {i.instrument_key: i for i in instruments}
        self.db = db
        self._id_prefix = f"{clock.now():%y%m%d%H%M%S}"
        self._sequence = 0
        self._orders: dict[str, _Working] = {}
        self._exits: dict[str, _Exit] = {}
        self._positions: dict[str, tuple[int, float]] = {}
        self._fills: list[Fill] = []
        self._last: dict[str, float] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, clock: Clock, *, instruments: Iterable[Instrument] = (), db: Engine | None = None
    ) -> PaperBroker:
        return cls(clock, slippage_bps=settings.paper.slippage_bps,
                   partial_fill_ratio=settings.paper.partial_fill_ratio, instruments=instruments, db=db)

    def _next_id(self, kind: str) -> str:
        self._sequence += 1
        return f"P{kind}{self._id_prefix}{self._sequence:05d}"

    def last_price(self, instrument_key: str) -> float | None:
        return self._last.get(instrument_key)

    # lifecycle --------------------------------------------------------------------------------
    async def connect(self) -> None:
        if self.db is not None and not self._orders and not self._exits:
            self._restore(self.db)

    def _restore(self, db: Engine) -> None:
        from sqlmodel import select

        from engine.storage.db import session_scope
        from engine.storage.tables import FillRow, GttRow, OrderRow

        with session_scope(db) as session:
            fills = session.exec(
                select(FillRow).join(OrderRow, FillRow.client_order_id == OrderRow.client_order_id)  # type: ignore[arg-type]
                .where(OrderRow.broker == self.name).order_by(FillRow.ts)  # type: ignore[arg-type]
            ).all()
            for fill in fills:
                self._apply_position(fill.instrument_key, Side(fill.side), fill.quantity, fill.price)
            # ids continue after those of an earlier broker started in the same clock second
            used = [*session.exec(select(OrderRow.broker_order_id).where(OrderRow.broker == self.name)),
                    *session.exec(select(GttRow.exit_id).where(GttRow.broker == self.name))]
            for used_id in used:
                if used_id and used_id[2:].startswith(self._id_prefix) and used_id[2 + len(self._id_prefix):].isdigit():
                    self._sequence = max(self._sequence, int(used_id[2 + len(self._id_prefix):]))
            for row in session.exec(select(GttRow).where(GttRow.broker == self.name, GttRow.status == "ACTIVE")):
                instrument = self._instrument(row.instrument_key)
                self._exits[row.exit_id] = _Exit(ExitOrder(
                    exit_id=row.exit_id, instrument_key=row.instrument_key, quantity=row.quantity,
                    stop_trigger=row.stop_trigger, stop_limit=row.stop_limit, target_trigger=row.target_trigger,
                    target_limit=row.target_limit, tag=row.tag, updated_at=self.clock.now()), instrument)

    def _instrument(self, instrument_key: str) -> Instrument:
        known = self.instruments.get(instrument_key)
        return known or Instrument(instrument_key=instrument_key, symbol=instrument_key, isin="")

    # prices -----------------------------------------------------------------------------------
    async def on_tick(self, tick: Tick) -> None:
        self._last[tick.instrument_key] = tick.ltp
        for working in [w for w in self._orders.values() if w.order.instrument_key == tick.instrument_key]:
            if not working.order.status.is_terminal:
                self._try_fill(working, tick.ltp)
        for paper_exit in list(self._exits.values()):
            if paper_exit.exit_order.instrument_key == tick.instrument_key:
                self._check_exit(paper_exit, tick.ltp)

    def _fill_price(self, working: _Working, ltp: float) -> float | None:
        order, instrument = working.order, working.instrument
        buy = order.side is Side.BUY
        if order.order_type in (OrderType.SL, OrderType.SL_M) and not working.triggered:
            assert order.trigger_price is not None
            if (buy and ltp < order.trigger_price) or (not buy and ltp > order.trigger_price):
                return None
            working.triggered = True
        market = ltp * (1 + self.slippage) if buy else ltp * (1 - self.slippage)
        if order.order_type in (OrderType.MARKET, OrderType.SL_M):
            return instrument.round_price(market, "up" if buy else "down")
        assert order.price is not None
        if buy:
            return None if ltp > order.price else min(order.price, instrument.round_price(market, "up"))
        return None if ltp < order.price else max(order.price, instrument.round_price(market, "down"))

    def _try_fill(self, working: _Working, ltp: float) -> None:
        price = self._fill_price(working, ltp)
        if price is None:
            return
        order, instrument = working.order, working.instrument
        remaining = order.quantity - order.filled_quantity
        step = max(instrument.lot_size, instrument.whole_lots(order.quantity * self.partial_fill_ratio))
        quantity = min(remaining, step)
        value = order.average_price * order.filled_quantity + price * quantity
        order.filled_quantity += quantity
        order.average_price = round(value / order.filled_quantity, 4)
        order.status = OrderStatus.FILLED if order.filled_quantity >= order.quantity else OrderStatus.PARTIALLY_FILLED
        order.updated_at = self.clock.now()
        assert order.broker_order_id is not None
        self._fills.append(Fill(
            fill_id=f"{order.broker_order_id}-{len(self._fills) + 1}", client_order_id=order.client_order_id,
            broker_order_id=order.broker_order_id, instrument_key=order.instrument_key, side=order.side,
            quantity=quantity, price=price, ts=order.updated_at))
        self._apply_position(order.instrument_key, order.side, quantity, price)

    def _apply_position(self, instrument_key: str, side: Side, quantity: int, price: float) -> None:
        held, average = self._positions.get(instrument_key, (0, 0.0))
        if side is Side.BUY:
            total = held + quantity
            average = (held * average + quantity * price) / total if total else 0.0
            held = total
        else:
            held -= quantity
        if held == 0:
            self._positions.pop(instrument_key, None)
        else:
            self._positions[instrument_key] = (held, round(average, 4))

    def _check_exit(self, paper_exit: _Exit, ltp: float) -> None:
        exit_order = paper_exit.exit_order
        if exit_order.status is not ExitStatus.ACTIVE:
            return
        if ltp <= exit_order.stop_trigger:
            status, limit = ExitStatus.TRIGGERED_STOP, exit_order.stop_limit
        elif ltp >= exit_order.target_trigger:
            status, limit = ExitStatus.TRIGGERED_TARGET, exit_order.target_limit
        else:
            return
        held = self._positions.get(exit_order.instrument_key, (0, 0.0))[0]
        exit_order.status = status
        exit_order.updated_at = self.clock.now()
        if held < exit_order.quantity:  # Kite rejects a GTT's CNC sell beyond the holding
            exit_order.status = ExitStatus.REJECTED
            return
        leg = self._new_order("", paper_exit.instrument, Side.SELL, exit_order.quantity, OrderType.LIMIT, limit,
                              None, Product.CNC)
        exit_order.triggered_order_id = leg.order.broker_order_id
        self._try_fill(leg, ltp)

    # orders -----------------------------------------------------------------------------------
    def _new_order(
        self, tag: str, instrument: Instrument, side: Side, quantity: int, order_type: OrderType,
        price: float | None, trigger_price: float | None, product: Product,
    ) -> _Working:
        broker_order_id = self._next_id("O")
        order = Order(client_order_id=tag, instrument_key=instrument.instrument_key, side=side, quantity=quantity,
                      status=OrderStatus.OPEN, broker_order_id=broker_order_id, order_type=order_type, price=price,
                      trigger_price=trigger_price, updated_at=self.clock.now())
        working = _Working(order, instrument, product)
        self._orders[broker_order_id] = working
        return working

    async def place_order(self, intent: OrderIntent) -> Order:
        instrument = intent.instrument
        check_order_intent(intent)
        if intent.quantity % instrument.lot_size:
            raise OrderRejected(f"quantity {intent.quantity} is not a multiple of lot {instrument.lot_size}")
        if intent.side is Side.SELL and intent.product is Product.CNC:
            held = self._positions.get(instrument.instrument_key, (0, 0.0))[0]
            selling = sum(w.order.quantity - w.order.filled_quantity for w in self._orders.values()
                          if w.order.instrument_key == instrument.instrument_key and w.order.side is Side.SELL
                          and not w.order.status.is_terminal)
            if intent.quantity + selling > held:
                raise OrderRejected(f"CNC sell of {intent.quantity} {instrument.symbol} exceeds the holding ({held})")
        self.instruments.setdefault(instrument.instrument_key, instrument)
        working = self._new_order(intent.client_order_id, instrument, intent.side, intent.quantity, intent.order_type,
                                  intent.price, intent.trigger_price, intent.product)
        return dataclasses.replace(working.order)

    async def find_order(self, client_order_id: str) -> Order | None:
        for working in reversed(self._orders.values()):
            if working.order.client_order_id == client_order_id:
                return dataclasses.replace(working.order)
        return None

    async def get_order(self, broker_order_id: str) -> Order | None:
        working = self._orders.get(broker_order_id)
        return dataclasses.replace(working.order) if working is not None else None

    async def cancel_order(self, broker_order_id: str) -> None:
        working = self._orders.get(broker_order_id)
        if working is None:
            raise OrderRejected(f"order {broker_order_id} does not exist")
        if working.order.status.is_terminal:
            raise OrderRejected(f"order {broker_order_id} is already {working.order.status}")
        working.order.status = OrderStatus.CANCELLED
        working.order.updated_at = self.clock.now()

    async def list_orders(self) -> list[Order]:
        return [dataclasses.replace(w.order) for w in self._orders.values()]

    async def fills(self) -> list[Fill]:
        return list(self._fills)

    async def positions(self) -> list[BrokerPosition]:
        return [BrokerPosition(key, quantity, average) for key, (quantity, average) in self._positions.items()]

    # exits ------------------------------------------------------------------------------------
    async def place_exit_oco(self, request: ExitRequest) -> ExitOrder:
        check_exit_request(request)
        exit_order = ExitOrder(
            exit_id=self._next_id("G"), instrument_key=request.instrument.instrument_key, quantity=request.quantity,
            stop_trigger=request.stop_trigger, stop_limit=request.stop_limit, target_trigger=request.target_trigger,
            target_limit=request.target_limit, tag=request.tag, updated_at=self.clock.now())
        self._exits[exit_order.exit_id] = _Exit(exit_order, request.instrument)
        return dataclasses.replace(exit_order)

    def _active_exit(self, exit_id: str) -> _Exit:
        paper_exit = self._exits.get(exit_id)
        if paper_exit is None:
            raise OrderRejected(f"exit {exit_id} does not exist")
        if paper_exit.exit_order.status is not ExitStatus.ACTIVE:
            raise OrderRejected(f"exit {exit_id} is {paper_exit.exit_order.status}, not ACTIVE")
        return paper_exit

    async def modify_exit(self, exit_id: str, request: ExitRequest) -> ExitOrder:
        paper_exit = self._active_exit(exit_id)
        check_exit_request(request)
        exit_order = paper_exit.exit_order
        exit_order.quantity = request.quantity
        exit_order.stop_trigger, exit_order.stop_limit = request.stop_trigger, request.stop_limit
        exit_order.target_trigger, exit_order.target_limit = request.target_trigger, request.target_limit
        exit_order.updated_at = self.clock.now()
        return dataclasses.replace(exit_order)

    async def cancel_exit(self, exit_id: str) -> None:
        paper_exit = self._active_exit(exit_id)
        paper_exit.exit_order.status = ExitStatus.CANCELLED
        paper_exit.exit_order.updated_at = self.clock.now()

    async def list_exits(self) -> list[ExitOrder]:
        return [dataclasses.replace(e.exit_order) for e in self._exits.values()]
