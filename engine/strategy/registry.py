"""Strategies by name: the built-ins below plus every entry point in the group
`autotrader.strategies` (so a user's own package can add one without touching autotrader)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from engine.settings import Settings
from engine.strategy.base import Strategy, StrategyConfigError

ENTRY_POINT_GROUP = "autotrader.strategies"
BUILTIN_STRATEGIES: dict[str, str] = {
    "trend_pullback": "engine.strategy.examples.trend_pullback:TrendPullback",
}
_registered: dict[str, type[Strategy]] = {}


def register_strategy(name: str, strategy_class: type[Strategy]) -> None:
    """Register a strategy class in-process (tests, notebooks); entry points are the normal way."""
    _registered[name] = strategy_class


def available_strategies() -> dict[str, str]:
    """Name → "module:Class" (or the class's qualified name for in-process registrations)."""
    found = dict(BUILTIN_STRATEGIES)
    found.update({ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)})
    found.update({name: f"{cls.__module__}:{cls.__qualname__}" for name, cls in _registered.items()})
    return found


def _import(target: str) -> object:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute)


def strategy_class(name: str) -> type[Strategy]:
    if name in _registered:
        return _registered[name]
    targets = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    try:
        if name in targets:
            loaded = targets[name].load()
        elif name in BUILTIN_STRATEGIES:
            loaded = _import(BUILTIN_STRATEGIES[name])
        else:
            known = ", ".join(sorted(available_strategies()))
            raise StrategyConfigError(f"unknown strategy {name!r}; registered: {known}")
    except (ImportError, AttributeError) as exc:
        raise StrategyConfigError(f"strategy {name!r} cannot be loaded: {exc}") from None
    if not (isinstance(loaded, type) and issubclass(loaded, Strategy)):
        raise StrategyConfigError(f"strategy {name!r} is {loaded!r}, not a Strategy subclass")
    return loaded


def load_strategy(settings: Settings) -> Strategy:
    """The strategy named by `settings.strategy.name`, configured from `settings.strategy.params`.
    Raises `StrategyConfigError` for an unknown name or invalid parameters."""
    return strategy_class(settings.strategy.name).from_params(settings.strategy.params)
