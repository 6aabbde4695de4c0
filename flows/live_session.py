"""Live session (09:10 IST until the close): one long-running streaming task and the entry window
as its own task, side by side in one event loop, with the live view (progress, positions, setups and
P&L artifacts updated every session minute) beside them. Re-runs resume from the database.

A replayed day (`replay`, or `feed.source = "replay"`) runs in lockstep unless `speed` is given:
deterministic and as fast as the CPU allows. With `speed` it is paced at speed× the wall clock."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow
from prefect.states import State

from engine.session.stages import LIVE_SESSION
from flows.common import ON_CANCELLATION, ON_FAILURE, run_name, skipped
from tasks.day import open_trading_day
from tasks.live import close_live_session, execute_entry_window, live_view, open_live_session, stream_until_close
from tasks.recovery import publish_recovery


@flow(name="live-session", flow_run_name=run_name("live-session"), timeout_seconds=7 * 3600,
      on_failure=ON_FAILURE, on_crashed=ON_FAILURE, on_cancellation=ON_CANCELLATION)
async def live_session(
    day: str | None = None, replay: bool | None = None, speed: float | None = None
) -> dict[str, Any] | State:
    context = open_trading_day(day)
    if context.skip_reason:
        return skipped(context)
    session = await open_live_session(context, replay, speed)
    try:
        streamed, entries, viewed = await asyncio.gather(
            stream_until_close(session), execute_entry_window(session), live_view(session))
    finally:
        closed = await close_live_session(session)
    publish_recovery(context.day.isoformat(), streamed)
    return {"day": context.day.isoformat(), "stage": LIVE_SESSION, "stream": streamed, "entries": entries,
            "live_view": viewed, "close": closed}


if __name__ == "__main__":
    asyncio.run(live_session())  # type: ignore[arg-type]
