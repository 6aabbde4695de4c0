from __future__ import annotations

import pytest

from engine.models import Side
from engine.portfolio.charges import ChargeCalculator
from engine.settings import ChargesSettings

DEFAULT = ChargeCalculator(ChargesSettings())


def test_worked_example_delivery_round_trip_with_default_rates() -> None:
    # Buy 100 @ 1000 (turnover 1,00,000): STT 100, exchange 2.97, SEBI 0.10, stamp 15, GST 18% of 3.07 = 0.5526
    buy = DEFAULT.order(Side.BUY, 100, 1000.0)
    assert (buy.brokerage, buy.stt, buy.stamp_duty) == pytest.approx((0.0, 100.0, 15.0))
    assert buy.exchange_txn == pytest.approx(2.97)
    assert buy.sebi == pytest.approx(0.10)
    assert buy.gst == pytest.approx(0.5526)
    assert buy.total == pytest.approx(118.6226)
    # Sell 100 @ 1100 (1,10,000): STT 110, exchange 3.267, SEBI 0.11, no stamp, GST 18% of 3.377 = 0.60786
    sell = DEFAULT.order(Side.SELL, 100, 1100.0)
    assert sell.stamp_duty == 0.0
    assert sell.total == pytest.approx(113.98486)
    assert DEFAULT.trade_pnl(100, 1000.0, 1100.0) == (10_000.0, 232.61, 9767.39)


def test_worked_example_with_capped_percentage_brokerage() -> None:
    # 0.03% of 1,00,000 = 30, capped at 20 per order; GST on 20 + 2.97 + 0.10 = 4.1526
    rates = ChargesSettings(brokerage_pct=0.0003, brokerage_cap=20.0)
    calculator = ChargeCalculator(rates)
    buy = calculator.order(Side.BUY, 100, 1000.0)
    assert buy.brokerage == 20.0
    assert buy.total == pytest.approx(142.2226)
    assert calculator.trade_pnl(100, 1000.0, 1100.0) == (10_000.0, 279.81, 9720.19)
    # small order: 0.03% of 10,000 = 3 (under the cap) plus a flat 5 per order
    flat = ChargeCalculator(ChargesSettings(brokerage_pct=0.0003, brokerage_per_order=5.0))
    assert flat.order(Side.SELL, 10, 1000.0).brokerage == pytest.approx(8.0)


def test_losing_trade_net_is_gross_minus_charges() -> None:
    # 50 @ 200 -> 190: gross -500; buy 10,000: 10 + 0.297 + 0.01 + 1.5 + 0.05526 = 11.86226;
    # sell 9,500: 9.5 + 0.28215 + 0.0095 + 0.0524970 = 9.8441470; total 21.70641 -> 21.71
    assert DEFAULT.trade_pnl(50, 200.0, 190.0) == (-500.0, 21.71, -521.71)


def test_zero_turnover_costs_nothing() -> None:
    assert DEFAULT.order(Side.BUY, 0, 100.0).total == 0.0
