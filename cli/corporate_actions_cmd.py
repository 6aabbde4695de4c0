"""`autotrader corporate-actions show|apply`: splits and bonuses (engine/data/corporate_actions.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import typer
from rich.markup import escape

from cli.common import compact_table, console, fail, print_json, trading_day_or_fail
from cli.instruments_cmd import DATE_HELP

corporate_actions_app = typer.Typer(help="Splits and bonuses: the journal of applied ones, apply the day's.",
                                    no_args_is_help=True)


def show_command(
    json_output: bool = typer.Option(False, "--json", help="Print JSON: one object per journaled action with "
                                                           "symbol, ex_date, factor, kind, source, status, "
                                                           "applied_at, rebased."),
) -> None:
    """The journaled corporate actions: what was rebased for each, and whether steps are left (PENDING)."""
    import json

    from cli.common import settings_or_fail
    from engine.data.corporate_actions import journaled
    from engine.storage import init_db

    rows = journaled(init_db(settings_or_fail().database_url))
    payload = [{"symbol": r.symbol, "ex_date": r.ex_date.isoformat(), "factor": r.factor, "kind": r.kind,
                "source": r.source, "status": r.status, "detected_on": r.detected_on.isoformat(),
                "applied_at": r.applied_at.isoformat() if r.applied_at else None,
                "rebased": json.loads(r.rebased_json)} for r in rows]
    if json_output:
        print_json(payload)
        return
    if not payload:
        console.print("no corporate action journaled")
        return
    table = compact_table("Corporate actions")
    for column in ("symbol", "ex-date", "factor", "source", "status", "steps done", "positions"):
        table.add_column(column)
    for entry in payload:
        rebased = entry["rebased"]
        table.add_row(entry["symbol"], entry["ex_date"], f"{entry['factor']:g}", entry["source"], entry["status"],
                      ",".join(rebased.get("done", [])), str(len(rebased.get("positions", []))))
    console.print(table)


def _print_result(result: dict[str, Any]) -> None:
    console.print(f"corporate actions at the pre-open of {result['day']}")
    for entry in result["applied"] + result["pending"]:
        console.print(f"  {entry['status'].lower()}: {entry['symbol']} x{entry['factor']:g} "
                      f"(ex-date {entry['ex_date']}, {entry['source']})")
    if not result["applied"] and not result["pending"]:
        console.print("  nothing to apply")
    for warning in result["warnings"]:
        console.print(f"  [yellow]warning:[/] {escape(warning)}")


def apply_command(
    day: str | None = typer.Option(None, "--date", help=DATE_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON (day, applied, pending, "
                                                           "findings, warnings)."),
) -> None:
    """Apply the day's corporate actions as the pre-open does (the `corporate_actions_file`, the instrument
    master's ISIN changes, the broker's adjusted candles on a live day): stored history, share counts, open
    positions and their GTTs rebased once. Run `autotrader metadata build` afterwards if the day's metadata
    was built already."""
    from engine.data.corporate_actions import CorporateActionError, corporate_actions_for_day

    context = trading_day_or_fail(day)
    try:
        result = asyncio.run(corporate_actions_for_day(context))
    except (CorporateActionError, OSError) as exc:
        raise fail(str(exc)) from None
    if json_output:
        print_json(result)
    else:
        _print_result(result)


def register(app: typer.Typer) -> None:
    corporate_actions_app.command("show")(show_command)
    corporate_actions_app.command("apply")(apply_command)
    app.add_typer(corporate_actions_app, name="corporate-actions")
