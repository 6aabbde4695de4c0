"""STRATEGY_TEMPLATE.md stays true: its strategy and its test run as written."""

from __future__ import annotations

import re
import sys
import types
from typing import Any

from engine.settings import load_settings
from engine.strategy import load_strategy, register_strategy
from tests.conftest import PROJECT_ROOT


def test_the_templates_strategy_and_test_run() -> None:
    text = (PROJECT_ROOT / "STRATEGY_TEMPLATE.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 2
    module = types.ModuleType("strategy_template")
    sys.modules[module.__name__] = module  # dataclasses and get_type_hints look the module up
    try:
        namespace: dict[str, Any] = module.__dict__
        exec(compile(blocks[0], "STRATEGY_TEMPLATE.md", "exec"), namespace)
        exec(compile(blocks[1], "STRATEGY_TEMPLATE.md", "exec"), namespace)
        namespace["test_breakout_fires_above_the_previous_high"]()
        register_strategy("breakout", namespace["Breakout"])
        strategy = load_strategy(load_settings(strategy={"name": "breakout", "params": {"lookback": 55}}))
    finally:
        del sys.modules[module.__name__]
    assert strategy.warmup_bars == 55
    assert strategy.indicator_periods()["extreme_periods"] == (55,)
