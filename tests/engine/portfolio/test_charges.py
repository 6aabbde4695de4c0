from __future__ import annotations

from datetime import date

import pytest

from engine.models import Product, Side
from engine.portfolio.charges import ChargeCalculator, published_rates
from engine.settings import ChargesSettings, Settings

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


# --- effective dates, venues, products, DP charges, overrides (worked by hand) -----------------

BEFORE_OCT_2024 = date(2024, 6, 4)
FROM_OCT_2024 = date(2024, 10, 1)


def test_nse_transaction_charge_follows_its_effective_date() -> None:
    # Buy 1,00,000 on 4 Jun 2024: exchange 0.00322 % = 3.22; GST 18 % of (3.22 + 0.10) = 0.5976;
    # total 100 + 3.22 + 0.10 + 15 + 0.5976 = 118.9176. From 1 Oct 2024: 2.97 and 118.6226.
    before = DEFAULT.order(Side.BUY, 100, 1000.0, on=BEFORE_OCT_2024)
    assert before.exchange_txn == pytest.approx(3.22)
    assert before.total == pytest.approx(118.9176)
    assert DEFAULT.order(Side.BUY, 100, 1000.0, on=FROM_OCT_2024).total == pytest.approx(118.6226)
    assert published_rates("zerodha", Product.CNC, date(2024, 3, 28)).exchange_txn == pytest.approx(0.0000325)
    dated = ChargeCalculator(ChargesSettings(), trading_day=BEFORE_OCT_2024)  # an order without a date
    assert dated.order(Side.BUY, 100, 1000.0).exchange_txn == pytest.approx(3.22)


def test_zerodha_mis_round_trip() -> None:
    # Buy 100 @ 1000: brokerage min(30, 20) = 20, no STT, exchange 2.97, SEBI 0.10, stamp 0.003 % = 3,
    # GST 18 % of 23.07 = 4.1526: 30.2226. Sell 100 @ 1010 (1,01,000): brokerage 20, STT 0.025 % = 25.25,
    # exchange 2.9997, SEBI 0.101, GST 18 % of 23.1007 = 4.158126: 52.508826. Round trip 82.731426.
    mis = ChargeCalculator(ChargesSettings(), venue="zerodha", product=Product.MIS)
    buy = mis.order(Side.BUY, 100, 1000.0, on=FROM_OCT_2024)
    assert (buy.brokerage, buy.stt, buy.stamp_duty) == pytest.approx((20.0, 0.0, 3.0))
    assert buy.total == pytest.approx(30.2226)
    sell = mis.order(Side.SELL, 100, 1010.0, on=FROM_OCT_2024)
    assert sell.stt == pytest.approx(25.25) and sell.total == pytest.approx(52.508826)
    assert mis.trade_pnl(100, 1000.0, 1010.0, entry_day=FROM_OCT_2024, exit_day=FROM_OCT_2024) == (
        1000.0, 82.73, 917.27)
    assert mis.order(Side.BUY, 10, 500.0).brokerage == pytest.approx(1.5)  # 0.03 % of 5,000, under ₹20


def test_a_same_day_cnc_round_trip_is_charged_as_intraday_without_dp() -> None:
    assert DEFAULT.trade_pnl(100, 1000.0, 1010.0, entry_day=FROM_OCT_2024, exit_day=FROM_OCT_2024) == (
        1000.0, 82.73, 917.27)


def test_a_delivery_sell_on_a_later_day_pays_one_dp_charge() -> None:
    # 118.6226 (buy) + 113.98486 (sell) + DP ₹13 + 18 % GST = 15.34: 247.94746
    charges = DEFAULT.round_trip(100, 1000.0, 1100.0, entry_day=FROM_OCT_2024, exit_day=date(2024, 10, 3))
    assert (charges.dp, charges.total) == pytest.approx((13.0, 247.94746))
    assert DEFAULT.trade_pnl(100, 1000.0, 1100.0, entry_day=FROM_OCT_2024, exit_day=date(2024, 10, 3)) == (
        10_000.0, 247.95, 9752.05)


def test_dp_charges_are_per_scrip_per_sell_day() -> None:
    # RELIANCE sold twice on the 3rd, TCS on the 3rd, RELIANCE again on the 4th: 3 scrip-days × 15.34
    day, next_day = date(2024, 10, 3), date(2024, 10, 4)
    sells = [("RELIANCE", day), ("RELIANCE", day), ("TCS", day), ("RELIANCE", next_day)]
    assert DEFAULT.dp_charges(sells).total == pytest.approx(46.02)
    upstox = ChargeCalculator(ChargesSettings(), venue="upstox")
    assert upstox.dp_charges([("RELIANCE", day)]).total == pytest.approx(21.83)  # ₹18.5 + 18 % GST
    mis = ChargeCalculator(ChargesSettings(), product=Product.MIS)
    assert mis.dp_charges(sells).total == 0.0


def test_upstox_delivery_brokerage_is_20_per_order() -> None:
    # Buy 1,00,000: brokerage min(2.5 % = 2,500, 20) = 20; GST 18 % of 23.07 = 4.1526; 142.2226
    upstox = ChargeCalculator(ChargesSettings(), venue="upstox")
    buy = upstox.order(Side.BUY, 100, 1000.0, on=FROM_OCT_2024)
    assert buy.brokerage == 20.0 and buy.total == pytest.approx(142.2226)
    assert upstox.order(Side.BUY, 1, 400.0).brokerage == pytest.approx(10.0)  # 2.5 % of 400
    upstox_mis = ChargeCalculator(ChargesSettings(), venue="upstox", product=Product.MIS)
    assert upstox_mis.order(Side.BUY, 10, 1000.0).brokerage == pytest.approx(5.0)  # 0.05 % of 10,000


def test_a_user_override_wins_on_every_date() -> None:
    overridden = ChargeCalculator(ChargesSettings(exchange_txn=0.00005))
    assert overridden.order(Side.BUY, 100, 1000.0, on=BEFORE_OCT_2024).exchange_txn == pytest.approx(5.0)
    assert overridden.order(Side.BUY, 100, 1000.0, on=FROM_OCT_2024).exchange_txn == pytest.approx(5.0)


@pytest.mark.parametrize(("broker", "venue"), [("paper", "zerodha"), ("zerodha-sandbox", "zerodha"),
                                                ("upstox", "upstox"), ("upstox-sandbox", "upstox")])
def test_the_calculator_of_the_settings_follows_the_broker(broker: str, venue: str) -> None:
    settings = Settings(broker=broker)
    calculator = ChargeCalculator.from_settings(settings, trading_day=FROM_OCT_2024)
    assert (calculator.venue, calculator.product, calculator.trading_day) == (venue, Product.CNC, FROM_OCT_2024)


def test_an_unknown_venue_table_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="no charge table for venue 'kite'"):
        published_rates("kite", Product.CNC)
