"""The strategy interface: a frozen config dataclass plus a `Strategy` subclass.

| hook      | required | called                                     | returns                      |
|-----------|----------|--------------------------------------------|------------------------------|
| on_tick   | yes      | an instrument's ticks, once warmed up (*)   | `Setup` (a candidate) or None |
| on_bar    | no       | each closed daily bar                       | `Setup` or None              |
| on_exit   | no       | every tick of an instrument held open       | an exit reason or None       |
| on_start  | no       | once, before the first tick                 | None                         |

(*) The first tick of each 30-second slice of the instrument's time, and its latest tick before
each entry decision (`engine.trading.entries`; a daily-bar backtest asks only the latter): the
candidates decided on are those a call on every tick would give, so `on_tick` must depend only on
its arguments, not on how often it is called.

Optional hooks take `**kwargs` so new arguments can be added without breaking old strategies.
A `Setup` may leave `stop` and/or `target` at 0: the risk policy (`engine.risk.stops`) then sets
them from `settings.risk` (swing low or ATR stop; target = entry + reward_risk × risk).

Every call into a strategy goes through `strategy_safe_wrapper`: an exception (or a malformed
result) is logged and counted as a `StrategyError` and the session carries on."""

from __future__ import annotations

import dataclasses
import logging
import math
import types
import typing
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from engine.indicators.snapshot import IndicatorSnapshot
from engine.models import Bar, Instrument, Position, Setup, Side, Tick

log = logging.getLogger(__name__)

INTERFACE_VERSION = 1


class StrategyError(Exception):
    """User strategy code failed or returned something malformed."""


class StrategyConfigError(ValueError):
    """`settings.strategy.params` does not fit the strategy's config dataclass."""


@dataclass(frozen=True)
class StrategyConfig:
    """Base of every strategy config. Subclasses are frozen dataclasses whose fields all have
    defaults; `from_params` builds one from `settings.strategy.params`, rejecting unknown keys
    and values of the wrong type with a message naming the key."""

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, *, strategy: str = "") -> Self:
        params = dict(params or {})
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        owner = f"strategy {strategy!r}" if strategy else cls.__name__
        unknown = sorted(set(params) - set(fields))
        if unknown:
            raise StrategyConfigError(
                f"{owner}: unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(fields)) or 'none'}"
            )
        values = {name: _coerce(name, value, hints[name], owner) for name, value in params.items()}
        try:
            config = cls(**values)
        except (TypeError, ValueError) as exc:
            raise StrategyConfigError(f"{owner}: {exc}") from None
        config.validate()
        return config

    def validate(self) -> None:
        """Override to check ranges; raise `StrategyConfigError` with the key and the rule."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(name: str, value: Any, hint: Any, owner: str) -> Any:
    allowed = _allowed_types(hint)
    if value is None and type(None) in allowed:
        return None
    if isinstance(value, bool) and bool not in allowed:
        raise StrategyConfigError(f"{owner}: parameter {name!r}: value {value!r} is invalid: expected {hint}")
    if float in allowed and isinstance(value, int | float):
        value = float(value)
        if not math.isfinite(value):
            raise StrategyConfigError(f"{owner}: parameter {name!r}: value {value!r} must be finite")
        return value
    for kind in allowed:
        if kind is not type(None) and isinstance(value, kind):
            return value
    if tuple in allowed and isinstance(value, list):
        return tuple(value)
    raise StrategyConfigError(f"{owner}: parameter {name!r}: value {value!r} is invalid: expected {hint}")


def _allowed_types(hint: Any) -> tuple[type, ...]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _allowed_types(arg))
    if origin is not None:
        return (origin,)
    return (hint,) if isinstance(hint, type) else (object,)


ConfigT = TypeVar("ConfigT", bound=StrategyConfig)


class Strategy(ABC):
    """Base class of strategies. Subclasses set `name`, `config_class`, `warmup_bars` (closed
    daily bars needed before the strategy is asked anything) and implement `on_tick`."""

    INTERFACE_VERSION: ClassVar[int] = INTERFACE_VERSION
    name: ClassVar[str] = "strategy"
    config_class: ClassVar[type[StrategyConfig]] = StrategyConfig
    warmup_bars: ClassVar[int] = 0

    def __init__(self, config: StrategyConfig | None = None) -> None:
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise StrategyConfigError(f"{self.name}: config must be a {self.config_class.__name__}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> Self:
        return cls(cls.config_class.from_params(params, strategy=cls.name))

    def indicator_periods(self) -> dict[str, tuple[int, ...]]:
        """Indicator periods this strategy reads, by `IndicatorConfig` field name (e.g.
        {"sma_periods": (9, 200)}); the engine makes sure they are computed. Default: none."""
        return {}

    def is_warmed_up(self, snapshot: IndicatorSnapshot) -> bool:
        """True once the daily timeframe has `warmup_bars` closed bars (the forming one excluded)."""
        return snapshot.daily.bars - 1 >= self.warmup_bars

    @abstractmethod
    def on_tick(self, instrument: Instrument, tick: Tick, snapshot: IndicatorSnapshot, **kwargs: Any) -> Setup | None:
        """Return a candidate `Setup` when the instrument qualifies now, else None."""

    def on_bar(self, instrument: Instrument, bar: Bar, snapshot: IndicatorSnapshot, **kwargs: Any) -> Setup | None:
        """A daily bar closed. Default: nothing."""
        return None

    def on_exit(self, position: Position, tick: Tick, snapshot: IndicatorSnapshot, **kwargs: Any) -> str | None:
        """Return a reason to exit an open position early (stop and target are handled by the
        engine and the broker's GTT). Default: never."""
        return None

    def on_start(self, **kwargs: Any) -> None:  # noqa: B027 - optional hook
        """Called once before the first tick. Default: nothing."""

    def setup(
        self,
        instrument: Instrument,
        tick: Tick,
        *,
        score: float,
        reason: str,
        stop: float = 0.0,
        target: float = 0.0,
        entry: float | None = None,
    ) -> Setup:
        """Build a long `Setup` at the tick's price (stop/target 0 = set by the risk policy)."""
        return Setup(
            instrument_key=instrument.instrument_key,
            symbol=instrument.symbol,
            side=Side.BUY,
            entry=instrument.round_price(tick.ltp if entry is None else entry),
            stop=stop,
            target=target,
            score=score,
            reason=reason,
            strategy=self.name,
            found_at=tick.time,
        )


class StrategyErrors:
    """Counts strategy failures per hook; the session reports them and carries on."""

    def __init__(self) -> None:
        self.by_hook: Counter[str] = Counter()
        self.last: str = ""

    @property
    def total(self) -> int:
        return sum(self.by_hook.values())

    def record(self, hook: str, error: BaseException) -> None:
        self.by_hook[hook] += 1
        self.last = f"{hook}: {type(error).__name__}: {error}"


R = TypeVar("R")


def strategy_safe_wrapper(
    func: Callable[..., R],
    *,
    default: R,
    errors: StrategyErrors,
    check: Callable[[R], None] | None = None,
) -> Callable[..., R]:
    """Wrap a strategy hook: any exception, or a result `check` rejects, is logged, counted in
    `errors` as a `StrategyError`, and `default` is returned instead."""
    hook = getattr(func, "__name__", "hook")

    def wrapped(*args: Any, **kwargs: Any) -> R:
        try:
            result = func(*args, **kwargs)
            if check is not None:
                check(result)
            return result
        except Exception as exc:
            error = exc if isinstance(exc, StrategyError) else StrategyError(f"{type(exc).__name__}: {exc}")
            errors.record(hook, error)
            log.warning("strategy %s failed (%d so far): %s", hook, errors.total, error)
            return default

    return wrapped


def check_setup(result: Setup | None) -> None:
    """A strategy's `Setup` must be a long with finite, positive prices."""
    if result is None:
        return
    if not isinstance(result, Setup):
        raise StrategyError(f"expected a Setup or None, got {type(result).__name__}")
    if result.side is not Side.BUY:
        raise StrategyError(f"{result.symbol}: only long setups are supported, got {result.side}")
    for name in ("entry", "stop", "target", "score"):
        value = getattr(result, name)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise StrategyError(f"{result.symbol}: {name}={value!r} is not a finite number")
    if result.entry <= 0 or result.stop < 0 or result.target < 0:
        raise StrategyError(f"{result.symbol}: prices must be positive (entry={result.entry}, stop={result.stop})")


def check_reason(result: str | None) -> None:
    if result is not None and not isinstance(result, str):
        raise StrategyError(f"on_exit must return a reason string or None, got {type(result).__name__}")


class GuardedStrategy:
    """A strategy with every hook behind `strategy_safe_wrapper`: what the engine calls."""

    def __init__(self, strategy: Strategy) -> None:
        if strategy.INTERFACE_VERSION != INTERFACE_VERSION:
            raise StrategyConfigError(
                f"strategy {strategy.name!r} implements interface {strategy.INTERFACE_VERSION}, "
                f"this engine supports {INTERFACE_VERSION}"
            )
        self.strategy = strategy
        self.errors = StrategyErrors()
        self.on_tick = strategy_safe_wrapper(strategy.on_tick, default=None, errors=self.errors, check=check_setup)
        self.on_bar = strategy_safe_wrapper(strategy.on_bar, default=None, errors=self.errors, check=check_setup)
        self.on_exit = strategy_safe_wrapper(strategy.on_exit, default=None, errors=self.errors, check=check_reason)
        self.on_start = strategy_safe_wrapper(strategy.on_start, default=None, errors=self.errors)
        self.is_warmed_up = strategy_safe_wrapper(strategy.is_warmed_up, default=False, errors=self.errors)
        # the engine skips the default (never-exit) hook: no Position is built per tick for it
        self.has_exit_hook = type(strategy).on_exit is not Strategy.on_exit
        # nor the default (no-setup) `on_bar`: no snapshot of each closed daily bar is built for it
        self.has_bar_hook = type(strategy).on_bar is not Strategy.on_bar

    @property
    def name(self) -> str:
        return self.strategy.name
