"""Post-close (15:45 IST): the day's bars into history, metadata, market caps, report, artifacts."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import State

from engine.session.stages import COMPLETED, POST_CLOSE, RUNNING
from flows.common import ON_CANCELLATION, ON_FAILURE, run_name, skipped
from tasks.artifacts import publish_day_artifacts
from tasks.day import open_trading_day, record_stage
from tasks.notify import notify_day_summary
from tasks.post_close import (
    append_daily_bars,
    daily_report,
    publish_day_bar_quality,
    refresh_market_caps,
    save_metadata,
    shutdown,
)


@flow(name="post-close", flow_run_name=run_name("post-close"), timeout_seconds=3600,
      on_failure=ON_FAILURE, on_crashed=ON_FAILURE, on_cancellation=ON_CANCELLATION)
def post_close(day: str | None = None) -> dict[str, Any] | State:
    context = open_trading_day(day)
    if context.skip_reason:
        return skipped(context)
    record_stage(context, POST_CLOSE, RUNNING)
    bars = append_daily_bars(context)
    bar_quality = publish_day_bar_quality(context)
    metadata = save_metadata(context)
    market_caps = refresh_market_caps(context)
    report = daily_report(context)
    artifacts = publish_day_artifacts(context, report)
    notifications = notify_day_summary(context)
    summary = {"day": context.day.isoformat(), "daily_bars": bars, "daily_bar_quality": bar_quality,
               "metadata": metadata, "market_caps": market_caps, "artifacts": artifacts, "notifications": notifications,
               "report": report}
    record_stage(context, POST_CLOSE, COMPLETED, {k: v for k, v in summary.items() if k != "report"})
    shutdown(context)
    return summary


if __name__ == "__main__":
    post_close()
