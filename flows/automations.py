"""Prefect automations of the trading day, applied by ONE command (`make automations`, i.e.
`python -m flows.automations`) against the Prefect API in PREFECT_API_URL:

- a Custom Webhook notification block `autotrader-alerts` posting JSON to the URL in
  AUTOTRADER_ALERT_WEBHOOK_URL (Slack, Teams, PagerDuty, your own endpoint);
- "autotrader: trading stage failed": a run of pre-open, live-session, post-close or trading-day
  entering Failed, Crashed or TimedOut sends an alert through that block;
- "autotrader: crash zombie runs": a run whose heartbeats stop (no heartbeat and no terminal state
  within ZOMBIE_AFTER_SECONDS of the last heartbeat) is marked Crashed, which in turn alerts.
  Heartbeats need PREFECT_FLOWS_HEARTBEAT_FREQUENCY (legacy PREFECT_RUNNER_HEARTBEAT_FREQUENCY)
  set on the worker, e.g. 30 seconds.

Re-applying replaces automations of the same name, so the command is safe to repeat."""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import timedelta
from uuid import UUID

from dotenv import dotenv_values
from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

ALERT_BLOCK_NAME = "autotrader-alerts"
WEBHOOK_URL_ENV = "AUTOTRADER_ALERT_WEBHOOK_URL"
TRADING_STAGE_FLOWS = ["pre-open", "live-session", "post-close", "trading-day"]
FAILURE_EVENTS = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"}
STAGE_FAILED = "autotrader: trading stage failed"
ZOMBIE = "autotrader: crash zombie runs"
ZOMBIE_AFTER_SECONDS = 120  # four missed heartbeats at 30 s

ALERT_SUBJECT = "autotrader: {{ flow.name }} run {{ flow_run.name }} is {{ flow_run.state.name }}"
ALERT_BODY = (
    "Flow {{ flow.name }}, run {{ flow_run.name }} ({{ flow_run.id }}) entered {{ flow_run.state.name }}.\n"
    "Parameters: {{ flow_run.parameters }}\n"
    "Message: {{ flow_run.state.message }}"
)


async def save_alert_block(url: str) -> UUID:
    """Create or overwrite the webhook notification block; returns its document id."""
    block = CustomWebhookNotificationBlock(
        name=ALERT_BLOCK_NAME,
        url=url,
        method="POST",
        json_data={"source": "autotrader", "subject": "{{subject}}", "body": "{{body}}"},
        headers={"Content-Type": "application/json"},
        cookies=None,
    )
    block_id: UUID = await block.save(ALERT_BLOCK_NAME, overwrite=True)  # type: ignore[misc]
    return block_id


def stage_failed_automation(block_id: UUID) -> Automation:
    return Automation(
        name=STAGE_FAILED,
        description="Alert through the autotrader-alerts webhook when a trading stage fails, crashes or times out.",
        trigger=EventTrigger(
            expect=FAILURE_EVENTS,
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "flow", "prefect.resource.name": TRADING_STAGE_FLOWS}
            ),
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[SendNotification(block_document_id=block_id, subject=ALERT_SUBJECT, body=ALERT_BODY)],
    )


def zombie_automation() -> Automation:
    return Automation(
        name=ZOMBIE,
        description="Mark a flow run Crashed when its heartbeats stop (the machine or process died).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=ZOMBIE_AFTER_SECONDS),
        ),
        actions=[
            ChangeFlowRunState(
                name="Crashed",
                state=StateType.CRASHED,
                message=f"No heartbeat for {ZOMBIE_AFTER_SECONDS} s: the run's process or machine stopped.",
                force=False,
            )
        ],
    )


async def apply(url: str) -> dict[str, str]:
    """Save the alert block and (re)create both automations; returns {name: id}."""
    block_id = await save_alert_block(url)
    async with get_client() as client:
        for name in (STAGE_FAILED, ZOMBIE):
            for existing in await client.read_automations_by_name(name):
                await client.delete_automation(existing.id)
    created = [await stage_failed_automation(block_id).acreate(), await zombie_automation().acreate()]
    return {automation.name: str(automation.id) for automation in created}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_url = os.environ.get(WEBHOOK_URL_ENV) or dotenv_values(".env").get(WEBHOOK_URL_ENV)
    parser.add_argument("--webhook-url", default=default_url, help=f"default: ${WEBHOOK_URL_ENV} (or in .env)")
    args = parser.parse_args()
    if not args.webhook_url:
        parser.error(f"set {WEBHOOK_URL_ENV} (or pass --webhook-url) to the URL that should receive alerts")
    for name, automation_id in asyncio.run(apply(args.webhook_url)).items():
        print(f"applied automation {name!r} ({automation_id})")
    print(f"alerts go to {args.webhook_url} through the notification block {ALERT_BLOCK_NAME!r}")


if __name__ == "__main__":
    main()
