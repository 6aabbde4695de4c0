"""What every trading-stage flow shares: the Skipped state of exchange holidays and the hooks."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.states import Completed, State

from engine.session.stages import TradingDayContext
from tasks.hooks import flow_failed, flow_interrupted

ON_FAILURE: list[Any] = [flow_failed]  # on_failure and on_crashed (TimedOut is a Failed state)
ON_CANCELLATION: list[Any] = [flow_interrupted]


def skipped(context: TradingDayContext) -> State:
    """A run on a day without a session completes as "Skipped", with the reason."""
    reason = context.skip_reason or "nothing to do"
    get_run_logger().info("skipping %s: %s", context.day, reason)
    return Completed(name="Skipped", message=reason)
