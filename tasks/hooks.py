"""State hooks shared by flows and tasks: a failed, crashed or cancelled run leaves a structured log
line (and the stage's FAILED / INTERRUPTED checkpoint); alerts go out through the automations."""

from __future__ import annotations

import logging
from typing import Any

from prefect import get_run_logger
from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging import get_logger
from prefect.logging.handlers import APILogHandler
from prefect.tasks import exponential_backoff

from engine.brokers.base import ConfigError, OrderRejected, TokenExpired
from engine.clock import LiveClock
from engine.models import StageStatus
from engine.session.day import TokenMissing
from engine.session.stages import FAILED, INTERRUPTED, open_trading_day, record_stage
from engine.settings import SettingsError

STAGE_BY_FLOW = {"pre-open": "pre_open", "live-session": "live_session", "post-close": "post_close"}


def _logger() -> Any:
    try:
        return get_run_logger()
    except Exception:  # hooks may run outside a run context
        return get_logger("autotrader.hooks")


def _record(flow_name: str, parameters: dict[str, Any], status: StageStatus, message: str) -> None:
    stage = STAGE_BY_FLOW.get(flow_name)
    if stage is None:
        return
    try:
        context = open_trading_day(parameters.get("day"), LiveClock())  # the database: from settings, never a parameter
        record_stage(context.db, context.day, stage, status, LiveClock(), {"error": message})
    except Exception as exc:  # never let bookkeeping hide the original failure
        _logger().warning("could not record %s of %s: %s", status, flow_name, exc)


def flow_failed(flow: Any, flow_run: Any, state: Any) -> None:
    """on_failure / on_crashed of every trading stage."""
    message = state.message or state.name
    _logger().error(
        "flow %s run %s ended %s: %s", flow.name, flow_run.name, state.name, message,
        extra={"flow_run_id": str(flow_run.id), "state": state.name},
    )
    _record(flow.name, dict(flow_run.parameters or {}), FAILED, f"{state.name}: {message}")


def flow_interrupted(flow: Any, flow_run: Any, state: Any) -> None:
    """on_cancellation: the live session shut down gracefully; exits stay at the broker."""
    _logger().warning("flow %s run %s was cancelled: %s", flow.name, flow_run.name, state.message)
    _record(flow.name, dict(flow_run.parameters or {}), INTERRUPTED, state.message or "cancelled")


def task_failed(task: Any, task_run: Any, state: Any) -> None:
    """on_failure of tasks: one structured line naming the task and the error."""
    _logger().error(
        "task %s run %s failed: %s", task.name, task_run.name, state.message,
        extra={"task_run_id": str(task_run.id)},
    )


# Backoff with jitter for tasks that read or upsert idempotently, so a retry is always safe.
IDEMPOTENT_RETRY: dict[str, Any] = {
    "retry_delay_seconds": exponential_backoff(backoff_factor=5), "retry_jitter_factor": 0.5,
}

PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, OrderRejected, TokenExpired, TokenMissing, SettingsError,
)


async def retry_unless_permanent(task: Any, task_run: Any, state: Any) -> bool:
    """retry_condition_fn: retry what may succeed next time; a bad token or setting never will. Async so
    that the state's result is awaited in async tasks too (Prefect awaits the condition in both engines)."""
    try:
        error = await state.aresult(raise_on_failure=False)
    except Exception as exc:  # the result itself may be unreadable
        error = exc
    return not isinstance(error, PERMANENT_ERRORS)


class RunLogHandler(APILogHandler):
    """Sends records to the logs of the flow or task run they happen in; outside a run, nothing."""

    def emit(self, record: logging.LogRecord) -> None:
        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        super().emit(record)


def route_engine_logs(level: str) -> None:
    """Engine log records (they carry instrument keys and client order ids) go to the run's logs in
    the Prefect UI, at the configured level (`log_level`)."""
    engine_logger = logging.getLogger("engine")
    engine_logger.setLevel(level)
    if not any(isinstance(handler, APILogHandler) for handler in engine_logger.handlers):
        engine_logger.addHandler(RunLogHandler())
