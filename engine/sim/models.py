"""The plug-in models of the simulated exchange (shaped after NautilusTrader's `backtest/models`):
how an order fills (`FillModel`), what a fill costs (`FeeModel`), the venue's own rules
(`VenueRules`) and its order-rate counter (`OrderRateLimit`)."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from engine.models import Instrument, Side

if TYPE_CHECKING:
    from engine.settings import PaperSettings


@dataclass(frozen=True, slots=True)
class FillModel:
    """How working orders fill against a traded price.

    - `slippage_bps`: a marketable order fills this much worse than the traded price (rounded
      against us to the tick grid), never beyond its limit or market-protection bound.
    - `partial_fill_ratio`: each matching price fills this fraction of the order's quantity (whole
      lots, at least one lot) until it is done.
    - `fills_at_next_tick`: an order waits for the next traded price after it arrived (it never
      fills at the price that made us decide); otherwise a marketable order fills on arrival at the
      last traded price.
    - `seed`: seeds the RNG of `random_slippage_bps` (extra slippage drawn uniformly from 0 up to
      it per fill); the default 0 draws nothing, so fills are exactly reproducible either way.
    """

    slippage_bps: float = 0.0
    partial_fill_ratio: float = 1.0
    fills_at_next_tick: bool = False
    random_slippage_bps: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.slippage_bps < 0 or self.random_slippage_bps < 0:
            raise ValueError(f"slippage must be >= 0 bps, got {self.slippage_bps} and {self.random_slippage_bps}")
        if not 0 < self.partial_fill_ratio <= 1:
            raise ValueError(f"partial_fill_ratio must be in (0, 1], got {self.partial_fill_ratio}")

    @classmethod
    def from_settings(cls, paper: PaperSettings) -> FillModel:
        """The `[paper]` settings: the fill model of every simulated venue (paper and sandboxes)."""
        return cls(slippage_bps=paper.slippage_bps, partial_fill_ratio=paper.partial_fill_ratio,
                   fills_at_next_tick=True)

    def rng(self) -> random.Random:
        return random.Random(self.seed)

    def market_price(self, instrument: Instrument, side: Side, traded: float, rng: random.Random) -> float:
        """The price a marketable order of `side` gets when `traded` is the traded price."""
        bps = self.slippage_bps + (rng.uniform(0, self.random_slippage_bps) if self.random_slippage_bps else 0.0)
        if side is Side.BUY:
            return instrument.round_price(traded * (1 + bps / 10_000), "up")
        return instrument.round_price(traded * (1 - bps / 10_000), "down")

    def fill_quantity(self, instrument: Instrument, quantity: int, remaining: int) -> int:
        step = max(instrument.lot_size, instrument.whole_lots(quantity * self.partial_fill_ratio))
        return min(remaining, step)


class FeeModel(Protocol):
    """What one fill costs at the venue (recorded on the fill; the engine's portfolio computes the
    Indian charges itself)."""

    def fee(self, side: Side, quantity: int, price: float) -> float: ...


@dataclass(frozen=True, slots=True)
class NoFees:
    def fee(self, side: Side, quantity: int, price: float) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class TurnoverFees:
    """A fee of `bps` basis points of the fill's turnover."""

    bps: float

    def fee(self, side: Side, quantity: int, price: float) -> float:
        return round(quantity * price * self.bps / 10_000, 2)


@dataclass(frozen=True, slots=True)
class VenueRules:
    """What differs between venues, kept switchable.

    - `require_market_protection`: a MARKET or SL-M order without `market_protection` is REJECTED
      with `market_protection_message` (Kite's rule since 1 April 2026; off by default).
    - `daily_books`: on a new day (by the clock) working orders expire, the order and trade books
      start empty and delivery positions move to holdings (Kite and Upstox do; the paper venue keeps
      one book for its whole life).
    - `orders_per_second`: the order-rate limit over requests (None: unlimited; a fired GTT's leg is
      not a request); an order beyond it is REJECTED with `rate_limit_message`.
    """

    require_market_protection: bool = False
    market_protection_message: str = "Market orders without market protection are not allowed."
    insufficient_holdings_message: str = "Insufficient holdings for a delivery sell."
    daily_books: bool = False
    orders_per_second: float | None = None
    rate_limit_message: str = "Too many requests: the order rate limit was reached."


@dataclass(slots=True)
class OrderRateLimit:
    """Counts orders over the last second of the clock; `allow` says whether one more may go."""

    orders_per_second: float | None = None
    _recent: deque[datetime] = field(default_factory=deque)

    def allow(self, now: datetime) -> bool:
        if self.orders_per_second is None:
            return True
        while self._recent and (now - self._recent[0]).total_seconds() >= 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.orders_per_second:
            return False
        self._recent.append(now)
        return True
