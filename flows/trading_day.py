"""The whole trading day in order, for manual runs and the demo: pre-open, live session, post-close.
`replay`/`speed` go to the live session: a replay runs in lockstep unless `speed` paces it."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import State

from flows.common import ON_CANCELLATION, ON_FAILURE, skipped
from flows.live_session import live_session
from flows.post_close import post_close
from flows.pre_open import pre_open
from tasks.day import open_trading_day


@flow(name="trading-day", timeout_seconds=8 * 3600,
      on_failure=ON_FAILURE, on_crashed=ON_FAILURE, on_cancellation=ON_CANCELLATION)
async def trading_day(
    day: str | None = None, replay: bool | None = None, speed: float | None = None, database_url: str | None = None
) -> dict[str, Any] | State:
    context = open_trading_day(day, database_url=database_url)
    if context.skip_reason:
        return skipped(context)
    day_iso = context.day.isoformat()
    opened = await pre_open(day=day_iso, database_url=database_url)
    session = await live_session(day=day_iso, replay=replay, speed=speed, database_url=database_url)
    closed = post_close(day=day_iso, database_url=database_url)
    return {"day": day_iso, "pre_open": opened, "live_session": session, "post_close": closed}


if __name__ == "__main__":
    import asyncio

    asyncio.run(trading_day())  # type: ignore[arg-type]
