"""`autotrader reconcile`: the database against the broker (orders, positions, GTT exits)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table

from cli.common import console, fail, print_json


async def _reconcile() -> dict[str, object]:
    from engine.brokers.factory import SANDBOX_BROKERS, make_broker
    from engine.clock import LiveClock
    from engine.execution import OrderManager
    from engine.models import Instrument
    from engine.portfolio.charges import ChargeCalculator
    from engine.portfolio.positions import book_sold_by_hand
    from engine.settings import load_credentials, load_settings
    from engine.storage.db import init_db

    settings = load_settings()
    if settings.broker in SANDBOX_BROKERS:
        raise fail(
            f"reconcile refuses AUTOTRADER_BROKER={settings.broker}: the built-in sandbox starts empty in this "
            "process, so it is not the truth about your orders and positions; reconcile against the broker you "
            "trade with (paper, zerodha or upstox)"
        )
    clock = LiveClock()
    db = init_db(settings.database_url)
    instruments: list[Instrument] = []
    try:
        from engine.data.instruments import load_instruments

        instruments = load_instruments(settings.data_dir)
    except (FileNotFoundError, ImportError, OSError):
        pass  # symbols unknown: Kite rows fall back to NSE:<symbol> keys
    # Not a replay: reconciling with the real broker you trade with is the point.
    broker = make_broker(settings, load_credentials(), clock=clock, instruments=instruments, db=db, replay=False)
    try:
        await broker.connect()
        manager = OrderManager(broker, db, clock, trading_day=clock.today())
        report = await manager.reconcile()
        book_sold_by_hand(db, ChargeCalculator.from_settings(settings, trading_day=clock.today()),
                          {i.instrument_key: i for i in instruments},
                          report, clock.now(), clock.today())
    finally:
        await broker.close()
        db.dispose()
    return report.to_dict()


def reconcile_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compare the database (order journal, positions, GTTs) with the broker named by AUTOTRADER_BROKER
    and resolve differences by the documented rules (docs/execution.md): the broker is the truth for
    fills and positions, the database for intent; unknown broker orders are reported, never adopted."""
    from engine.brokers.base import BrokerError
    from engine.settings import SettingsError

    try:
        report = asyncio.run(_reconcile())
    except (BrokerError, SettingsError) as error:
        raise fail(f"reconcile failed: {type(error).__name__}: {error}") from None
    if as_json:
        print_json(report)
        return
    differences = report["differences"]
    assert isinstance(differences, list)
    console.print(f"broker [bold]{report['broker']}[/] at {report['at']}: orders {report['orders_checked']}, "
                  f"positions {report['positions_checked']}, exits {report['exits_checked']} checked")
    if not differences:
        console.print("[green]no differences[/]")
        return
    table = Table("kind", "key", "database", "broker", "resolution")
    for difference in differences:
        table.add_row(*(str(difference[k]) for k in ("kind", "key", "db", "broker", "resolution")))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile_command)
