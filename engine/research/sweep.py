"""Parameter sweeps and walk-forward analysis over backtests: the grid, the windows and one run.
Orchestration (Prefect on a Dask cluster) is in flows/sweep.py; this module is plain Python, so each
combination runs the same way in a Dask worker, a test or a notebook.

A parameter is a dotted settings key with its values: `risk.reward_risk=1.5,2,3`. Each combination
becomes settings overrides; what crosses to a worker is JSON-able (keys, strings, ISO dates)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from engine.settings import Settings, load_settings, unknown_setting

OBJECTIVES = ("sharpe", "net_pnl", "cagr_pct", "profit_factor", "sortino")


class SweepError(ValueError):
    """A bad sweep definition: the message names the parameter and what is allowed."""


@dataclass(frozen=True, slots=True)
class Parameter:
    key: str  # dotted settings key, e.g. "risk.reward_risk"
    values: tuple[str, ...]


def parse_parameter(text: str) -> Parameter:
    """`risk.reward_risk=1.5,2,3` → Parameter("risk.reward_risk", ("1.5", "2", "3"))."""
    key, separator, values = text.partition("=")
    key = key.strip()
    chosen = tuple(v.strip() for v in values.split(",") if v.strip())
    if not separator or not key or not chosen:
        raise SweepError(f"--param {text!r}: expected KEY=V1,V2,… e.g. risk.reward_risk=1.5,2,3")
    problem = unknown_setting(key)
    if problem is not None:
        raise SweepError(f"--param {text!r}: {problem}")
    return Parameter(key, chosen)


def grid(parameters: Sequence[Parameter]) -> list[dict[str, str]]:
    """Every combination, as {dotted key: value}."""
    keys = [p.key for p in parameters]
    if len(set(keys)) != len(keys):
        raise SweepError("each --param key may be given once")
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(p.values for p in parameters))]


def overrides(combination: dict[str, str]) -> dict[str, Any]:
    """{"risk.reward_risk": "2"} → {"risk": {"reward_risk": "2"}}: keyword overrides for `load_settings`."""
    nested: dict[str, Any] = {}
    for key, value in combination.items():
        *sections, name = key.split(".")
        target = nested
        for section in sections:
            target = target.setdefault(section, {})
        target[name] = value
    return nested


def settings_for(combination: dict[str, str]) -> Settings:
    from engine.settings import SettingsError

    try:
        return load_settings(**overrides(combination))
    except SettingsError as error:
        raise SweepError(f"combination {combination}: {error}") from None


@dataclass(frozen=True, slots=True)
class Window:
    in_sample: tuple[date, date]
    out_of_sample: tuple[date, date]

    def as_dict(self) -> dict[str, str]:
        return {"in_sample_from": self.in_sample[0].isoformat(), "in_sample_to": self.in_sample[1].isoformat(),
                "out_of_sample_from": self.out_of_sample[0].isoformat(),
                "out_of_sample_to": self.out_of_sample[1].isoformat()}


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, 1) if day.day == 1 else date(year, month, min(day.day, 28))


def walk_forward_windows(start: date, end: date, in_sample_months: int, out_of_sample_months: int) -> list[Window]:
    """Rolling windows: fit on `in_sample_months`, test on the next `out_of_sample_months`, then roll
    forward by the out-of-sample length. The last test window is cut at `end`."""
    if in_sample_months < 1 or out_of_sample_months < 1:
        raise SweepError("in-sample and out-of-sample lengths must be at least one month")
    windows: list[Window] = []
    fit_start = start
    while True:
        test_start = _add_months(fit_start, in_sample_months)
        if test_start > end:
            break
        test_end = min(_add_months(test_start, out_of_sample_months) - timedelta(days=1), end)
        windows.append(Window((fit_start, test_start - timedelta(days=1)), (test_start, test_end)))
        fit_start = _add_months(fit_start, out_of_sample_months)
    if not windows:
        raise SweepError(f"{start} .. {end} is shorter than one in-sample window of {in_sample_months} months "
                         "plus a day to test on")
    return windows


def run_combination(combination: dict[str, str], start: str, end: str, symbols: list[str] | None) -> dict[str, Any]:
    """One backtest of one combination; JSON-able in and out (it runs in a Dask worker)."""
    from engine.backtest import run_backtest
    from engine.research.summary import backtest_summary

    settings = settings_for(combination)
    report = asyncio.run(run_backtest(settings, date.fromisoformat(start), date.fromisoformat(end), symbols))
    return {"params": combination, "start": start, "end": end, "summary": backtest_summary(report,
                                                                                           Path(settings.data_dir))}


def best(results: Sequence[dict[str, Any]], objective: str) -> dict[str, Any]:
    """The result with the highest objective; a None objective ranks last, ties keep grid order."""
    if objective not in OBJECTIVES:
        raise SweepError(f"objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
    scored = [(r["summary"].get(objective), index, r) for index, r in enumerate(results)]
    return max(scored, key=lambda item: (item[0] is not None, item[0] or 0.0, -item[1]))[2]
