"""`autotrader instruments refresh|show`: the day's instrument master (engine/data/master.py)."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from cli.common import console, fail, print_json, trading_day_or_fail

if TYPE_CHECKING:
    pass

instruments_app = typer.Typer(help="The instrument master: refresh it from the broker, show one instrument.",
                              no_args_is_help=True)

DATE_HELP = "Trading day as YYYY-MM-DD (default: today). A replayed day's master reads no network."


def _print_refresh(result: dict[str, Any]) -> None:
    console.print(f"instrument master of {result['day']}: {result['instruments']} instruments")
    for source, what in result["sources"].items():
        console.print(f"  {escape(source)}: {escape(what)}")
    for r in result["renames"]:
        console.print(f"  renamed {r['old_symbol']} -> {r['new_symbol']} (ISIN {r['isin']})")
    for c in result["isin_changes"]:
        console.print(f"  ISIN of {c['symbol']}: {c['old_isin']} -> {c['new_isin']}")
    changed = result["tick_changes"]
    if changed:
        shown = ", ".join(f"{c['symbol']} {c['old']:g}->{c['new']:g}" for c in changed[:3])
        console.print(f"  {len(changed)} tick change(s): {escape(shown)}{' ...' if len(changed) > 3 else ''}")
    if result["not_in_master"]:
        console.print(f"  not in the broker master: {escape(', '.join(result['not_in_master'][:8]))}")
    for warning in result["warnings"]:
        console.print(f"  [yellow]warning:[/] {escape(warning)}")


def refresh_command(
    day: str | None = typer.Option(None, "--date", help=DATE_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the refresh result as JSON."),
) -> None:
    """Refresh the day's instrument master, as the pre-open does: the broker's masters (Kite's
    instruments("NSE") with KITE_API_KEY/KITE_ACCESS_TOKEN, Upstox's published NSE master) on a live day
    (AUTOTRADER_FEED__SOURCE=upstox), merged into the instrument table with tick sizes
    cross-checked against NSE's price-band rule; renames and ISIN changes are carried to open positions
    and the bar store."""
    from engine.data.instruments import InstrumentTableError
    from engine.session import day as day_work

    context = trading_day_or_fail(day)
    try:
        result = day_work.refresh_instrument_master(context)
    except (InstrumentTableError, OSError) as exc:
        raise fail(str(exc)) from None
    if json_output:
        print_json(result)
    else:
        _print_refresh(result)


def show_command(
    symbol: str = typer.Argument(..., help="NSE trading symbol, e.g. RELIANCE."),
    day: str | None = typer.Option(None, "--date", help="The master as of this day (default: today)."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON: symbol, isin, instrument_key, tick_size, "
                                                           "lot_size, kite_token, name, source, as_of, ..."),
) -> None:
    """One instrument of the day's master (the last refresh on or before the day, else the shipped one)."""
    from engine.data.instruments import InstrumentTableError
    from engine.data.master import instrument_json
    from engine.session import day as day_work

    context = trading_day_or_fail(day)
    try:
        table = day_work.instrument_table(context)
    except InstrumentTableError as exc:
        raise fail(str(exc)) from None
    wanted = symbol.strip().upper()
    rows = table[table["symbol"] == wanted]
    if rows.empty:
        near = difflib.get_close_matches(wanted, [str(s) for s in table["symbol"]], n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise fail(f"symbol {symbol!r} is not in the instrument master of {context.day}{hint}")
    payload = instrument_json(rows.iloc[0])
    if json_output:
        print_json(payload)
        return
    for key, value in payload.items():
        console.print(f"{key:<15} {escape('-' if value is None else str(value))}")


def register(app: typer.Typer) -> None:
    instruments_app.command("refresh")(refresh_command)
    instruments_app.command("show")(show_command)
    app.add_typer(instruments_app, name="instruments")
