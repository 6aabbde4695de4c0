"""`autotrader demo`: replayed real NSE days through the Prefect trading-day flow, no set-up needed.

Each day runs the `trading-day` flow (pre-open → live session → post-close) with the in-process
Upstox-compatible replay server in lockstep (deterministic, as fast as the CPU allows; `--speed`
paces it instead), the paper broker (or a `*-sandbox` venue, or a broker URL on a loopback host:
never a real broker, see `engine.brokers.factory.check_venue_allowed`), a fresh SQLite database under
var/demo (or the one AUTOTRADER_DATABASE_URL names, kept as it is) and Prefect's embedded defaults (an
ephemeral API with its state in var/prefect, unless PREFECT_API_URL points at a server you started,
e.g. with `make ui`). With --json, stdout carries the JSON alone; progress goes to stderr.

`--chaos N [--seed S]` injects N feed faults per day (drops, stalls longer than the watchdog, malformed frames,
duplicated and out-of-order ticks) at seeded moments of the lockstep replay; each day then reports the faults
injected, the reconnects and the recovery per fault kind (JSON: `faults_injected`, `reconnects`, `recovery`)."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import time
from collections import Counter
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
    chaos: int = typer.Option(0, "--chaos", min=0, max=1000, help="Inject this many feed faults per day (drops, "
                              "stalls, malformed frames, duplicated and out-of-order ticks) at seeded moments."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --chaos moments (one seed, the same faults)."),
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
    if chaos and speed is not None:
        raise fail("--chaos needs the lockstep replay (deterministic): leave out --speed")
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
    os.environ["AUTOTRADER_FEED__REPLAY_CHAOS"] = str(chaos)
    os.environ["AUTOTRADER_FEED__REPLAY_CHAOS_SEED"] = str(seed)

    from engine.session.summary import summarize
    from engine.storage import init_db
    from flows.trading_day import trading_day  # imports prefect: after PREFECT_HOME is set

    out = progress_console if json_output else console
    out.print(f"[bold]venue:[/] {venue}", highlight=False)
    states: dict[str, str] = {}
    feeds: dict[str, dict[str, Any]] = {}  # day -> what its stream reported (faults, reconnects, recovery)
    began = time.monotonic()
    for day in days:
        pace = "in lockstep" if speed is None else f"paced at {speed:g}×"
        out.print(f"[bold]▶ trading day {day}[/] (replay {pace})")
        state: Any = asyncio.run(trading_day(day=day.isoformat(), replay=True, speed=speed,  # type: ignore[arg-type]
                                             return_state=True))
        states[day.isoformat()] = state.name
        feeds[day.isoformat()] = _stream_result(state)
        out.print(f"  {day}: {state.name}{' — ' + state.message if state.message else ''}")
    summary = summarize(init_db(database_url), days)
    reports = report_commands([day for day, name in states.items() if name != "Skipped"], default_database)
    if json_output:
        _print_report_commands(progress_console, reports)
        payload = {"states": states, **summary.as_dict(), "seconds": round(time.monotonic() - began, 1)}
        if chaos:
            payload["chaos"] = chaos_report(payload["days"], feeds, chaos, seed)
        print_json(payload)
    else:
        _print_summary(summary, states, time.monotonic() - began, reports)
        if chaos:
            _print_chaos(chaos_report([{"day": day} for day in states], feeds, chaos, seed))
    if any(name not in ("Completed", "Skipped") for name in states.values()):
        raise typer.Exit(1)


def _stream_result(state: Any) -> dict[str, Any]:
    """The live session's stream result inside a trading-day flow state ({} for a skipped or failed day)."""
    try:
        result = state.result(raise_on_failure=False)
    except Exception:  # a result that was not kept: the day reports no feed figures
        return {}
    session = result.get("live_session") if isinstance(result, dict) else None
    stream = session.get("stream") if isinstance(session, dict) else None
    return stream if isinstance(stream, dict) else {}


def chaos_report(days: list[dict[str, Any]], feeds: dict[str, dict[str, Any]], chaos: int, seed: int
                 ) -> dict[str, Any]:
    """Adds `faults_injected`, `reconnects`, `recovery` and `feed_notes` to each day line of `days`; returns the
    run's totals: the faults asked per day, the seed, the faults and reconnects summed, the recovery per fault kind
    over the days (counts and minutes summed, maxima the largest, means weighted by the counts) and every note of an
    outage the trading could not be shielded from (where a difference from the clean run is possible)."""
    injected: Counter[str] = Counter()
    reconnects = 0
    recovery: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    for line in days:
        stream = feeds.get(line["day"], {})
        line.update(faults_injected=stream.get("faults_injected", {}), reconnects=stream.get("reconnects", 0),
                    recovery=stream.get("recovery", {}), feed_notes=stream.get("feed_notes", []))
        injected.update(line["faults_injected"])
        reconnects += line["reconnects"]
        notes += [f"{line['day']}: {note}" for note in line["feed_notes"]]
        for kind, figures in line["recovery"].items():
            total = recovery.setdefault(kind, dict.fromkeys(figures, 0.0))
            count = total["count"] + figures["count"]
            for name, value in figures.items():
                if name.endswith("_mean"):
                    total[name] = (total[name] * total["count"] + value * figures["count"]) / max(count, 1)
                elif name.endswith("_max"):
                    total[name] = max(total[name], value)
            total["minutes_backfilled"] += figures["minutes_backfilled"]
            total["count"] = count
    return {"faults_per_day": chaos, "seed": seed, "faults_injected": dict(sorted(injected.items())),
            "reconnects": reconnects, "recovery": {kind: _rounded(recovery[kind]) for kind in sorted(recovery)},
            "notes": notes}


def _rounded(figures: dict[str, float]) -> dict[str, float | int]:
    return {name: int(value) if name in ("count", "minutes_backfilled") else round(value, 4)
            for name, value in figures.items()}


def _print_chaos(report: dict[str, Any]) -> None:
    console.print(f"chaos: {report['faults_per_day']} faults a day (seed {report['seed']}); injected "
                  f"{report['faults_injected']}; reconnects: {report['reconnects']}", highlight=False)
    table = compact_table("recovery per fault kind: fault → first tick processed again")
    for column in ("fault", "count", "session s (mean/max)", "wall ms (mean/max)", "minutes backfilled"):
        table.add_column(column, no_wrap=True)
    for kind, figures in report["recovery"].items():
        table.add_row(kind, str(figures["count"]),
                      f"{figures['session_seconds_mean']:.1f} / {figures['session_seconds_max']:.1f}",
                      f"{figures['wall_seconds_mean'] * 1000:.1f} / {figures['wall_seconds_max'] * 1000:.1f}",
                      str(figures["minutes_backfilled"]))
    console.print(table)
    notes = report["notes"]
    console.print("Outages the trading could not be shielded from (the outcome may differ from a clean run):" if notes
                  else "No outage reached the trading: no entry was decided on a stale feed, none lasted to the close.")
    for note in notes:
        console.print(f"  {note}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command(name="demo")(demo_command)
