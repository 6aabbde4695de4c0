"""NSE's price-band tick rule and the rounding policy of the prices the engine sends."""

from __future__ import annotations

import math
from datetime import date

import pytest

from engine.data.ticks import BAND_RULE_FROM, PriceRole, coarser_tick, round_for, tick_for_price
from engine.models import Instrument

AFTER = date(2025, 9, 30)


@pytest.mark.parametrize(("price", "tick"), [
    (0.5, 0.01), (249.99, 0.01), (250.0, 0.05), (999.95, 0.05), (1_000.0, 0.10), (4_999.9, 0.10),
    (5_000.0, 0.50), (9_999.5, 0.50), (10_000.0, 1.00), (19_999.0, 1.00), (20_000.0, 5.00), (150_000.0, 5.00),
])
def test_band_rule_from_15_april_2025(price: float, tick: float) -> None:
    assert tick_for_price(price, AFTER) == tick
    assert tick_for_price(price, BAND_RULE_FROM) == tick


@pytest.mark.parametrize("price", [12.0, 300.0, 2_500.0, 26_000.0])
def test_before_the_band_rule_every_equity_trades_in_0_05(price: float) -> None:
    assert tick_for_price(price, date(2025, 4, 14)) == 0.05


@pytest.mark.parametrize("price", [0.0, -5.0, math.nan, math.inf])
def test_a_price_that_is_not_positive_is_refused_by_name(price: float) -> None:
    with pytest.raises(ValueError, match="price must be a positive number"):
        tick_for_price(price, AFTER)


def test_coarser_tick_lies_on_both_grids() -> None:
    assert coarser_tick(0.05, 0.10) == 0.10
    assert coarser_tick(0.01, 0.05) == 0.05
    assert coarser_tick(5.0, 0.5) == 5.0
    assert coarser_tick(0.02, 0.05) == 0.10  # not NSE's, but never off either grid


def test_each_role_rounds_the_safe_way() -> None:
    instrument = Instrument("K", "K", "I", tick_size=0.10)
    assert round_for(instrument, 1380.37, PriceRole.ENTRY_LIMIT) == 1380.3  # never pays more
    assert round_for(instrument, 1380.31, PriceRole.STOP_TRIGGER) == 1380.4  # the stop is not loosened
    assert round_for(instrument, 1380.31, PriceRole.TARGET_TRIGGER) == 1380.4
    assert round_for(instrument, 1380.39, PriceRole.STOP_LIMIT) == 1380.3  # stays marketable
    assert round_for(instrument, 1380.39, PriceRole.TARGET_LIMIT) == 1380.3
    assert round_for(instrument, 1380.4, PriceRole.STOP_TRIGGER) == 1380.4  # on the grid: unchanged
