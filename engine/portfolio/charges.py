"""Indian equity charges per executed order, by venue (zerodha, upstox; paper is charged as the
default venue, zerodha), by product (CNC delivery, MIS intraday) and by trade date, from
effective-dated rate tables. Rates are fractions of the order's turnover unless noted:

- brokerage: `brokerage_per_order` rupees + min(turnover × `brokerage_pct`, `brokerage_cap`)
- STT: turnover × `stt_buy` (buy) or `stt_sell` (sell)
- exchange transaction charge (NSE): turnover × `exchange_txn`
- SEBI fee: turnover × `sebi_per_crore` / 1 crore (10^7)
- stamp duty: turnover × `stamp_duty_buy`, buy side only
- GST: `gst` × (brokerage + exchange charge + SEBI fee), and × the DP charge
- DP (depository) charge: `dp_per_scrip` rupees + GST once per scrip per day shares leave the demat
  account (a delivery sell); never for MIS or a same-day CNC round trip

A key set in the `[charges]` settings section (TOML, `AUTOTRADER_CHARGES__*`) replaces the table's
value on every date; an unset key follows the table. A CNC buy and sell of the same day is charged
as intraday (the brokers' and the exchange's rule), without DP.

Sources (fetched 2026-12 through the project's search tool; docs/execution.md, "Charges"):
Zerodha support "What is the brokerage at Zerodha for equity?" and "What does Depository Participant
(DP) charge mean?"; upstox.com/pricing; NSE transaction charge 0.00322 % from 1 Apr 2024, 0.00297 %
from 1 Oct 2024 (as both brokers' pricing pages list it).

Amounts are kept unrounded and rounded to paise only in totals (brokers' contract notes round
some items to the rupee; the difference is a few rupees at most)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

from engine.brokers.venue_rules import VENUES, venue_of
from engine.models import Product, Side
from engine.settings import ChargesSettings

if TYPE_CHECKING:
    from engine.settings import Settings

CRORE = 10_000_000.0
EARLIEST = date(2000, 1, 1)  # "since always" in the tables


@dataclass(frozen=True, slots=True)
class RateCard:
    """Every rate of one venue, product and date. The first nine are the `[charges]` settings keys."""

    brokerage_per_order: float
    brokerage_pct: float
    brokerage_cap: float
    stt_buy: float
    stt_sell: float
    exchange_txn: float
    sebi_per_crore: float
    stamp_duty_buy: float
    gst: float
    dp_per_scrip: float  # rupees before GST, per scrip per sell day from the demat account


RateChanges = Sequence[tuple[date, Mapping[str, float]]]  # (effective from, the rates that change then)

# Statutory and exchange rates, per product.
STATUTORY: dict[Product, RateChanges] = {
    Product.CNC: [(EARLIEST, {"stt_buy": 0.001, "stt_sell": 0.001, "stamp_duty_buy": 0.00015,
                              "sebi_per_crore": 10.0, "gst": 0.18})],
    Product.MIS: [(EARLIEST, {"stt_buy": 0.0, "stt_sell": 0.00025, "stamp_duty_buy": 0.00003,
                              "sebi_per_crore": 10.0, "gst": 0.18})],
}
NSE_TRANSACTION: RateChanges = [
    (EARLIEST, {"exchange_txn": 0.0000325}),
    (date(2024, 4, 1), {"exchange_txn": 0.0000322}),
    (date(2024, 10, 1), {"exchange_txn": 0.0000297}),  # NSE's flat rate after SEBI's true-to-label circular
]
# Brokerage and DP charges, per venue and product.
BROKER: dict[tuple[str, Product], RateChanges] = {
    ("zerodha", Product.CNC): [(EARLIEST, {"brokerage_per_order": 0.0, "brokerage_pct": 0.0, "brokerage_cap": 20.0,
                                           "dp_per_scrip": 13.0})],  # DP ₹13 + GST = ₹15.34
    ("zerodha", Product.MIS): [(EARLIEST, {"brokerage_per_order": 0.0, "brokerage_pct": 0.0003, "brokerage_cap": 20.0,
                                           "dp_per_scrip": 0.0})],  # min(₹20, 0.03 %)
    ("upstox", Product.CNC): [(EARLIEST, {"brokerage_per_order": 0.0, "brokerage_pct": 0.025, "brokerage_cap": 20.0,
                                          "dp_per_scrip": 18.5})],  # min(₹20, 2.5 %); DP ₹18.5 + GST
    ("upstox", Product.MIS): [(EARLIEST, {"brokerage_per_order": 0.0, "brokerage_pct": 0.0005, "brokerage_cap": 20.0,
                                          "dp_per_scrip": 0.0})],  # min(₹20, 0.05 %)
}
SETTINGS_KEYS = tuple(f.name for f in fields(RateCard) if f.name != "dp_per_scrip")


def _as_of(changes: RateChanges, day: date | None) -> dict[str, float]:
    """The rates of `changes` in force on `day` (the latest when None)."""
    rates: dict[str, float] = {}
    for since, values in sorted(changes, key=lambda change: change[0]):
        if day is None or since <= day:
            rates.update(values)
    return rates


@lru_cache(maxsize=256)  # the tables are constants; a backtest asks once per order otherwise
def published_rates(venue: str, product: Product, day: date | None = None) -> RateCard:
    """The table's rates of `venue` ("zerodha" | "upstox") and `product` on `day` (today's when None)."""
    if venue not in VENUES:
        raise ValueError(f"no charge table for venue {venue!r}: the venues are {', '.join(VENUES)}")
    merged = {**_as_of(STATUTORY[product], day), **_as_of(NSE_TRANSACTION, day), **_as_of(BROKER[venue, product], day)}
    return RateCard(**merged)


@dataclass(frozen=True, slots=True)
class ChargeBreakdown:
    brokerage: float
    stt: float
    exchange_txn: float
    sebi: float
    stamp_duty: float
    gst: float
    dp: float = 0.0  # DP charge before its GST (which is in `gst`)

    @property
    def total(self) -> float:
        return self.brokerage + self.stt + self.exchange_txn + self.sebi + self.stamp_duty + self.gst + self.dp

    def __add__(self, other: ChargeBreakdown) -> ChargeBreakdown:
        return ChargeBreakdown(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


NO_CHARGES = ChargeBreakdown(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


class ChargeCalculator:
    """Charges of one venue and product. `overrides` are the `[charges]` keys the user set (see
    `ChargesSettings.model_fields_set`); `trading_day` dates an order that names no date of its own."""

    def __init__(self, overrides: ChargesSettings, *, venue: str = "zerodha", product: Product | str = Product.CNC,
                 trading_day: date | None = None) -> None:
        self.venue = venue_of(venue)
        self.product = Product(product)
        self.trading_day = trading_day
        self._overrides = {key: getattr(overrides, key) for key in SETTINGS_KEYS if key in overrides.model_fields_set}
        self._cards: dict[tuple[Product, date], RateCard] = {}  # what `rates_on` found, by product and day

    @classmethod
    def from_settings(cls, settings: Settings, *, trading_day: date | None = None) -> ChargeCalculator:
        """The venue of `settings.broker` (paper: the default venue), `execution.product`, the `[charges]` keys."""
        return cls(settings.charges, venue=settings.broker, product=settings.execution.product,
                   trading_day=trading_day)

    def rates_on(self, day: date | None = None, *, intraday: bool | None = None) -> RateCard:
        """The rates on `day` (default: the calculator's trading day, else today's table), intraday
        (MIS rates) when asked or when the product is MIS; the user's `[charges]` keys win."""
        product = Product.MIS if intraday or (intraday is None and self.product is Product.MIS) else Product.CNC
        day = day or self.trading_day
        card = self._cards.get((product, day)) if day is not None else None
        if card is None:
            card = replace(published_rates(self.venue, product, day), **self._overrides)
            if day is not None:  # an undated card is today's: not kept
                self._cards[product, day] = card
        return card

    def order(self, side: Side, quantity: int, price: float, *, on: date | None = None,
              intraday: bool | None = None) -> ChargeBreakdown:
        """Charges of one executed order of `quantity` at `price` (no DP: see `dp_charges`)."""
        turnover = quantity * price
        if turnover <= 0:
            return NO_CHARGES
        rates = self.rates_on(on, intraday=intraday)
        brokerage = rates.brokerage_per_order + min(turnover * rates.brokerage_pct, rates.brokerage_cap)
        buying = side is Side.BUY
        stt = turnover * (rates.stt_buy if buying else rates.stt_sell)
        exchange = turnover * rates.exchange_txn
        sebi = turnover * rates.sebi_per_crore / CRORE
        stamp = turnover * rates.stamp_duty_buy if buying else 0.0
        gst = rates.gst * (brokerage + exchange + sebi)
        return ChargeBreakdown(brokerage, stt, exchange, sebi, stamp, gst)

    def dp_charges(self, delivery_sells: Iterable[tuple[str, date]]) -> ChargeBreakdown:
        """DP charges of delivery sells, each (instrument key, sell day): once per scrip per day,
        whatever the number of sells or shares. Nothing for an MIS calculator."""
        if self.product is Product.MIS:
            return NO_CHARGES
        dp = gst = 0.0
        for _key, day in set(delivery_sells):
            rates = self.rates_on(day)
            dp += rates.dp_per_scrip
            gst += rates.gst * rates.dp_per_scrip
        return ChargeBreakdown(0.0, 0.0, 0.0, 0.0, 0.0, gst, dp)

    def round_trip(self, quantity: int, entry_price: float, exit_price: float, *, entry_day: date | None = None,
                   exit_day: date | None = None, instrument_key: str = "") -> ChargeBreakdown:
        """Buy `quantity` at `entry_price`, sell them at `exit_price`. With `exit_day`, a CNC sell on a
        later day than `entry_day` pays one DP charge, and a CNC round trip within one day is charged
        as intraday; without the days, delivery rates and no DP (the sell day is unknown)."""
        same_day = entry_day is not None and entry_day == exit_day
        intraday = True if same_day else None
        charges = (self.order(Side.BUY, quantity, entry_price, on=entry_day, intraday=intraday)
                   + self.order(Side.SELL, quantity, exit_price, on=exit_day, intraday=intraday))
        if exit_day is not None and not same_day:
            charges += self.dp_charges([(instrument_key, exit_day)])
        return charges

    def trade_pnl(self, quantity: int, entry_price: float, exit_price: float, *, entry_day: date | None = None,
                  exit_day: date | None = None) -> tuple[float, float, float]:
        """(gross P&L, charges, net P&L) of a closed long, rounded to paise (see `round_trip`)."""
        gross = round(quantity * (exit_price - entry_price), 2)
        charges = round(self.round_trip(quantity, entry_price, exit_price, entry_day=entry_day,
                                        exit_day=exit_day).total, 2)
        return gross, charges, round(gross - charges, 2)
