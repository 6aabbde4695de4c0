"""Backtest statistics against examples worked by hand (the formulas are in engine/research/statistics.py)."""

from __future__ import annotations

import math
from datetime import date

import pytest

from engine.research import statistics as stats

CAPITAL = 100.0
EQUITY = [(date(2024, 1, 29), 110.0), (date(2024, 1, 30), 99.0), (date(2024, 2, 1), 121.0)]
# daily returns: +10 %, −10 %, 121/99 − 1 = +22.2 %; mean 7.407 %, sample stdev 16.267 %


def test_daily_returns_start_from_the_capital() -> None:
    assert stats.daily_returns(CAPITAL, [v for _, v in EQUITY]) == pytest.approx([0.1, -0.1, 121 / 99 - 1])


def test_sharpe_is_the_annualised_mean_over_the_sample_deviation() -> None:
    returns = stats.daily_returns(CAPITAL, [v for _, v in EQUITY])
    # 0.074074 / 0.162668 × √252
    assert stats.sharpe(returns) == pytest.approx(7.2287657613)
    assert stats.sharpe(returns, risk_free=0.0252) == pytest.approx((0.0740741 - 0.0001) / 0.1626681 * math.sqrt(252),
                                                                    rel=1e-5)


def test_sortino_divides_by_the_downside_deviation_over_all_days() -> None:
    returns = stats.daily_returns(CAPITAL, [v for _, v in EQUITY])
    # downside deviation √((0 + 0.01 + 0) / 3) = 0.057735
    assert stats.sortino(returns) == pytest.approx(20.3670030887)


def test_undefined_ratios_are_none_not_nan() -> None:
    assert stats.sharpe([0.01]) is None
    assert stats.sharpe([0.01, 0.01]) is None  # no deviation
    assert stats.sortino([0.01, 0.02]) is None  # no down day
    assert stats.profit_factor([{"net_pnl": 5.0}]) is None
    assert stats.avg_r([{"net_pnl": 5.0}]) is None
    assert stats.exposure_pct([], []) is None


def test_cagr_compounds_over_calendar_time() -> None:
    # 100 → 121 from 2022-01-02 (held the day before the first trading day) to 2024-01-02: 730 days
    assert stats.cagr_pct(100.0, 121.0, date(2022, 1, 3), date(2024, 1, 2)) == pytest.approx(10.0071811384)


def test_max_drawdown_counts_from_the_peak_including_the_capital() -> None:
    assert stats.max_drawdown_pct(CAPITAL, [110.0, 99.0, 121.0]) == pytest.approx(10.0)
    assert stats.max_drawdown_pct(CAPITAL, [90.0, 95.0]) == pytest.approx(10.0)
    assert stats.max_drawdown_pct(CAPITAL, [101.0, 102.0]) == 0.0


def test_profit_factor_and_average_r() -> None:
    trades = [
        {"symbol": "A", "net_pnl": 300.0, "initial_risk": 100.0},   # +3R
        {"symbol": "B", "net_pnl": -100.0, "initial_risk": 100.0},  # −1R
        {"symbol": "A", "net_pnl": -50.0, "initial_risk": 50.0},    # −1R
    ]
    assert stats.profit_factor(trades) == pytest.approx(300 / 150)
    assert stats.avg_r(trades) == pytest.approx((3 - 1 - 1) / 3)


def test_exposure_counts_days_with_a_position_held() -> None:
    days = [date(2024, 6, d) for d in (3, 4, 5, 6, 7)]
    held = [(date(2024, 6, 3), date(2024, 6, 4)), (date(2024, 6, 7), None)]
    assert stats.exposure_pct(days, held) == pytest.approx(60.0)


def test_monthly_returns_chain_month_ends() -> None:
    # January ends at 99 (−1 % on the capital), February at 121 (+22.2 % on 99)
    assert stats.monthly_returns(CAPITAL, EQUITY) == pytest.approx({"2024-01": -1.0, "2024-02": 100 * (121 / 99 - 1)})


def test_per_symbol_rows_sorted_by_net_pnl() -> None:
    trades = [{"symbol": "A", "net_pnl": 10.0}, {"symbol": "B", "net_pnl": 30.0}, {"symbol": "A", "net_pnl": -4.0}]
    assert stats.per_symbol(trades) == [
        {"symbol": "B", "trades": 1, "wins": 1, "net_pnl": 30.0, "win_rate": 1.0},
        {"symbol": "A", "trades": 2, "wins": 1, "net_pnl": 6.0, "win_rate": 0.5},
    ]


def test_benchmark_buys_at_the_close_before_the_first_day() -> None:
    closes = {date(2024, 5, 31): 22_500.0, date(2024, 6, 3): 23_250.0, date(2024, 6, 4): 21_900.0,
              date(2024, 6, 5): 22_600.0}
    assert stats.benchmark_return_pct(closes, date(2024, 6, 3), date(2024, 6, 4)) == pytest.approx(
        100 * (21_900 / 22_500 - 1))
    assert stats.benchmark_return_pct(closes, date(2024, 5, 31), date(2024, 6, 5)) is None  # no close before


def test_summary_has_every_field_and_no_nan() -> None:
    summary = stats.summary_statistics(CAPITAL, EQUITY, [{"symbol": "A", "net_pnl": 21.0, "initial_risk": 7.0}],
                                       [(date(2024, 1, 29), date(2024, 2, 1))],
                                       {date(2024, 1, 26): 100.0, date(2024, 2, 1): 105.0})
    assert set(summary) == {"cagr_pct", "sharpe", "sortino", "max_drawdown_pct", "profit_factor", "exposure_pct",
                            "avg_r", "benchmark_return_pct", "monthly_returns_pct", "per_symbol"}
    assert summary["avg_r"] == 3.0 and summary["exposure_pct"] == 100.0 and summary["benchmark_return_pct"] == 5.0
    assert summary["profit_factor"] is None and summary["max_drawdown_pct"] == 10.0


def test_the_shipped_nifty50_closes_give_the_june_2024_election_week() -> None:
    from engine.research.benchmark import load_benchmark_closes
    from tests.conftest import SHIPPED_DATA_DIR

    closes = load_benchmark_closes(SHIPPED_DATA_DIR)
    assert closes[date(2024, 6, 4)] == pytest.approx(21_884.5, abs=1.0)  # the results-day fall
    assert stats.benchmark_return_pct(closes, date(2024, 6, 3), date(2024, 6, 7)) == pytest.approx(
        100 * (closes[date(2024, 6, 7)] / closes[date(2024, 5, 31)] - 1))
