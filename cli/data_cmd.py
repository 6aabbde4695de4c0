"""`autotrader data build` (the shipped data set) and `autotrader data import` (your own CSVs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.common import console, err_console, fail, print_json

data_app = typer.Typer(help="Build the shipped data set or import your own bars.", no_args_is_help=True)


@contextmanager
def _progress(description: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar on stderr; yields the `progress(name, done, total)` callback the engine calls."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=None)

        def advance(_name: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


@data_app.command("build")
def build_command(
    source: Path = typer.Option(Path("../shared/data/nse"), help="The shared NSE data folder (read only)."),
    out: Path = typer.Option(Path("data"), help="Where to write bars/, instruments.parquet."),
    calendar_out: Path = typer.Option(Path("config/nse_calendar.toml"), help="Where to write the NSE calendar."),
    json_output: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
) -> None:
    """Build data/ (5-minute bars: June 2024 for 181 symbols, a year for 15; daily history on the same
    price basis; the instrument table) and the NSE calendar from the shared source folder. See data/README.md."""
    from engine.data.build import build

    if not source.is_dir():
        raise fail(f"source folder {source} does not exist")
    with _progress("building symbols") as advance:
        try:
            report = build(source, out, calendar_out, progress=advance)
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
    summary = report.summary()
    if json_output:
        print_json(summary)
        return
    console.print(f"[bold]{summary['symbols']}[/] symbols written to {out} ({summary['bytes']:,} bytes)")
    console.print(f"repaired 5-minute bars (open/close outside high-low): {summary['repaired_5min_bars']}")
    console.print(f"symbols with incomplete daily history: {summary['history_incomplete']}")
    console.print(f"rebased to the June-2024 price basis: {summary['rebased']}")
    console.print(
        f"calendar: {summary['calendar_holidays']} holidays, "
        f"{summary['calendar_disagreements']} source disagreements noted in {calendar_out}"
    )


@data_app.command("import")
def import_command(
    path: Path = typer.Argument(..., help="A CSV file or a folder of CSV files."),
    store: Path | None = typer.Option(None, help="Bar store root (default: <data_dir>/bars from settings)."),
    report: Path = typer.Option(Path("var/import-rejected.csv"), help="CSV file listing every rejected row."),
    json_output: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
) -> None:
    """Load your own daily or 5-minute CSV bars into the bar store. Accepts raw NSE files
    (StockName,Symbol,Date,Open,High,Low,Close,PrevClose,Volume, newest first is fine) and
    timestamp/date,open,high,low,close,volume files (symbol = file name). Rows that are unparseable,
    carry a symbol outside NSE's characters (A-Z, 0-9, & and -), a date before 1990 or after today,
    a UTC offset other than the file's, a volume beyond int64, non-positive prices, OHLC-inconsistent,
    on non-trading days or duplicate dates are rejected and listed with their reasons (also in
    --report), as are gaps against the NSE calendar; nothing is dropped silently."""
    from engine.calendar import CalendarError, load_calendar
    from engine.clock import LiveClock
    from engine.data.importer import import_path
    from engine.settings import SettingsError, load_settings
    from engine.storage.bars import BarStore

    try:
        settings = load_settings()
        calendar = load_calendar(settings.calendar_file)
    except (SettingsError, CalendarError) as exc:
        raise fail(str(exc)) from None
    root = store if store is not None else settings.data_dir / "bars"
    if not path.exists():
        raise fail(f"{path} does not exist")
    with _progress("importing files") as advance:
        result = import_path(path, BarStore(root), calendar, progress=advance, today=LiveClock().today())
    result.write_rejects_csv(report)
    summary = {**result.summary(), "store": str(root), "report": str(report)}
    if json_output:
        print_json(summary)
    else:
        console.print(
            f"loaded [bold]{result.rows_loaded}[/] of {result.rows_read} rows for {len(result.loaded)} symbol(s) "
            f"into {root}"
        )
        for reason, count in result.reasons().items():
            console.print(f"  {reason}: {count}")
        for name, why in result.failed_files.items():
            console.print(f"  [red]skipped[/] {escape(name)}: {escape(why)}")
        console.print(f"rejected rows and gaps: {report}")
    if result.failed_files and not result.loaded:
        raise fail(f"no file could be imported: {', '.join(result.failed_files)}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
