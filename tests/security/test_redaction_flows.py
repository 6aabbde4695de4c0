"""A real Prefect flow run (prefect_test_harness) against the hostile gateway: the flow run's and the
task runs' state messages, the run's events, the stage's checkpoint row and the alert rendered from
the automation's template hold no token."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from prefect.server.utilities.user_templates import render_user_template_sync

from engine.brokers.base import TokenExpired
from engine.session import day as day_work
from engine.session.stages import FAILED, PRE_OPEN, TradingDayContext, stage_state
from engine.storage import init_db
from flows.automations import ALERT_BODY, ALERT_SUBJECT
from tests.security import test_redaction as redaction
from tests.security.test_redaction import DAY, Credentials, HostileGateway, assert_no_secret

gateway, venue = redaction.gateway, redaction.venue  # the hostile gateway and its venue's credentials (fixtures)

pytestmark = pytest.mark.usefixtures("prefect_harness")


async def _recorded(client: Any, flow_run_id: Any) -> tuple[list[Any], str]:
    """The flow run's task runs and its events (JSON), once the server has recorded their final states: task
    run states and events arrive through the events pipeline, asynchronously."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.events.filters import EventAnyResourceFilter, EventFilter

    for _ in range(120):  # up to a minute on a loaded machine
        task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        wanted = EventFilter(any_resource=EventAnyResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]))  # until now
        page = await client.read_events(filter=wanted, limit=50)
        failed = any(event.event == "prefect.flow-run.Failed" for event in page.events)
        if failed and task_runs and all(t.state is not None and t.state.is_final() for t in task_runs):
            return list(task_runs), json.dumps([event.model_dump(mode="json") for event in page.events])
        await asyncio.sleep(0.5)
    raise AssertionError("the flow run's Failed event or its task runs' final states were never recorded")


async def _failed_pre_open() -> tuple[Any, list[Any], str, str]:
    """Run pre-open for DAY; returns (flow run, its task runs, the alert text, the run's events as JSON)."""
    from prefect.client.orchestration import get_client

    from flows.pre_open import pre_open

    state = await pre_open(day=DAY.isoformat(), return_state=True)  # type: ignore[call-overload]
    assert state.is_failed(), state
    assert state.state_details.flow_run_id is not None
    async with get_client() as client:
        run = await client.read_flow_run(state.state_details.flow_run_id)
        flow = await client.read_flow(run.flow_id)
        task_runs, events = await _recorded(client, run.id)
    # rendered as the server renders the automation's notification (sandboxed Jinja)
    context = {"flow": flow, "flow_run": run}
    alert = "\n".join(render_user_template_sync(template, context) for template in (ALERT_SUBJECT, ALERT_BODY))
    return run, task_runs, alert, events


def _checkpoint_text(database_url: str) -> str:
    db = init_db(database_url)
    try:
        status, checkpoint = stage_state(db, DAY, PRE_OPEN) or ("", {})
    finally:
        db.dispose()
    assert status == FAILED
    return json.dumps(checkpoint)


@pytest.mark.parametrize("gateway", ["kite", "upstox"], indirect=True)
async def test_a_failed_pre_open_leaks_no_token(
    gateway: HostileGateway, venue: Credentials, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run, task_runs, alert, events = await _failed_pre_open()
    assert gateway.requests, "the broker never called the gateway"
    token_check = [t for t in task_runs if t.name.startswith("check-broker-token")]
    assert token_check and token_check[0].state.is_failed()
    assert "OrderRejected" in run.state.message and "***" in run.state.message
    texts = [run.state.message, alert, events, _checkpoint_text(f"sqlite:///{tmp_path / 'db.sqlite'}")]
    texts += [t.state.message or "" for t in task_runs]
    for text in texts:
        assert_no_secret(text, venue)
    assert "OrderRejected" in alert and f"Day: {DAY.isoformat()}" in alert
    assert "OrderRejected" in events  # the Failed event carries the (redacted) state message


@pytest.mark.parametrize("gateway", ["kite"], indirect=True)
async def test_a_token_refreshed_mid_run_never_becomes_a_state_message(
    gateway: HostileGateway, venue: Credentials, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An error text built anywhere (not by our broker error mapping) is redacted, with a secret registered
    after the run started: the task wrappers rebuild the exception before Prefect turns it into a state.
    (TokenExpired is permanent, so the task is not retried with backoff.)"""
    from engine.secrets import register_secret

    refreshed = f"refreshed{secrets.token_hex(12)}"

    async def token_check_that_echoes(context: TradingDayContext) -> str:
        register_secret(refreshed)  # e.g. read from a Secret block re-loaded mid-run
        raise TokenExpired(f"gateway said: Authorization: token kite:{refreshed}; access_token={refreshed}")

    monkeypatch.setattr(day_work, "check_broker_token", token_check_that_echoes)
    run, task_runs, alert, events = await _failed_pre_open()
    texts = [run.state.message, alert, events, _checkpoint_text(f"sqlite:///{tmp_path / 'db.sqlite'}")]
    texts += [t.state.message or "" for t in task_runs]
    assert any("TokenExpired: gateway said" in text for text in texts)
    for text in texts:
        assert refreshed not in text


def test_the_alert_names_the_day_but_never_dumps_the_parameters() -> None:
    password = f"pw{secrets.token_hex(8)}"
    run = {"name": "brave-otter", "id": "1", "state": {"name": "Failed", "message": "boom"},
           "parameters": {"day": None, "database_url": f"postgresql://trader:{password}@db/autotrader"}}
    body = render_user_template_sync(ALERT_BODY, {"flow": {"name": "pre-open"}, "flow_run": run})
    assert "Day: today" in body and "Message: boom" in body
    assert password not in body
