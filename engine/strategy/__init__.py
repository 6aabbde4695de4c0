"""Strategies (pluggable by entry point), the setup validator and the entry window."""

from engine.strategy.base import (
    INTERFACE_VERSION,
    GuardedStrategy,
    Strategy,
    StrategyConfig,
    StrategyConfigError,
    StrategyError,
    StrategyErrors,
    strategy_safe_wrapper,
)
from engine.strategy.registry import available_strategies, load_strategy, register_strategy

__all__ = [
    "INTERFACE_VERSION",
    "GuardedStrategy",
    "Strategy",
    "StrategyConfig",
    "StrategyConfigError",
    "StrategyError",
    "StrategyErrors",
    "available_strategies",
    "load_strategy",
    "register_strategy",
    "strategy_safe_wrapper",
]
