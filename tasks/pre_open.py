"""Pre-open tasks. Each is safe to retry: they read, or upsert idempotently."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import acreate_markdown_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from engine.data.corporate_actions import corporate_actions_for_day
from engine.secrets import redact_errors
from engine.session import day as day_work
from engine.session.stages import TradingDayContext
from tasks.hooks import IDEMPOTENT_RETRY, retry_unless_permanent, task_failed
from tasks.notify import TOKEN_PROBLEMS, notify_stale_token


@task(name="refresh-calendar", cache_policy=NO_CACHE, timeout_seconds=300)
@redact_errors
def refresh_calendar(context: TradingDayContext) -> dict[str, Any]:
    """NSE holidays from the broker (never raises); a short look-ahead also gets a "calendar-coverage"
    artifact beside the engine's WARNING line."""
    result = day_work.refresh_calendar(context)
    if result["warning"]:
        create_markdown_artifact(markdown=f"**{result['warning']}**", key="calendar-coverage",
                                 description=f"NSE calendar look-ahead at the pre-open of {context.day}")
    return result


@task(name="check-broker-token", cache_policy=NO_CACHE, timeout_seconds=60, on_failure=[task_failed],
      retries=3, **IDEMPOTENT_RETRY, retry_condition_fn=retry_unless_permanent)
@redact_errors
async def check_broker_token(context: TradingDayContext) -> str:
    """The broker (and live feed) login works; one that does not is also notified (once a day)."""
    try:
        return await day_work.check_broker_token(context)
    except TOKEN_PROBLEMS as error:
        await notify_stale_token(context, error)
        raise


@task(name="read-broker-funds", cache_policy=NO_CACHE, timeout_seconds=60, on_failure=[task_failed],
      retries=3, **IDEMPOTENT_RETRY, retry_condition_fn=retry_unless_permanent)
@redact_errors
async def read_broker_funds(context: TradingDayContext) -> dict[str, Any]:
    """The broker's cash and the usable capital (the smaller of `capital` and the cash)."""
    return await day_work.read_broker_funds(context)


@task(name="refresh-instrument-master", cache_policy=NO_CACHE, timeout_seconds=300, on_failure=[task_failed],
      retries=3, **IDEMPOTENT_RETRY)
@redact_errors
def refresh_instrument_master(context: TradingDayContext) -> dict[str, Any]:
    """The day's instrument master from the broker (engine/data/master.py); renames, ISIN changes,
    tick disagreements and warnings also go to an "instrument-master" artifact."""
    result = day_work.refresh_instrument_master(context)
    notes = [f"- renamed {r['old_symbol']} -> {r['new_symbol']} (ISIN {r['isin']})" for r in result["renames"]]
    notes += [f"- ISIN of {c['symbol']}: {c['old_isin']} -> {c['new_isin']}" for c in result["isin_changes"]]
    notes += [f"- {warning}" for warning in result["warnings"]]
    if notes:
        create_markdown_artifact(markdown="\n".join(notes), key="instrument-master",
                                 description=f"Instrument master changes at the pre-open of {context.day}")
    return result


@task(name="apply-corporate-actions", cache_policy=NO_CACHE, timeout_seconds=600, on_failure=[task_failed],
      retries=3, **IDEMPOTENT_RETRY, retry_condition_fn=retry_unless_permanent)
@redact_errors
async def apply_corporate_actions(context: TradingDayContext) -> dict[str, Any]:
    """Splits and bonuses applied once, journaled (engine/data/corporate_actions.py): stored history, share
    counts, open positions and their GTTs rebased before the metadata build; what was applied and every warning
    also go to a "corporate-actions" artifact."""
    result = await corporate_actions_for_day(context)
    notes = [f"- {a['status'].lower()}: {a['symbol']} x{a['factor']:g} (ex-date {a['ex_date']}, {a['source']})"
             for a in result["applied"] + result["pending"]]
    notes += [f"- {warning}" for warning in result["warnings"]]
    if notes:
        await acreate_markdown_artifact(markdown="\n".join(notes), key="corporate-actions",
                                        description=f"Corporate actions at the pre-open of {context.day}")
    return result


@task(name="refresh-universe", cache_policy=NO_CACHE, timeout_seconds=300, on_failure=[task_failed],
      retries=3, **IDEMPOTENT_RETRY)
@redact_errors
def refresh_universe(context: TradingDayContext) -> list[str]:
    return day_work.refresh_universe(context)


@task(name="build-metadata", cache_policy=NO_CACHE, timeout_seconds=900, on_failure=[task_failed], retries=1)
@redact_errors
def build_metadata(context: TradingDayContext) -> str:
    return day_work.build_metadata(context)
