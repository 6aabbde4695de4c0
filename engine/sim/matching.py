"""One matching core per instrument: its working orders, its GTTs and its last traded price.
A traded price of one instrument only ever touches that instrument's core."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from engine.models import Instrument, OrderType, Side
from engine.sim.models import FillModel
from engine.sim.orders import SimGtt, SimOrder

_MARKET_TYPES = (OrderType.MARKET, OrderType.SL_M)


@dataclass(slots=True)
class MatchingCore:
    instrument: Instrument
    fill_model: FillModel
    rng: random.Random
    last_price: float | None = None
    working: dict[str, SimOrder] = field(default_factory=dict)  # order id -> working order
    gtts: dict[str, SimGtt] = field(default_factory=dict)  # gtt id -> GTT with a waiting or working leg

    def protection_bound(self, side: Side, protection: float, reference: float) -> float:
        """The worst price a protected market order accepts: `protection` percent from `reference`."""
        if side is Side.BUY:
            return self.instrument.round_price(reference * (1 + protection / 100), "down")
        return self.instrument.round_price(reference * (1 - protection / 100), "up")

    def fill_price(self, order: SimOrder, price: float) -> float | None:
        """The price `order` fills at when `price` trades, or None when it does not fill (the
        trigger is not crossed, the limit or protection bound is not reached). A crossed trigger
        is remembered: the order stays triggered even if the price comes back."""
        buy = order.side is Side.BUY
        if order.order_type in (OrderType.SL, OrderType.SL_M) and not order.triggered:
            assert order.trigger_price is not None
            if (buy and price < order.trigger_price) or (not buy and price > order.trigger_price):
                return None
            order.triggered = True
        if order.market_protection is not None and order.protection_bound is None and order.order_type in _MARKET_TYPES:
            reference = price if order.order_type is OrderType.SL_M else (self.last_price or price)
            order.protection_bound = self.protection_bound(order.side, order.market_protection, reference)
        limit = order.price if order.order_type not in _MARKET_TYPES else order.protection_bound
        if limit is not None and ((buy and price > limit) or (not buy and price < limit)):
            return None
        market = self.fill_model.market_price(self.instrument, order.side, price, self.rng)
        if limit is None:
            return market
        return min(limit, market) if buy else max(limit, market)

    def fill_quantity(self, order: SimOrder) -> int:
        return self.fill_model.fill_quantity(self.instrument, order.quantity, order.pending_quantity)
