from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from engine.models import Instrument, Setup, Tick
from engine.settings import load_settings
from engine.strategy import (
    GuardedStrategy,
    Strategy,
    StrategyConfig,
    StrategyConfigError,
    available_strategies,
    load_strategy,
    register_strategy,
)
from engine.strategy.examples.trend_pullback import TrendPullback, TrendPullbackConfig
from tests.engine.strategy.support import RELIANCE, at, make_setup, tick, uptrend_pullback


@dataclass(frozen=True)
class DemoConfig(StrategyConfig):
    threshold: float = 1.5
    period: int = 3
    label: str | None = None


class Demo(Strategy):
    name = "demo"
    config_class = DemoConfig

    def on_tick(self, instrument: Instrument, tick: Tick, snapshot: Any, **kwargs: Any) -> Setup | None:
        return None


def test_config_from_params_coerces_ints_to_floats_and_keeps_defaults() -> None:
    config = DemoConfig.from_params({"threshold": 2, "label": "x"})
    assert config == DemoConfig(threshold=2.0, period=3, label="x")
    assert isinstance(config.threshold, float)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"treshold": 1.0}, "unknown parameter(s) treshold; allowed: label, period, threshold"),
        ({"period": "3"}, "parameter 'period': value '3' is invalid"),
        ({"period": True}, "parameter 'period': value True is invalid"),
        ({"threshold": float("nan")}, "must be finite"),
    ],
)
def test_config_rejects_bad_params_naming_the_key(params: dict[str, Any], message: str) -> None:
    with pytest.raises(StrategyConfigError, match=None) as info:
        DemoConfig.from_params(params, strategy="demo")
    assert message in str(info.value)
    assert "strategy 'demo'" in str(info.value)


def test_trend_pullback_config_checks_ranges() -> None:
    with pytest.raises(StrategyConfigError, match="fast_ma"):
        TrendPullbackConfig.from_params({"fast_ma": 250, "slow_ma": 200})
    assert TrendPullback.from_params({"pullback_pct": 2}).config.pullback_pct == 2.0


def test_load_strategy_by_entry_point_name_with_params() -> None:
    settings = load_settings(strategy={"name": "trend_pullback", "params": {"fast_ma": 10}})
    strategy = load_strategy(settings)
    assert isinstance(strategy, TrendPullback)
    assert strategy.config.fast_ma == 10
    assert strategy.warmup_bars == 200
    assert available_strategies()["trend_pullback"] == "engine.strategy.examples.trend_pullback:TrendPullback"


def test_load_strategy_unknown_name_lists_the_registered_ones() -> None:
    with pytest.raises(StrategyConfigError, match=r"unknown strategy 'nope'; registered: .*trend_pullback"):
        load_strategy(load_settings(strategy={"name": "nope"}))


def test_load_strategy_rejects_unknown_param() -> None:
    with pytest.raises(StrategyConfigError, match="unknown parameter"):
        load_strategy(load_settings(strategy={"name": "trend_pullback", "params": {"fast": 3}}))


def test_registered_strategy_is_loadable() -> None:
    register_strategy("demo", Demo)
    strategy = load_strategy(load_settings(strategy={"name": "demo", "params": {"period": 5}}))
    assert isinstance(strategy, Demo) and strategy.config == DemoConfig(period=5)


class Faulty(Strategy):
    name = "faulty"

    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result

    def on_tick(self, instrument: Instrument, tick: Tick, snapshot: Any, **kwargs: Any) -> Setup | None:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (ZeroDivisionError("boom"), "ZeroDivisionError: boom"),
        ("not a setup", "expected a Setup or None, got str"),
        (make_setup(entry=float("nan")), "entry=nan is not a finite number"),
    ],
)
def test_safe_wrapper_counts_errors_and_returns_none(result: Any, error: str) -> None:
    guarded = GuardedStrategy(Faulty(result))
    now = at(date(2024, 6, 4), 10, 0)
    for _ in range(3):
        assert guarded.on_tick(RELIANCE, tick(RELIANCE, 100.0, now), uptrend_pullback()) is None
    assert guarded.errors.total == 3
    assert guarded.errors.by_hook["on_tick"] == 3
    assert error in guarded.errors.last


def test_guarded_strategy_refuses_another_interface_version() -> None:
    class Old(Demo):
        INTERFACE_VERSION = 0

    with pytest.raises(StrategyConfigError, match="implements interface 0"):
        GuardedStrategy(Old())


def test_optional_hooks_have_safe_defaults() -> None:
    demo = Demo()
    snap = uptrend_pullback()
    assert demo.on_bar(RELIANCE, None, snap) is None  # type: ignore[arg-type]
    assert demo.on_exit(None, None, snap, extra=1) is None  # type: ignore[arg-type]
    assert demo.on_start(anything=True) is None
    assert demo.is_warmed_up(snap)
