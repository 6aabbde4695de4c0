"""Pre-open (08:30 IST): NSE holidays, token check, broker funds, instrument master, corporate actions, market caps
and universe, metadata."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import State

from engine.session.stages import COMPLETED, PRE_OPEN, RUNNING
from flows.common import ON_CANCELLATION, ON_FAILURE, run_name, skipped
from tasks.day import open_trading_day, record_stage
from tasks.pre_open import (
    apply_corporate_actions,
    build_metadata,
    check_broker_token,
    read_broker_funds,
    refresh_calendar,
    refresh_instrument_master,
    refresh_universe,
)


@flow(name="pre-open", flow_run_name=run_name("pre-open"), timeout_seconds=1800, log_prints=True,
      on_failure=ON_FAILURE, on_crashed=ON_FAILURE, on_cancellation=ON_CANCELLATION)
async def pre_open(day: str | None = None) -> dict[str, Any] | State:
    context = open_trading_day(day)
    calendar = refresh_calendar(context)  # on closed days too: the look-ahead warning must not wait
    if context.skip_reason:
        return skipped(context)
    record_stage(context, PRE_OPEN, RUNNING)
    token = await check_broker_token(context)
    funds = await read_broker_funds(context)
    instruments = refresh_instrument_master(context)
    corporate_actions = await apply_corporate_actions(context)  # history and positions rebased before the metadata
    universe = refresh_universe(context)
    metadata = build_metadata(context)
    summary = {"day": context.day.isoformat(), "broker": token, "funds": funds, "instruments": instruments,
               "corporate_actions": corporate_actions, "universe": len(universe), "metadata": metadata,
               "calendar": calendar}
    record_stage(context, PRE_OPEN, COMPLETED, summary)
    return summary


if __name__ == "__main__":
    import asyncio

    asyncio.run(pre_open())  # type: ignore[arg-type]
