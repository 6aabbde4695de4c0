"""NSE equity tick sizes by price band, and the one rounding policy of every price the engine sends.

The band rule (NSE, tick size revision effective 15 April 2025, reviewed monthly on the closing price):

| price (rupees)   | tick |
|------------------|------|
| below 250        | 0.01 |
| 250 - 1,000      | 0.05 |
| 1,000 - 5,000    | 0.10 |
| 5,000 - 10,000   | 0.50 |
| 10,000 - 20,000  | 1.00 |
| 20,000 and above | 5.00 |

A band includes its lower bound (₹250 trades in 0.05). Before 2025-04-15 the rule here is 0.05 for all
equity: an assumption (the engine's earlier fixed tick); where a broker master says 0.01 for a cheap
stock in that period, the engine still uses 0.05, which lies on the 0.01 grid, so nothing is rejected.
NSE sets the tick monthly from a close, so the rule applied at the last close can differ from the
exchange's near a band edge: the broker's master is the first source, this rule the fallback and a
cross-check (`engine.data.master`), and the engine uses the coarser of the two.

Rounding (`round_for`): every price the engine sends goes through `Instrument.round_price` with the
direction chosen here, per role, so a price is always on the tick grid and never worse than intended:

- ENTRY_LIMIT (BUY LIMIT above the market, the worst price we accept): down, never pays more.
- STOP_TRIGGER (SELL stop of a long): up, the stop is never loosened (never more risk than planned).
- TARGET_TRIGGER (SELL target of a long): up, the reward is never less than planned (as the setup's).
- STOP_LIMIT, TARGET_LIMIT (SELL LIMIT below its trigger): down, stays marketable once triggered."""

from __future__ import annotations

import enum
import math
from datetime import date

from engine.models import Instrument

BAND_RULE_FROM = date(2025, 4, 15)
TICK_BEFORE_BAND_RULE = 0.05
# (lower bound of the band in rupees, tick in rupees), ascending
PRICE_BANDS: tuple[tuple[float, float], ...] = (
    (0.0, 0.01),
    (250.0, 0.05),
    (1_000.0, 0.10),
    (5_000.0, 0.50),
    (10_000.0, 1.00),
    (20_000.0, 5.00),
)


def tick_for_price(price: float, on: date) -> float:
    """The NSE equity tick (rupees) of a stock closing at `price`, by the rule in force on `on`."""
    if not math.isfinite(price) or price <= 0:
        raise ValueError(f"tick_for_price: price must be a positive number, got {price!r}")
    if on < BAND_RULE_FROM:
        return TICK_BEFORE_BAND_RULE
    tick = PRICE_BANDS[0][1]
    for lower, band_tick in PRICE_BANDS:
        if price >= lower:
            tick = band_tick
    return tick


def paise(tick: float) -> int:
    """A tick in whole paise (every NSE tick is a whole number of paise)."""
    return round(tick * 100)


def coarser_tick(first: float, second: float) -> float:
    """The finest tick whose grid lies on both grids (their least common multiple). NSE's steps nest
    (each divides the next), so this is the larger of the two."""
    return math.lcm(paise(first), paise(second)) / 100


class PriceRole(enum.StrEnum):
    ENTRY_LIMIT = "entry_limit"
    STOP_TRIGGER = "stop_trigger"
    STOP_LIMIT = "stop_limit"
    TARGET_TRIGGER = "target_trigger"
    TARGET_LIMIT = "target_limit"


ROUNDING: dict[PriceRole, str] = {
    PriceRole.ENTRY_LIMIT: "down",
    PriceRole.STOP_TRIGGER: "up",
    PriceRole.STOP_LIMIT: "down",
    PriceRole.TARGET_TRIGGER: "up",
    PriceRole.TARGET_LIMIT: "down",
}


def round_for(instrument: Instrument, price: float, role: PriceRole) -> float:
    """`price` on `instrument`'s tick grid, rounded the way `role` needs (see the module docstring)."""
    return instrument.round_price(price, ROUNDING[role])


__all__ = [
    "BAND_RULE_FROM",
    "PRICE_BANDS",
    "ROUNDING",
    "TICK_BEFORE_BAND_RULE",
    "PriceRole",
    "coarser_tick",
    "paise",
    "round_for",
    "tick_for_price",
]
