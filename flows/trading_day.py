"""The whole trading day in order, for manual runs and the demo: pre-open, live session, post-close.
`replay`/`speed` go to the live session: a replay runs in lockstep unless `speed` paces it. A replayed
day with a real broker is refused before the first stage. The database is the `database_url` setting
(AUTOTRADER_DATABASE_URL), never a parameter: parameters are stored in clear in the Prefect API."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import State

from flows.common import ON_CANCELLATION, ON_FAILURE, run_name, skipped
from flows.live_session import live_session
from flows.post_close import post_close
from flows.pre_open import pre_open
from tasks.day import check_venue, open_trading_day


@flow(name="trading-day", flow_run_name=run_name("trading-day"), timeout_seconds=8 * 3600,
      on_failure=ON_FAILURE, on_crashed=ON_FAILURE, on_cancellation=ON_CANCELLATION)
async def trading_day(
    day: str | None = None, replay: bool | None = None, speed: float | None = None
) -> dict[str, Any] | State:
    context = open_trading_day(day)
    if context.skip_reason:
        return skipped(context)
    venue = check_venue(context, replay)
    day_iso = context.day.isoformat()
    opened = await pre_open(day=day_iso)
    session = await live_session(day=day_iso, replay=replay, speed=speed)
    closed = post_close(day=day_iso)
    return {"day": day_iso, "venue": venue, "pre_open": opened, "live_session": session, "post_close": closed}


if __name__ == "__main__":
    import asyncio

    asyncio.run(trading_day())  # type: ignore[arg-type]
