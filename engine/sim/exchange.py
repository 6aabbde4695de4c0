"""SimulatedExchange: the one simulated venue behind the paper broker and both sandboxes.

Shaped after NautilusTrader's `SimulatedExchange`: one `MatchingCore` per instrument (a tick only
touches its instrument's orders and GTTs), the fill model, fee model and venue rules plugged in.
Driven by `on_tick` (or `on_price`) and an injected `Clock`; deterministic (the fill model's RNG is
seeded). It never raises for a business refusal: an order it refuses comes back REJECTED with a
reason. `SimulatorError` is for requests that name nothing it knows or act on a finished order.

Products are the venue's own codes; `delivery_products` are the ones whose sells need holdings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, fields
from datetime import date, datetime
from typing import Any

from engine.clock import Clock
from engine.models import Instrument, OrderStatus, OrderType, Side, Tick
from engine.sim.matching import MatchingCore
from engine.sim.models import FeeModel, FillModel, NoFees, OrderRateLimit, VenueRules
from engine.sim.orders import (
    GttLeg,
    Holding,
    LegState,
    RejectCode,
    SimFill,
    SimGtt,
    SimOrder,
    TriggerDirection,
)

IdFormat = Callable[[int, datetime], str]


class SimulatorError(Exception):
    """A request the exchange cannot act on (unknown id, an order or GTT no longer working)."""


def _default_id(sequence: int, now: datetime) -> str:
    return f"{now:%y%m%d}{sequence:09d}"


class SimulatedExchange:
    def __init__(
        self,
        clock: Clock,
        *,
        fill_model: FillModel | None = None,
        fee_model: FeeModel | None = None,
        rules: VenueRules | None = None,
        instruments: Iterable[Instrument] = (),
        order_id: IdFormat = _default_id,
        gtt_id: IdFormat = _default_id,
        delivery_products: Iterable[str] = ("CNC", "D"),
    ) -> None:
        self.clock = clock
        self.fill_model = fill_model or FillModel()
        self.fee_model: FeeModel = fee_model or NoFees()
        self.rules = rules or VenueRules()
        self.delivery_products = frozenset(delivery_products)
        self.instruments = {i.instrument_key: i for i in instruments}
        self._order_id, self._gtt_id = order_id, gtt_id
        self.rate_limit = OrderRateLimit(self.rules.orders_per_second)
        self.rng = self.fill_model.rng()
        self.sequence = 0
        self.revision = 0  # counts changes to the books (not mere prices): when to save a snapshot
        # counts changes to the GTTs and to the orders their fired legs placed: when a GTT sync finds news
        self.exit_changes = 0
        self.day: date | None = None
        self.orders: dict[str, SimOrder] = {}  # the order book (today's, with daily books)
        self.fills: list[SimFill] = []  # the trade book
        self.gtts: dict[str, SimGtt] = {}
        self.holdings: dict[tuple[str, str], Holding] = {}  # (instrument, product): carried from earlier days
        self.cores: dict[str, MatchingCore] = {}

    # instruments and prices -------------------------------------------------------------------
    def instrument(self, key: str) -> Instrument:
        known = self.instruments.get(key)
        if known is None:
            known = self.instruments[key] = Instrument(instrument_key=key, symbol=key, isin="")
        return known

    def core(self, key: str) -> MatchingCore:
        core = self.cores.get(key)
        if core is None:
            core = self.cores[key] = MatchingCore(self.instrument(key), self.fill_model, self.rng)
        return core

    def last_price(self, key: str) -> float | None:
        core = self.cores.get(key)
        return core.last_price if core is not None else None

    def on_tick(self, tick: Tick) -> None:
        self.on_price(tick.instrument_key, tick.ltp, at_ms=tick.ltt_ms)

    def on_price(self, key: str, price: float, *, at_ms: int | None = None) -> None:
        """A traded price of `key` (traded at `at_ms`, epoch ms, when known): its working orders fill
        when they can, its GTTs fire."""
        self.roll_day()
        self._price_today(key, price, at_ms)

    def tick_feed(self) -> Callable[[Tick], None]:
        """`on_tick` for a batch of ticks that arrived at one time: the day is checked once, here,
        not on each tick (the hot path of a simulated venue)."""
        self.roll_day()
        return self._on_tick_today

    def _on_tick_today(self, tick: Tick) -> None:
        core = self.cores.get(tick.instrument_key)
        if core is not None and not core.working and not core.gtts:  # most ticks: nothing to fill or fire
            core.last_price = tick.ltp
            return
        self._price_today(tick.instrument_key, tick.ltp, tick.ltt_ms)

    def _price_today(self, key: str, price: float, at_ms: int | None) -> None:
        """`on_price` once `roll_day` has run for the clock's current day. A price traded before an
        order was placed (or a GTT created) never fills (or fires) it: a backfilled minute arrives
        after the orders sent meanwhile. `at_ms` None or 0: the trade time is unknown."""
        core = self.cores.get(key) or self.core(key)
        core.last_price = price
        # most instruments have nothing working: no copy of their empty books on each tick
        if core.working:
            for order in list(core.working.values()):
                if not at_ms or not _later(order.placed_at, at_ms):
                    order.armed = True
                    self._match(core, order, price)
        if core.gtts:
            for gtt in list(core.gtts.values()):
                if not at_ms or not _later(gtt.created_at, at_ms):
                    self._advance(core, gtt)

    # days ---------------------------------------------------------------------------------------
    def roll_day(self) -> None:
        """With daily books, a new day on the clock expires working orders, moves today's net
        positions to holdings and starts empty order and trade books."""
        today = self.clock.now().date()
        if self.day == today:
            return
        if self.day is not None and self.rules.daily_books:
            self.holdings = {(key, product): Holding(quantity, average)
                             for key, product, quantity, average in self.net_positions() if quantity}
            self.orders.clear()
            self.fills.clear()
            for core in self.cores.values():
                core.working.clear()
            self.exit_changes += 1
        self.day = today
        self.revision += 1

    # orders -------------------------------------------------------------------------------------
    def _next_id(self, format_id: IdFormat) -> str:
        self.sequence += 1
        self.revision += 1
        return format_id(self.sequence, self.clock.now())

    def place_order(
        self, key: str, side: Side, quantity: int, order_type: OrderType, product: str, *,
        price: float | None = None, trigger_price: float | None = None, market_protection: float | None = None,
        tag: str | None = None, gtt_id: str | None = None,
    ) -> SimOrder:
        """A new order, matched at once when the fill model allows. Refusals come back REJECTED."""
        self.roll_day()
        now = self.clock.now()
        core = self.core(key)
        order = SimOrder(order_id=self._next_id(self._order_id), instrument_key=key, side=side, quantity=quantity,
                         order_type=order_type, product=product, placed_at=now, price=price,
                         trigger_price=trigger_price, market_protection=market_protection, tag=tag, gtt_id=gtt_id,
                         armed=gtt_id is not None or not self.fill_model.fills_at_next_tick, updated_at=now)
        self.orders[order.order_id] = order
        rejection = self._refusal(order, core)
        if rejection is not None:
            order.status, order.reject_code = OrderStatus.REJECTED, rejection[0]
            order.reason = rejection[1]
            return order
        if market_protection is not None and order_type is OrderType.MARKET and core.last_price is not None:
            order.protection_bound = core.protection_bound(side, market_protection, core.last_price)
        core.working[order.order_id] = order
        if order.armed and core.last_price is not None:
            self._match(core, order, core.last_price)
        return order

    def _refusal(self, order: SimOrder, core: MatchingCore) -> tuple[RejectCode, str] | None:
        lot = core.instrument.lot_size
        if order.quantity % lot:
            return RejectCode.LOT_SIZE, f"quantity {order.quantity} is not a multiple of the lot size {lot}"
        if (self.rules.require_market_protection and order.market_protection is None
                and order.order_type in (OrderType.MARKET, OrderType.SL_M)):
            return RejectCode.MARKET_PROTECTION, self.rules.market_protection_message
        if order.side is Side.SELL and order.product in self.delivery_products:
            available = self.available_to_sell(order.instrument_key, order.product, excluding=order.order_id)
            if order.quantity > available:
                return RejectCode.INSUFFICIENT_HOLDINGS, (
                    f"{self.rules.insufficient_holdings_message} {max(available, 0)} available to sell, "
                    f"{order.quantity} ordered")
        # a fired GTT's leg is the venue's own order, not a request: it never counts against the rate
        if order.gtt_id is None and not self.rate_limit.allow(order.placed_at):
            return RejectCode.RATE_LIMIT, self.rules.rate_limit_message
        return None

    def withdraw(self, order_id: str) -> None:
        """Forget a REJECTED order: a venue that refuses a request before booking it (Kite's HTTP 400
        and 429 answers) shows it in no order book."""
        if self.order(order_id).status is not OrderStatus.REJECTED:
            raise SimulatorError(f"order {order_id} was not rejected: only a refusal is withdrawn")
        self._order_changed(self.orders.pop(order_id))

    def order(self, order_id: str) -> SimOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise SimulatorError(f"order {order_id} does not exist")
        return order

    def _working(self, order_id: str) -> SimOrder:
        order = self.order(order_id)
        if not order.is_working:
            raise SimulatorError(f"order {order_id} is {order.status}, not working")
        return order

    def cancel_order(self, order_id: str) -> SimOrder:
        self.roll_day()
        order = self._working(order_id)
        order.status, order.updated_at = OrderStatus.CANCELLED, self.clock.now()
        self.core(order.instrument_key).working.pop(order_id, None)
        self._order_changed(order)
        return order

    def modify_order(
        self, order_id: str, *, quantity: int | None = None, price: float | None = None,
        trigger_price: float | None = None, order_type: OrderType | None = None,
    ) -> SimOrder:
        self.roll_day()
        order = self._working(order_id)
        if quantity is not None:
            order.quantity = max(quantity, order.filled_quantity)
        order.price = price if price is not None else order.price
        order.trigger_price = trigger_price if trigger_price is not None else order.trigger_price
        order.order_type = order_type or order.order_type
        order.updated_at = self.clock.now()
        self._order_changed(order)
        core = self.core(order.instrument_key)
        if order.armed and core.last_price is not None:
            self._match(core, order, core.last_price)
        return order

    def _match(self, core: MatchingCore, order: SimOrder, price: float) -> None:
        if not order.is_working or not order.armed:
            return
        fill_price = core.fill_price(order, price)
        if fill_price is None:
            return
        quantity = core.fill_quantity(order)
        now = self.clock.now()
        self._order_changed(order)
        value = order.average_price * order.filled_quantity + fill_price * quantity
        order.filled_quantity += quantity
        order.average_price = round(value / order.filled_quantity, 4)
        order.status = OrderStatus.FILLED if order.filled_quantity >= order.quantity else OrderStatus.PARTIALLY_FILLED
        order.updated_at = now
        if order.status is OrderStatus.FILLED:
            core.working.pop(order.order_id, None)
        self.fills.append(SimFill(
            fill_id=f"{order.order_id}-{len(self.fills) + 1}", order_id=order.order_id,
            instrument_key=order.instrument_key, side=order.side, product=order.product, quantity=quantity,
            price=fill_price, fee=self.fee_model.fee(order.side, quantity, fill_price), ts=now))

    def _order_changed(self, order: SimOrder) -> None:
        self.revision += 1
        if order.gtt_id is not None:
            self.exit_changes += 1

    # positions ----------------------------------------------------------------------------------
    def net_positions(self, *, carried: bool = True) -> list[tuple[str, str, int, float]]:
        """(instrument, product, net quantity, average buy price) over today's fills, plus the
        holdings unless `carried` is False."""
        books: dict[tuple[str, str], list[float]] = {}
        for (key, product), holding in self.holdings.items() if carried else ():
            books[(key, product)] = [holding.quantity, holding.quantity * holding.average_price, 0.0]
        for fill in self.fills:
            book = books.setdefault((fill.instrument_key, fill.product), [0, 0.0, 0.0])
            if fill.side is Side.BUY:
                book[0] += fill.quantity
                book[1] += fill.quantity * fill.price
            else:
                book[2] += fill.quantity
        return [(key, product, int(bought - sold), round(value / bought, 4) if bought else 0.0)
                for (key, product), (bought, value, sold) in books.items()]

    def held(self, key: str, product: str) -> int:
        return next((quantity for k, p, quantity, _ in self.net_positions() if (k, p) == (key, product)), 0)

    def available_to_sell(self, key: str, product: str, *, excluding: str | None = None) -> int:
        """Held quantity less what working sells of it already claim."""
        selling = sum(o.pending_quantity for o in self.core(key).working.values()
                      if o.side is Side.SELL and o.product == product and o.order_id != excluding)
        return self.held(key, product) - selling

    def set_holding(self, key: str, product: str, quantity: int, average_price: float = 0.0) -> None:
        """Shares carried from earlier days (what a delivery sell may sell)."""
        self.revision += 1
        if quantity:
            self.holdings[(key, product)] = Holding(quantity, average_price)
        else:
            self.holdings.pop((key, product), None)

    # GTTs ---------------------------------------------------------------------------------------
    def place_gtt(
        self, key: str, quantity: int, product: str, legs: list[GttLeg], *, has_entry: bool = False,
        tag: str | None = None,
    ) -> SimGtt:
        self.roll_day()
        now = self.clock.now()
        for index, leg in enumerate(legs):
            leg.state = LegState.PENDING if has_entry and index > 0 else LegState.SCHEDULED
        gtt = SimGtt(gtt_id=self._next_id(self._gtt_id), instrument_key=key, quantity=quantity, product=product,
                     legs=legs, created_at=now, has_entry=has_entry, tag=tag, updated_at=now)
        self.gtts[gtt.gtt_id] = gtt
        self.exit_changes += 1
        core = self.core(key)
        core.gtts[gtt.gtt_id] = gtt
        self._advance(core, gtt)
        return gtt

    def gtt(self, gtt_id: str) -> SimGtt:
        gtt = self.gtts.get(gtt_id)
        if gtt is None:
            raise SimulatorError(f"GTT {gtt_id} does not exist")
        return gtt

    def _active_gtt(self, gtt_id: str) -> SimGtt:
        gtt = self.gtt(gtt_id)
        if not gtt.active:
            raise SimulatorError(f"GTT {gtt_id} is no longer active")
        return gtt

    def modify_gtt(self, gtt_id: str, *, quantity: int | None = None,
                   legs: dict[str, tuple[float, float | None]] | None = None) -> SimGtt:
        """New quantity and/or new (trigger, limit) of the named waiting legs."""
        self.roll_day()
        gtt = self._active_gtt(gtt_id)
        for leg in gtt.legs:
            if legs and leg.name in legs and leg.state.waiting:
                leg.trigger_price, leg.limit_price = legs[leg.name]
        if quantity is not None:
            gtt.quantity = quantity
        gtt.updated_at = self.clock.now()
        self._gtt_changed()
        self._advance(self.core(gtt.instrument_key), gtt)
        return gtt

    def cancel_gtt(self, gtt_id: str) -> SimGtt:
        """Cancel the waiting legs (a fired leg's order keeps working)."""
        self.roll_day()
        gtt = self._active_gtt(gtt_id)
        for leg in gtt.legs:
            if leg.state.waiting:
                leg.state = LegState.CANCELLED
        gtt.deleted, gtt.updated_at = True, self.clock.now()
        self._gtt_changed()
        self._advance(self.core(gtt.instrument_key), gtt)
        return gtt

    def _advance(self, core: MatchingCore, gtt: SimGtt) -> None:
        """Settle fired legs from their orders, fire the legs the last price crosses (the exit legs
        are one-cancels-the-other; with an entry leg they arm once its order filled)."""
        for leg in gtt.legs:
            self._settle(leg)
        price = core.last_price
        exits = gtt.exit_legs
        if gtt.has_entry:
            entry = gtt.legs[0]
            if entry.state is LegState.SCHEDULED and price is not None and entry.direction.crossed(
                    price, entry.trigger_price):
                self._fire(gtt, entry, price)
            if entry.state in (LegState.FAILED, LegState.CANCELLED):
                for leg in exits:
                    if leg.state.waiting:
                        leg.state = LegState.CANCELLED
            elif entry.state is LegState.COMPLETED:
                for leg in exits:
                    if leg.state is LegState.PENDING:
                        leg.state = LegState.SCHEDULED
        if price is not None:
            for leg in exits:
                if leg.state is LegState.SCHEDULED and leg.direction.crossed(price, leg.trigger_price):
                    self._fire(gtt, leg, price)
                    for other in exits:
                        if other is not leg and other.state.waiting:
                            other.state = LegState.CANCELLED
                    break
        if not gtt.active and all(leg.state is not LegState.TRIGGERED for leg in gtt.legs):
            core.gtts.pop(gtt.gtt_id, None)

    def _fire(self, gtt: SimGtt, leg: GttLeg, price: float) -> None:
        """Place the leg's LIMIT order; it matches at once against `price` (a gap through the
        limit leaves it OPEN)."""
        limit = leg.limit_price if leg.limit_price is not None else price
        order = self.place_order(gtt.instrument_key, leg.side, gtt.quantity, OrderType.LIMIT, gtt.product,
                                 price=limit, gtt_id=gtt.gtt_id)
        leg.order_id, leg.triggered_at_price, leg.state = order.order_id, price, LegState.TRIGGERED
        gtt.updated_at = self.clock.now()
        self.exit_changes += 1
        self._settle(leg)

    def _settle(self, leg: GttLeg) -> None:
        order = self.orders.get(leg.order_id or "")
        if order is None or leg.state is not LegState.TRIGGERED:
            return
        if order.status is OrderStatus.FILLED:
            leg.state = LegState.COMPLETED
            self._gtt_changed()
        elif order.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
            leg.state = LegState.FAILED
            leg.message = order.reason or f"order {order.status}"
            self._gtt_changed()

    def _gtt_changed(self) -> None:
        self.revision += 1
        self.exit_changes += 1

    # persistence --------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The exchange's state as JSON-able data (see `restore`)."""
        return {
            "sequence": self.sequence, "day": self.day.isoformat() if self.day else None,
            "prices": {key: core.last_price for key, core in self.cores.items() if core.last_price is not None},
            "orders": [_plain(asdict(o)) for o in self.orders.values()],
            "fills": [_plain(asdict(f)) for f in self.fills],
            "gtts": [_plain(asdict(g)) for g in self.gtts.values()],
            "holdings": [[key, product, h.quantity, h.average_price] for (key, product), h in self.holdings.items()],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a `snapshot()` (a sandbox book kept across processes)."""
        self.sequence = int(state["sequence"])
        self.day = date.fromisoformat(state["day"]) if state.get("day") else None
        self.cores.clear()
        for key, price in state["prices"].items():
            self.core(key).last_price = float(price)
        self.orders = {row["order_id"]: _order(row) for row in state["orders"]}
        for order in self.orders.values():
            if order.is_working:
                self.core(order.instrument_key).working[order.order_id] = order
        self.fills = [_fill(row) for row in state["fills"]]
        self.gtts = {row["gtt_id"]: _gtt(row) for row in state["gtts"]}
        for gtt in self.gtts.values():
            if gtt.active or any(leg.state is LegState.TRIGGERED for leg in gtt.legs):
                self.core(gtt.instrument_key).gtts[gtt.gtt_id] = gtt
        self.holdings = {(key, product): Holding(int(q), float(a)) for key, product, q, a in state["holdings"]}
        self.exit_changes += 1


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return {k: convert(v) for k, v in data.items()}


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _order(row: dict[str, Any]) -> SimOrder:
    names = {f.name for f in fields(SimOrder)}
    order = SimOrder(**{k: v for k, v in row.items() if k in names})
    order.side, order.order_type, order.status = Side(row["side"]), OrderType(row["order_type"]), OrderStatus(
        row["status"])
    order.reject_code = RejectCode(row["reject_code"]) if row.get("reject_code") else None
    order.placed_at = _time(row["placed_at"]) or order.placed_at
    order.updated_at = _time(row.get("updated_at"))
    return order


def _fill(row: dict[str, Any]) -> SimFill:
    return SimFill(**{**row, "side": Side(row["side"]), "ts": _time(row["ts"])})


def _gtt(row: dict[str, Any]) -> SimGtt:
    legs = [GttLeg(**{**leg, "direction": TriggerDirection(leg["direction"]), "side": Side(leg["side"]),
                      "state": LegState(leg["state"])}) for leg in row["legs"]]
    return SimGtt(**{**row, "legs": legs, "created_at": _time(row["created_at"]),
                     "updated_at": _time(row.get("updated_at"))})


def _later(moment: datetime, at_ms: int) -> bool:
    return moment.timestamp() * 1000 > at_ms
