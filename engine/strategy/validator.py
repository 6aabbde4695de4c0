"""Setup validation: composable rules run on every candidate before it may be executed. Each
rule returns a `RuleResult` (name, passed, the values seen), stored with the setup for the
daily report, so every accepted or rejected setup can be explained.

Rules: `PriceRange`, `MinAverageVolume`, `VolumeVsAverage`, `IndicatorCondition`
("1d close > sma_200"), `HistoryComplete`, `MinRewardRisk`. `validator_from_settings` builds the
configured set from `settings.strategy.validator`."""

from __future__ import annotations

import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.indicators.snapshot import IndicatorSnapshot
from engine.models import Instrument, RuleResult, Setup, Tick, Timeframe

if TYPE_CHECKING:  # settings parses conditions with this module: no import back at run time
    from engine.settings import ValidatorSettings


@dataclass(slots=True)
class RuleContext:
    setup: Setup
    instrument: Instrument
    tick: Tick
    snapshot: IndicatorSnapshot


class Rule(ABC):
    name: str

    @abstractmethod
    def check(self, context: RuleContext) -> RuleResult: ...


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


@dataclass(frozen=True)
class PriceRange(Rule):
    min_price: float = 0.0
    max_price: float | None = None
    name: str = "price_range"

    def check(self, context: RuleContext) -> RuleResult:
        price = context.setup.entry
        passed = price >= self.min_price and (self.max_price is None or price <= self.max_price)
        upper = "inf" if self.max_price is None else _fmt(self.max_price)
        return RuleResult(self.name, passed, f"entry {_fmt(price)} in [{_fmt(self.min_price)}, {upper}]")


@dataclass(frozen=True)
class MinAverageVolume(Rule):
    min_volume: float
    period: int = 20
    name: str = "min_avg_volume"

    def check(self, context: RuleContext) -> RuleResult:
        average = context.snapshot.daily.get(f"avg_volume_{self.period}")
        passed = average is not None and average >= self.min_volume
        return RuleResult(self.name, passed, f"avg_volume_{self.period} {_fmt(average)} >= {_fmt(self.min_volume)}")


@dataclass(frozen=True)
class VolumeVsAverage(Rule):
    """Today's volume so far against the daily average volume."""

    min_ratio: float
    period: int = 20
    name: str = "volume_vs_average"

    def check(self, context: RuleContext) -> RuleResult:
        average = context.snapshot.daily.get(f"avg_volume_{self.period}")
        volume = context.snapshot.daily.volume
        ratio = volume / average if average else None
        passed = ratio is not None and ratio >= self.min_ratio
        return RuleResult(self.name, passed, f"volume {_fmt(volume)} / avg {_fmt(average)} = {_fmt(ratio)}")


_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_TIMEFRAMES = {"1d": Timeframe.DAY, "1w": Timeframe.WEEK, "1mo": Timeframe.MONTH}
_CONDITION = re.compile(r"^\s*(1d|1w|1mo)\s+([A-Za-z0-9_.]+)\s*(>=|<=|>|<)\s*([A-Za-z0-9_.]+)\s*$")
_BAR_FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class IndicatorCondition(Rule):
    """`<timeframe> <value> <op> <value>`, e.g. "1d close > sma_200" or "1w sma_9 >= sma_9_prev";
    a value is a bar field, an indicator name, or a number. Missing values fail the rule."""

    timeframe: Timeframe
    left: str
    op: str
    right: str
    name: str = "condition"

    @classmethod
    def parse(cls, text: str) -> IndicatorCondition:
        match = _CONDITION.match(text)
        if match is None:
            raise ValueError(
                f"condition {text!r} must look like '<1d|1w|1mo> <value> <op> <value>' with op one of > >= < <=, "
                "e.g. '1d close > sma_200'"
            )
        frame, left, op, right = match.groups()
        return cls(_TIMEFRAMES[frame], left, op, right, name=" ".join((frame, left, op, right)))

    def _value(self, snapshot: IndicatorSnapshot, term: str) -> float | None:
        try:
            return float(term)
        except ValueError:
            pass
        frame = snapshot.timeframe(self.timeframe)
        return float(getattr(frame, term)) if term in _BAR_FIELDS else frame.get(term)

    def check(self, context: RuleContext) -> RuleResult:
        left = self._value(context.snapshot, self.left)
        right = self._value(context.snapshot, self.right)
        passed = left is not None and right is not None and _OPERATORS[self.op](left, right)
        return RuleResult(self.name, passed, f"{self.left} {_fmt(left)} {self.op} {self.right} {_fmt(right)}")


@dataclass(frozen=True)
class HistoryComplete(Rule):
    name: str = "history_complete"

    def check(self, context: RuleContext) -> RuleResult:
        complete = context.snapshot.history_complete
        return RuleResult(self.name, complete, f"history_complete={complete}")


@dataclass(frozen=True)
class MinRewardRisk(Rule):
    min_ratio: float
    name: str = "min_reward_risk"

    def check(self, context: RuleContext) -> RuleResult:
        setup = context.setup
        risk = setup.entry - setup.stop
        ratio = (setup.target - setup.entry) / risk if risk > 0 else None
        passed = ratio is not None and ratio >= self.min_ratio - 1e-9
        return RuleResult(self.name, passed, f"reward/risk {_fmt(ratio)} >= {_fmt(self.min_ratio)}")


class SetupValidator:
    """Runs every rule (no short-circuit, so the report shows all values) and records the
    results on the setup."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)

    def validate(self, context: RuleContext) -> bool:
        results = [rule.check(context) for rule in self.rules]
        context.setup.rules = results
        return all(result.passed for result in results)


def failed_rules(setup: Setup) -> list[RuleResult]:
    return [rule for rule in setup.rules if not rule.passed]


def validator_from_settings(settings: ValidatorSettings) -> SetupValidator:
    rules: list[Rule] = [PriceRange(settings.min_price, settings.max_price)]
    if settings.min_avg_volume > 0:
        rules.append(MinAverageVolume(settings.min_avg_volume, settings.volume_period))
    if settings.min_volume_ratio > 0:
        rules.append(VolumeVsAverage(settings.min_volume_ratio, settings.volume_period))
    if settings.history_complete:
        rules.append(HistoryComplete())
    rules.extend(IndicatorCondition.parse(text) for text in settings.conditions)
    if settings.min_reward_risk > 0:
        rules.append(MinRewardRisk(settings.min_reward_risk))
    return SetupValidator(rules)
