"""`autotrader demo`: replayed real NSE days through the Prefect trading-day flow, no set-up needed.

Each day runs the `trading-day` flow (pre-open → live session → post-close) with the in-process
Upstox-compatible replay server in lockstep (deterministic, as fast as the CPU allows; `--speed`
paces it instead), the paper broker (or a `*-sandbox` venue, or a broker URL on a loopback host:
never a real broker, see `engine.brokers.factory.check_venue_allowed`), a fresh SQLite database under
var/demo (or the one AUTOTRADER_DATABASE_URL names, kept as it is) and Prefect's embedded defaults (an
ephemeral API with its state in var/prefect, unless PREFECT_API_URL points at a server you started,
e.g. with `make ui`). With --json, stdout carries the JSON alone; progress goes to stderr."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from cli.common import RedactingConsole, compact_table, fail, print_json

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR = PROJECT_ROOT / "var"
DEMO_DIR = VAR / "demo"
DEFAULT_FROM = "2024-06-03"
DEFAULT_TO = "2024-06-05"
DEFAULT_DATABASE_URL = f"sqlite:///{DEMO_DIR / 'autotrader.db'}"
DATABASE_VARIABLE = "AUTOTRADER_DATABASE_URL"
console = RedactingConsole()
progress_console = RedactingConsole(stderr=True)  # --json: stdout carries the JSON alone


def prefect_environment() -> dict[str, str]:
    """Keep Prefect local to the project: its home (database, profiles) in var/prefect."""
    env = {
        "PREFECT_HOME": str(VAR / "prefect"),
        "PREFECT_PROFILES_PATH": str(VAR / "prefect" / "profiles.toml"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "engine",  # engine logs (instrument and order ids) reach the run logs
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    return {k: v for k, v in env.items() if k not in os.environ}


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _check_replayable(days: list[date], data_dir: Path) -> None:
    from engine.storage import BarStore

    store = BarStore(data_dir / "bars")
    symbols = store.symbols("5min")
    if not symbols:
        raise fail(f"no 5-minute bars under {data_dir / 'bars'}: the shipped data is missing")
    frame = store.read(symbols[0], "5min")
    shipped = {ts.date() for ts in frame["ts"]}
    missing = [d.isoformat() for d in days if d.weekday() < 5 and d not in shipped]
    if missing:
        first, last = min(shipped), max(shipped)
        raise fail(f"no shipped 5-minute bars for {', '.join(missing)}; replayable days are {first} .. {last}")


def _demo_database(keep: bool) -> tuple[str, bool]:
    """(database URL, whether it is the default demo one). AUTOTRADER_DATABASE_URL from the
    environment is used as it is (never deleted); else var/demo/autotrader.db, fresh unless `keep`.
    A database_url from .env or a TOML is not used: it may be the database you trade with."""
    given = os.environ.get(DATABASE_VARIABLE)
    if given:
        return given, False
    if not keep:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    return DEFAULT_DATABASE_URL, True


def report_commands(days: list[str], default_database: bool) -> list[str]:
    """The `autotrader report` command of each day, ready to paste (the default demo database is not
    the configured one, so its command names it)."""
    prefix = f"{DATABASE_VARIABLE}={shlex.quote(DEFAULT_DATABASE_URL)} " if default_database else ""
    return [f"{prefix}autotrader report --date {day}" for day in days]


def _print_summary(summary: Any, states: dict[str, str], seconds: float, reports: list[str]) -> None:
    table = compact_table("autotrader demo: replayed trading days")
    for column in ("day", "run", "setups", "executed", "filled/sent", "exits hit", "net P&L ₹"):
        table.add_column(column, justify="right" if column not in ("day", "run") else "left", no_wrap=True)
    for line in summary.days:
        table.add_row(line.day, states.get(line.day, ""), str(line.setups), str(line.setups_executed),
                      f"{line.entries_filled}/{line.entry_orders}", str(line.exits_hit), f"{line.net_pnl:,.2f}")
    console.print(table)
    if summary.trades:
        trades = compact_table("closed trades (exits hit at the broker)")
        for column in ("day", "symbol", "qty", "entry", "exit", "net P&L ₹", "reason"):
            trades.add_column(column, no_wrap=True)
        for t in summary.trades:
            trades.add_row(t["day"], t["symbol"], str(t["quantity"]), f"{t['entry_price']:.2f}",
                           f"{t['exit_price']:.2f}", f"{t['net_pnl']:,.2f}", t["exit_reason"])
        console.print(trades)
    if summary.open_positions:
        carried = compact_table("open positions carried overnight, protected by GTT exits")
        for column in ("opened", "symbol", "qty", "avg price", "stop", "target", "GTT"):
            carried.add_column(column, no_wrap=True)
        for p in summary.open_positions:
            carried.add_row(p["opened_at"][:10], p["symbol"], str(p["quantity"]), f"{p['average_price']:.2f}",
                            f"{p['stop']:.2f}", f"{p['target']:.2f}", str(p["exit_id"]))
        console.print(carried)
    console.print(
        f"GTT exits placed: [bold]{summary.gtts_placed}[/] (triggered {summary.gtts_triggered}, "
        f"still active {summary.gtts_active}); realised net P&L: [bold]{_rupees(summary.net_pnl)}[/]; "
        f"ran in {seconds:.0f} s."
    )
    console.print(
        "See the runs, task runs, logs and artifacts (setups, orders, positions, P&L chart) in the Prefect UI:\n"
        "  [bold]make ui[/]  then open http://127.0.0.1:4200  (it reads var/prefect, where the demo stored them)"
    )
    _print_report_commands(console, reports)


def _print_report_commands(out: Console, reports: list[str]) -> None:
    if reports:
        out.print("Each day's report from the database:", highlight=False)
        for command in reports:
            out.print(f"  {command}", markup=False, highlight=False, soft_wrap=True)


def _rupees(amount: float) -> str:
    return f"{'-' if amount < 0 else ''}₹{abs(amount):,.2f}"


def demo_command(
    from_day: str = typer.Option(DEFAULT_FROM, "--from", help="First day to replay (YYYY-MM-DD, June 2024)."),
    to_day: str = typer.Option(DEFAULT_TO, "--to", help="Last day to replay (inclusive)."),
    speed: float | None = typer.Option(
        None, "--speed", help="Pace the replay at this many simulated seconds per wall second (default: lockstep, "
        "as fast as the CPU allows and deterministic).",
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep var/demo's database (default: start fresh; a database "
                              "named by AUTOTRADER_DATABASE_URL is always kept)."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Replay real NSE days through the Prefect trading-day flow: setups, entries in the window, GTT
    exits placed and hit or carried overnight, P&L. No credentials. Honours AUTOTRADER_BROKER (paper, a
    *-sandbox, or a broker URL on a loopback host: a real broker is refused) and AUTOTRADER_DATABASE_URL."""
    try:
        start, end = date.fromisoformat(from_day), date.fromisoformat(to_day)
    except ValueError:
        raise fail(f"--from/--to must be dates (YYYY-MM-DD), got {from_day!r} and {to_day!r}") from None
    if end < start or (end - start).days > 31:
        raise fail("--to must be on or after --from, at most 31 days later")
    if speed is not None and speed <= 0:
        raise fail(f"--speed must be > 0, got {speed}")
    os.environ.update(prefect_environment())

    from engine.brokers.base import ConfigError
    from engine.brokers.factory import check_venue_allowed
    from engine.settings import SettingsError, load_settings

    try:
        settings = load_settings()
        venue = check_venue_allowed(settings, replay=True)  # before anything is sent anywhere
    except (SettingsError, ConfigError) as error:
        raise fail(str(error)) from None
    days = _days(start, end)
    _check_replayable(days, Path(settings.data_dir))
    database_url, default_database = _demo_database(keep)
    # The stages read these settings from the environment: a URL with a password never becomes a
    # Prefect parameter, and every stage sees a replayed feed.
    os.environ[DATABASE_VARIABLE] = database_url
    os.environ["AUTOTRADER_FEED__SOURCE"] = "replay"

    from engine.session.summary import summarize
    from engine.storage import init_db
    from flows.trading_day import trading_day  # imports prefect: after PREFECT_HOME is set

    out = progress_console if json_output else console
    out.print(f"[bold]venue:[/] {venue}", highlight=False)
    states: dict[str, str] = {}
    began = time.monotonic()
    for day in days:
        pace = "in lockstep" if speed is None else f"paced at {speed:g}×"
        out.print(f"[bold]▶ trading day {day}[/] (replay {pace})")
        state: Any = asyncio.run(trading_day(day=day.isoformat(), replay=True, speed=speed,  # type: ignore[arg-type]
                                             return_state=True))
        states[day.isoformat()] = state.name
        out.print(f"  {day}: {state.name}{' — ' + state.message if state.message else ''}")
    summary = summarize(init_db(database_url), days)
    reports = report_commands([day for day, name in states.items() if name != "Skipped"], default_database)
    if json_output:
        _print_report_commands(progress_console, reports)
        print_json({"states": states, **summary.as_dict(), "seconds": round(time.monotonic() - began, 1)})
    else:
        _print_summary(summary, states, time.monotonic() - began, reports)
    if any(name not in ("Completed", "Skipped") for name in states.values()):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command(name="demo")(demo_command)
