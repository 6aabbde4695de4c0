"""Prefect automations of the trading day, applied by ONE command (`make automations`, i.e.
`python -m flows.automations`) against the Prefect API in PREFECT_API_URL:

- a Custom Webhook notification block `autotrader-alerts` posting JSON to the URL in
  AUTOTRADER_ALERT_WEBHOOK_URL (Slack, Teams, PagerDuty, your own endpoint);
- "autotrader: trading stage failed": a run of pre-open, live-session, post-close or trading-day
  entering Failed, Crashed or TimedOut sends an alert through that block;
- "autotrader: crash zombie runs": a run whose heartbeats stop (no heartbeat and no terminal state
  within MISSED_HEARTBEATS heartbeat intervals of the last one) is marked Crashed, which in turn
  alerts. Runs emit heartbeats every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (legacy name
  PREFECT_RUNNER_HEARTBEAT_FREQUENCY; Prefect's default 180, at least 30): give this command the
  value the worker uses.

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
from prefect.settings import get_current_settings

ALERT_BLOCK_NAME = "autotrader-alerts"
WEBHOOK_URL_ENV = "AUTOTRADER_ALERT_WEBHOOK_URL"
TRADING_STAGE_FLOWS = ["pre-open", "live-session", "post-close", "trading-day"]
FAILURE_EVENTS = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"}
STAGE_FAILED = "autotrader: trading stage failed"
ZOMBIE = "autotrader: crash zombie runs"
MISSED_HEARTBEATS = 4

# The Prefect server renders these, outside our process: they quote only texts that are redacted at
# their source (state messages, see engine/secrets.py), never all parameters (a database_url may hold
# a password).
ALERT_SUBJECT = "autotrader: {{ flow.name }} run {{ flow_run.name }} is {{ flow_run.state.name }}"
ALERT_BODY = (
    "Flow {{ flow.name }}, run {{ flow_run.name }} ({{ flow_run.id }}) entered {{ flow_run.state.name }}.\n"
    "Day: {{ flow_run.parameters.day or 'today' }}\n"
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


def heartbeat_seconds() -> int:
    """The flow-run heartbeat interval of this environment (PREFECT_FLOWS_HEARTBEAT_FREQUENCY)."""
    return int(get_current_settings().flows.heartbeat_frequency or 180)


def zombie_automation(heartbeat: int) -> Automation:
    silence = heartbeat * MISSED_HEARTBEATS
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
            within=timedelta(seconds=silence),
        ),
        actions=[
            ChangeFlowRunState(
                name="Crashed",
                state=StateType.CRASHED,
                message=f"No heartbeat for {silence} s: the run's process or machine stopped.",
                force=False,
            )
        ],
    )


async def apply(url: str, heartbeat: int) -> dict[str, str]:
    """Save the alert block and (re)create both automations; returns {name: id}."""
    block_id = await save_alert_block(url)
    async with get_client() as client:
        for name in (STAGE_FAILED, ZOMBIE):
            for existing in await client.read_automations_by_name(name):
                await client.delete_automation(existing.id)
    created = [await stage_failed_automation(block_id).acreate(), await zombie_automation(heartbeat).acreate()]
    return {automation.name: str(automation.id) for automation in created}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_url = os.environ.get(WEBHOOK_URL_ENV) or dotenv_values(".env").get(WEBHOOK_URL_ENV)
    parser.add_argument("--webhook-url", default=default_url, help=f"default: ${WEBHOOK_URL_ENV} (or in .env)")
    parser.add_argument("--heartbeat-seconds", type=int, default=heartbeat_seconds(),
                        help="the workers' PREFECT_FLOWS_HEARTBEAT_FREQUENCY (default: this environment's)")
    args = parser.parse_args()
    if not args.webhook_url:
        parser.error(f"set {WEBHOOK_URL_ENV} (or pass --webhook-url) to the URL that should receive alerts")
    for name, automation_id in asyncio.run(apply(args.webhook_url, args.heartbeat_seconds)).items():
        print(f"applied automation {name!r} ({automation_id})")
    print(f"alerts go to {args.webhook_url} through the notification block {ALERT_BLOCK_NAME!r}")


if __name__ == "__main__":
    main()
