"""Indian equity charges per executed order, from `settings.charges` (rates as fractions of the
order's turnover unless noted):

- brokerage: `brokerage_per_order` rupees + min(turnover × `brokerage_pct`, `brokerage_cap`)
- STT: turnover × `stt_buy` (buy) or `stt_sell` (sell)
- exchange transaction charge: turnover × `exchange_txn`
- SEBI fee: turnover × `sebi_per_crore` / 1 crore (10^7)
- stamp duty: turnover × `stamp_duty_buy`, buy side only
- GST: `gst` × (brokerage + exchange charge + SEBI fee)

Amounts are kept unrounded and rounded to paise only in totals (brokers' contract notes round
some items to the rupee; the difference is a few rupees at most)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.models import Side
from engine.settings import ChargesSettings

CRORE = 10_000_000.0


@dataclass(frozen=True, slots=True)
class ChargeBreakdown:
    brokerage: float
    stt: float
    exchange_txn: float
    sebi: float
    stamp_duty: float
    gst: float

    @property
    def total(self) -> float:
        return self.brokerage + self.stt + self.exchange_txn + self.sebi + self.stamp_duty + self.gst

    def __add__(self, other: ChargeBreakdown) -> ChargeBreakdown:
        return ChargeBreakdown(
            self.brokerage + other.brokerage,
            self.stt + other.stt,
            self.exchange_txn + other.exchange_txn,
            self.sebi + other.sebi,
            self.stamp_duty + other.stamp_duty,
            self.gst + other.gst,
        )


class ChargeCalculator:
    def __init__(self, rates: ChargesSettings) -> None:
        self.rates = rates

    def order(self, side: Side, quantity: int, price: float) -> ChargeBreakdown:
        """Charges of one executed order of `quantity` at `price`."""
        rates = self.rates
        turnover = quantity * price
        if turnover <= 0:
            return ChargeBreakdown(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        brokerage = rates.brokerage_per_order + min(turnover * rates.brokerage_pct, rates.brokerage_cap)
        buying = side is Side.BUY
        stt = turnover * (rates.stt_buy if buying else rates.stt_sell)
        exchange = turnover * rates.exchange_txn
        sebi = turnover * rates.sebi_per_crore / CRORE
        stamp = turnover * rates.stamp_duty_buy if buying else 0.0
        gst = rates.gst * (brokerage + exchange + sebi)
        return ChargeBreakdown(brokerage, stt, exchange, sebi, stamp, gst)

    def round_trip(self, quantity: int, entry_price: float, exit_price: float) -> ChargeBreakdown:
        """Buy `quantity` at `entry_price`, sell them at `exit_price`."""
        return self.order(Side.BUY, quantity, entry_price) + self.order(Side.SELL, quantity, exit_price)

    def trade_pnl(self, quantity: int, entry_price: float, exit_price: float) -> tuple[float, float, float]:
        """(gross P&L, charges, net P&L) of a closed long, rounded to paise."""
        gross = round(quantity * (exit_price - entry_price), 2)
        charges = round(self.round_trip(quantity, entry_price, exit_price).total, 2)
        return gross, charges, round(gross - charges, 2)
