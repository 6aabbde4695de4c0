"""`autotrader report`: the day's setups, orders, trades, positions and risk, from the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cli.common import console, fail, parse_day, print_json, settings_or_fail


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=f"{title} ({len(rows)})", title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    return table


def _rules_text(rules: list[dict[str, Any]]) -> str:
    return "; ".join(f"{'✓' if r['passed'] else '✗'} {r['name']}: {r['observed']}" for r in rules)


def report_command(
    day: str = typer.Option(None, "--date", help="Trading day, YYYY-MM-DD (default: today, IST)."),
    json_output: bool = typer.Option(False, "--json", help="Print {setups, orders, trades, positions, risk} as JSON."),
    database_url: str = typer.Option(None, "--database-url", help="Database (default: setting database_url)."),
) -> None:
    """The day's report from the database: setups (with each validator rule and the values seen),
    orders, trades with net P&L after charges, positions held, and the risk budget used."""
    from engine.clock import LiveClock
    from engine.report import daily_report
    from engine.storage import init_db

    settings = settings_or_fail()
    parsed = parse_day(day, "--date") if day else LiveClock().today()
    url = database_url or settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise fail(f"database {url} does not exist yet: nothing has been traded with these settings")
    payload = daily_report(init_db(url), parsed, settings)
    if json_output:
        print_json(payload)
        return
    for setup in payload["setups"]:
        setup["rule_results"] = _rules_text(setup["rules"])
    console.print(f"[bold]autotrader report {parsed.isoformat()}[/]")
    console.print(_table("Setups", payload["setups"], ["symbol", "status", "entry", "stop", "target", "score",
                                                      "quantity", "status_reason", "rule_results"]))
    console.print(_table("Orders", payload["orders"], ["client_order_id", "symbol", "side", "quantity", "purpose",
                                                      "status", "filled_quantity", "average_price", "message"]))
    console.print(_table("Trades", payload["trades"], ["symbol", "quantity", "entry_time", "entry_price", "exit_time",
                                                      "exit_price", "gross_pnl", "charges", "net_pnl",
                                                      "exit_reason"]))
    console.print(_table("Positions", payload["positions"], ["symbol", "status", "quantity", "average_price", "stop",
                                                            "target", "opened_at", "closed_at", "exit_id"]))
    risk = payload["risk"]
    console.print(f"Risk: capital {risk['capital']:,.2f}, daily risk cap {risk['daily_risk_cap']:,.2f}, "
                  f"used {risk['risk_used']:,.2f}")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
