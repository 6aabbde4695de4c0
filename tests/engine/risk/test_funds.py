from __future__ import annotations

import math

import pytest

from engine.risk.funds import usable_capital


def test_broker_cash_below_the_settings_capital_limits_it() -> None:
    usable = usable_capital(1_000_000.0, 245_431.6)
    assert (usable.amount, usable.limited_by) == (245_431.6, "broker")
    assert "245431.60" in usable.reason and "1000000.00" in usable.reason


def test_settings_capital_below_the_broker_cash_limits_it() -> None:
    usable = usable_capital(100_000.0, 245_431.6)
    assert (usable.amount, usable.limited_by) == (100_000.0, "settings")


def test_unknown_broker_cash_leaves_the_settings_capital() -> None:
    assert usable_capital(100_000.0, None).amount == 100_000.0
    assert usable_capital(100_000.0, math.nan).broker_cash is None
    assert "reported no cash" in usable_capital(100_000.0, None).reason


def test_a_debit_balance_leaves_nothing() -> None:
    usable = usable_capital(100_000.0, -5_000.0)
    assert (usable.amount, usable.limited_by, usable.broker_cash) == (0.0, "broker", -5_000.0)


@pytest.mark.parametrize("capital", [-1.0, math.inf, math.nan])
def test_a_bad_settings_capital_is_refused_by_name(capital: float) -> None:
    with pytest.raises(ValueError, match="settings capital"):
        usable_capital(capital, 10.0)
