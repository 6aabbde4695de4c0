"""The feed's recovery figures of a live session as a Prefect markdown artifact (`feed-recovery-<day>`): per fault kind,
how many, the time from the fault to the first tick processed again (session clock and wall clock) and the minutes
backfilled; with the faults a chaos replay injected and the outages the trading could not be shielded from."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from engine.secrets import redact_errors


def recovery_markdown(day: str, stream: dict[str, Any]) -> str:
    """The markdown of the artifact from a `stream_until_close` result."""
    recovery: dict[str, dict[str, float]] = stream.get("recovery") or {}
    injected: dict[str, int] = stream.get("faults_injected") or {}
    lines = [
        f"# Feed recovery — {day}",
        "",
        f"- reconnects: **{stream.get('reconnects', 0)}**",
    ]
    if injected:
        lines.append("- faults injected (chaos replay): "
                     + ", ".join(f"{kind} {count}" for kind, count in sorted(injected.items())))
    lines += ["", "| fault | count | to the next tick, session s (mean / max) | wall ms (mean / max) "
                  "| minutes backfilled |", "|---|---:|---:|---:|---:|"]
    for kind, figures in sorted(recovery.items()):
        lines.append(
            f"| {kind} | {int(figures['count'])} "
            f"| {figures['session_seconds_mean']:.1f} / {figures['session_seconds_max']:.1f} "
            f"| {figures['wall_seconds_mean'] * 1000:.1f} / {figures['wall_seconds_max'] * 1000:.1f} "
            f"| {int(figures['minutes_backfilled'])} |"
        )
    if not recovery:
        lines.append("| none | 0 | – | – | 0 |")
    notes = stream.get("feed_notes") or []
    if notes:
        lines += ["", "Outages the trading could not be shielded from:", *(f"- {note}" for note in notes)]
    return "\n".join(lines)


@task(name="publish-feed-recovery", cache_policy=NO_CACHE, timeout_seconds=60, retries=1)
@redact_errors
def publish_recovery(day: str, stream: dict[str, Any]) -> str:
    """Publish the recovery table of `day`'s stream; returns the artifact key."""
    key = f"feed-recovery-{day}"
    create_markdown_artifact(markdown=recovery_markdown(day, stream), key=key,
                             description=f"autotrader feed recovery per fault kind on {day}")
    return key
