"""What every trading-stage flow shares: run names, the Skipped state of exchange holidays and the hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_run_logger
from prefect.states import Completed, State

from engine.clock import LiveClock
from engine.session.stages import TradingDayContext
from tasks.hooks import flow_failed, flow_interrupted

ON_FAILURE: list[Any] = [flow_failed]  # on_failure and on_crashed (TimedOut is a Failed state)
ON_CANCELLATION: list[Any] = [flow_interrupted]


def run_name(stage: str) -> Callable[[], str]:
    """flow_run_name: "trading-day 2024-06-04", not "discerning-labrador", so the Runs list reads as a
    calendar (the day defaults to today in IST, as the flows do)."""

    def name() -> str:
        from prefect.runtime import flow_run

        return f"{stage} {flow_run.parameters.get('day') or LiveClock().today().isoformat()}"

    return name


def skipped(context: TradingDayContext) -> State:
    """A run on a day without a session completes as "Skipped", with the reason."""
    reason = context.skip_reason or "nothing to do"
    get_run_logger().info("skipping %s: %s", context.day, reason)
    return Completed(name="Skipped", message=reason)
