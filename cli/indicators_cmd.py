"""`autotrader metadata build` (pre-open indicator state) and `autotrader indicators SYMBOL`
(daily/weekly/monthly indicator values as of a day's close). See docs/indicators.md."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.common import console, fail, json_safe, print_json

metadata_app = typer.Typer(
    help="Pre-open indicator metadata: every instrument's indicator state as of a close, saved for the next "
    "session to load in well under a second.",
    no_args_is_help=True,
)
DEFAULT_METADATA_FILE = Path("metadata") / "indicators.parquet"


def _data_dir(data_dir: Path | None) -> Path:
    if data_dir is not None:
        return data_dir
    from engine.settings import SettingsError, load_settings

    try:
        return load_settings().data_dir
    except SettingsError as exc:
        raise fail(str(exc)) from None


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"--asof must be a date YYYY-MM-DD, got {text!r}") from None


def _instrument_keys(data_dir: Path) -> tuple[dict[str, str], dict[str, bool]]:
    """symbol → instrument_key and history_complete from data/instruments.parquet (if present)."""
    import pandas as pd

    from engine.data.instruments import InstrumentTableError, load_instrument_table

    try:
        table = load_instrument_table(data_dir)
    except InstrumentTableError:
        return {}, {}
    keys = dict(zip(table["symbol"], table["instrument_key"], strict=True))
    complete = {s: bool(c) for s, c in zip(table["symbol"], table["history_complete"], strict=True) if pd.notna(c)}
    return keys, complete


@metadata_app.command("build")
def metadata_build(
    asof: str | None = typer.Option(None, help="Close of this day, YYYY-MM-DD (default: the latest daily bar)."),
    data_dir: Path | None = typer.Option(None, help="Data folder with bars/ (default: data_dir from settings)."),
    out: Path | None = typer.Option(None, help=f"Output file (default: <data-dir>/{DEFAULT_METADATA_FILE})."),
    symbols: str | None = typer.Option(None, help="Comma-separated symbols (default: every symbol with daily bars)."),
    json_output: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
) -> None:
    """Compute every instrument's daily/weekly/monthly indicator state as of a day's close and save
    it (Parquet with a schema version) for the next session to load."""
    from engine.indicators.metadata import build_metadata, save_metadata
    from engine.storage.bars import BarStore

    root = _data_dir(data_dir)
    store = BarStore(root / "bars")
    wanted = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else store.symbols("1d")
    if not wanted:
        raise fail(f"no daily bars under {store.root} (run `autotrader data build` first)")
    unknown = [s for s in wanted if not store.has(s, "1d")]
    if unknown:
        raise fail(f"no daily bars for {', '.join(unknown)} under {store.root}")
    if asof:
        day = _parse_date(asof)
    else:
        latest = [ts.date() for ts in (store.last_ts(s, "1d") for s in wanted) if ts is not None]
        if not latest:
            raise fail(f"the daily bar files under {store.root} are empty")
        day = max(latest)
    keys, complete = _instrument_keys(root)
    started = time.perf_counter()
    metadata = build_metadata(store, wanted, day, instrument_keys=keys, history_complete=complete)
    path = save_metadata(out or root / DEFAULT_METADATA_FILE, metadata)
    summary = {
        "asof": day.isoformat(),
        "path": str(path),
        "instruments": len(metadata.instruments),
        "missing": metadata.missing,
        "errors": metadata.errors,
        "rejected_bars": metadata.rejected_bars,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if json_output:
        print_json(summary)
        return
    console.print(f"indicator metadata as of {day}: {len(metadata.instruments)} instruments → {path}")
    if metadata.missing:
        console.print(f"no daily bar up to {day}: {', '.join(metadata.missing)}")
    for symbol, error in metadata.errors.items():
        console.print(f"[red]skipped {symbol}[/]: {escape(error)}")
    for symbol, count in metadata.rejected_bars.items():
        console.print(f"{symbol}: {count} bad daily bar(s) skipped")


def indicators_command(
    symbol: str = typer.Argument(..., help="NSE symbol, e.g. RELIANCE."),
    asof: str | None = typer.Option(None, help="Close of this day, YYYY-MM-DD (default: the latest daily bar)."),
    data_dir: Path | None = typer.Option(None, help="Data folder with bars/ (default: data_dir from settings)."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON {daily: {...}, weekly: {...}, monthly: {...}}."),
) -> None:
    """Indicator values of SYMBOL as of a day's close, on the daily, weekly and monthly timeframes,
    each including the bar that contains the day (the forming week and month). null = not enough
    history."""
    from engine.indicators.metadata import build_metadata
    from engine.storage.bars import BarStore

    store = BarStore(_data_dir(data_dir) / "bars")
    symbol = symbol.upper()
    daily = store.read(symbol, "1d")  # empty when there is no file
    if daily.empty:
        raise fail(f"unknown symbol {symbol}: no daily bars under {store.root}")
    days = [ts.date() for ts in daily["ts"]]
    day = _parse_date(asof) if asof else days[-1]
    if day not in set(days):
        before = [d for d in days if d < day]
        hint = f"; the last bar before it is {before[-1]}" if before else f"; data starts {days[0]}"
        raise fail(f"{symbol} has no daily bar on {day} (a holiday, a gap, or outside {days[0]}..{days[-1]}){hint}")
    metadata = build_metadata(store, [symbol], day)
    if symbol not in metadata.instruments:
        reason = metadata.errors.get(symbol) or f"{metadata.rejected_bars.get(symbol, 0)} bad daily bar(s), none usable"
        raise fail(f"{symbol}: no indicators as of {day}: {reason}")
    snapshot = metadata.instruments[symbol].snapshot()
    payload = json_safe(snapshot.as_dict())
    if json_output:
        print_json(payload)
        return
    table = Table(title=f"{symbol} as of {day} close (weekly/monthly: the bar containing {day})")
    table.add_column("value")
    for timeframe in payload:
        table.add_column(timeframe, justify="right")
    for name in payload["daily"]:
        table.add_row(name, *(_cell(name, payload[tf].get(name)) for tf in payload))
    console.print(table)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value[:10]  # bar_start: the date
    return f"{value:,.0f}" if name.startswith(("volume", "avg_volume")) else f"{value:,.2f}"


def register(app: typer.Typer) -> None:
    app.add_typer(metadata_app, name="metadata")
    app.command("indicators")(indicators_command)
