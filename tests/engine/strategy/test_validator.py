from __future__ import annotations

from datetime import date

import pytest

from engine.models import Timeframe
from engine.settings import SettingsError, ValidatorSettings, load_settings
from engine.strategy.validator import (
    IndicatorCondition,
    MinRewardRisk,
    PriceRange,
    RuleContext,
    SetupValidator,
    VolumeVsAverage,
    failed_rules,
    validator_from_settings,
)
from tests.engine.strategy.support import RELIANCE, at, make_setup, snapshot, tick, uptrend_pullback


def context(setup=None, snap=None) -> RuleContext:  # type: ignore[no-untyped-def]
    setup = setup or make_setup(entry=102.0, stop=97.0, target=112.0)
    return RuleContext(setup, RELIANCE, tick(RELIANCE, setup.entry, at(date(2024, 6, 4), 15, 0)),
                       snap or uptrend_pullback())


def test_every_rule_is_recorded_with_the_values_seen() -> None:
    validator = validator_from_settings(
        ValidatorSettings(min_price=50, max_price=5000, min_avg_volume=500_000, min_volume_ratio=0.5,
                          conditions=["1d close > sma_200", "1mo sma_9 >= sma_9_prev"], min_reward_risk=2)
    )
    ctx = context()
    assert validator.validate(ctx)
    observed = {r.name: r.observed for r in ctx.setup.rules}
    assert observed == {
        "price_range": "entry 102 in [50, 5000]",
        "min_avg_volume": "avg_volume_20 900000 >= 500000",
        "volume_vs_average": "volume 1000000 / avg 900000 = 1.111",
        "history_complete": "history_complete=True",
        "1d close > sma_200": "close 102 > sma_200 80",
        "1mo sma_9 >= sma_9_prev": "sma_9 90 >= sma_9_prev 88",
        "min_reward_risk": "reward/risk 2 >= 2",
    }
    assert all(r.passed for r in ctx.setup.rules)


def test_failing_rules_are_all_reported() -> None:
    validator = SetupValidator([PriceRange(200.0), IndicatorCondition.parse("1w close < 50"), MinRewardRisk(3.0),
                                VolumeVsAverage(2.0)])
    snap = uptrend_pullback()
    snap.history_complete = False
    ctx = context(snap=snap)
    assert not validator.validate(ctx)
    assert [r.name for r in failed_rules(ctx.setup)] == ["price_range", "1w close < 50", "min_reward_risk",
                                                         "volume_vs_average"]


def test_missing_indicator_fails_the_condition() -> None:
    condition = IndicatorCondition.parse("1d close > sma_50")
    result = condition.check(context(snap=snapshot()))
    assert not result.passed and result.observed == "close 100 > sma_50 n/a"
    assert condition.timeframe is Timeframe.DAY


@pytest.mark.parametrize("text", ["close > sma_200", "1d close >> sma_200", "2d close > 1"])
def test_bad_conditions_are_rejected_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="must look like"):
        IndicatorCondition.parse(text)


def test_settings_reject_a_bad_condition_at_start() -> None:
    with pytest.raises(SettingsError, match=r"strategy\.validator\.conditions"):
        load_settings(strategy={"validator": {"conditions": ["close above sma"]}})


def test_default_settings_validator() -> None:
    validator = validator_from_settings(load_settings().strategy.validator)
    assert [r.name for r in validator.rules] == ["price_range", "history_complete", "1d close > sma_200",
                                                 "min_reward_risk"]
