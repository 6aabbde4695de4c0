"""Import a user's own CSV bars into the `BarStore`, rejecting bad rows loudly (never silently).

Accepted layouts (header names are case-insensitive):

* raw NSE: `StockName,Symbol,Date,Open,High,Low,Close,PrevClose,Volume` (any row order, e.g. newest first);
* plain: `timestamp` or `date`, `open`, `high`, `low`, `close`, `volume` (+ optional `symbol`; otherwise
  the file name is the symbol). Times with a zone are converted to IST; naive ones are taken as IST.
  Daily when every time is midnight, 5-minute when rows are 5 minutes apart.

Every rejected row is reported with its file, line and reason: `unparseable`, `non_positive_price`,
`ohlc_inconsistent`, `not_a_trading_day`, `duplicate_date` (for raw NSE rows the kept row of a date
follows the PrevClose chain, like the shared data's cleaning), plus `gap` entries for trading days missing
between a symbol's first and last daily bar, or 5-minute session slots with no bar (checked where the NSE
calendar covers the dates)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from engine.calendar import NseCalendar
from engine.models import IST, Timeframe
from engine.storage.bars import BarStore

RAW_NSE_COLUMNS = ["stockname", "symbol", "date", "open", "high", "low", "close", "prevclose", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
PREVCLOSE_MATCH = 0.005  # rupees


class ImportFormatError(ValueError):
    """A file is not in a supported layout."""


@dataclass
class RejectedRow:
    file: str
    line: int | None  # 1-based line in the file (header = line 1); None for gap entries
    symbol: str
    date: str
    reason: str
    detail: str = ""


@dataclass
class ImportReport:
    files: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    loaded: dict[str, int] = field(default_factory=dict)  # symbol -> rows written from this import
    timeframes: dict[str, str] = field(default_factory=dict)  # symbol -> timeframe
    rejected: list[RejectedRow] = field(default_factory=list)
    failed_files: dict[str, str] = field(default_factory=dict)  # file -> why it was skipped

    @property
    def gaps(self) -> list[RejectedRow]:
        return [r for r in self.rejected if r.reason == "gap"]

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rejected:
            counts[row.reason] = counts.get(row.reason, 0) + 1
        return dict(sorted(counts.items()))

    def summary(self) -> dict[str, object]:
        return {
            "files": self.files,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": sum(1 for r in self.rejected if r.reason != "gap"),
            "gaps": len(self.gaps),
            "reasons": self.reasons(),
            "symbols": self.loaded,
            "timeframes": self.timeframes,
            "failed_files": self.failed_files,
        }

    def write_rejects_csv(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(RejectedRow.__dataclass_fields__))
            writer.writeheader()
            for row in self.rejected:
                writer.writerow(asdict(row))
        return path


def csv_files(path: Path) -> list[Path]:
    """`path` itself, or every `*.csv` below it (sorted)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*.csv") if p.is_file())
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"{path} does not exist")


def _read(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    frame.columns = [c.strip().lower() for c in frame.columns]
    frame["_line"] = np.arange(len(frame)) + 2
    if set(RAW_NSE_COLUMNS) <= set(frame.columns):
        frame = frame.rename(columns={"date": "ts"})
    elif {"open", "high", "low", "close", "volume"} <= set(frame.columns) and (
        "timestamp" in frame.columns or "date" in frame.columns
    ):
        frame = frame.rename(columns={"timestamp" if "timestamp" in frame.columns else "date": "ts"})
        if "symbol" not in frame.columns:
            frame["symbol"] = path.stem.upper()
    else:
        raise ImportFormatError(
            f"{path.name}: unsupported columns {list(frame.columns[:-1])}; expected raw NSE "
            "(StockName,Symbol,Date,Open,High,Low,Close,PrevClose,Volume) or timestamp/date,open,high,low,close,volume"
        )
    return frame


def _parse(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Typed columns and a per-row description of what failed to parse ('' when fine)."""
    parsed = pd.DataFrame(
        {"_line": frame["_line"], "_raw_ts": frame["ts"], "symbol": frame["symbol"].str.strip().str.upper()}
    )
    problem = pd.Series("", index=frame.index)
    ts = pd.to_datetime(frame["ts"].str.strip(), errors="coerce", utc=True, format="mixed")
    naive = pd.to_datetime(frame["ts"].str.strip(), errors="coerce", format="mixed")
    has_zone = frame["ts"].str.contains(r"[+-]\d\d:?\d\d$|Z$", regex=True)
    local = naive.where(~has_zone)
    if local.notna().any():
        local = local.dt.tz_localize(IST, ambiguous="NaT", nonexistent="NaT")
    parsed["ts"] = ts.dt.tz_convert(IST).where(has_zone, local)
    problem[parsed["ts"].isna()] = "date/time not parseable"
    for column in [*PRICE_COLUMNS, "volume", *(["prevclose"] if "prevclose" in frame else [])]:
        values = pd.to_numeric(frame[column].str.replace(",", ""), errors="coerce")
        parsed[column] = values
        problem[~np.isfinite(values) & (problem == "")] = f"{column} not a finite number"  # NaN, inf
    parsed.loc[parsed["symbol"] == "", "symbol"] = None
    problem[parsed["symbol"].isna() & (problem == "")] = "no symbol"
    return parsed, problem


def _timeframe(ts: pd.Series) -> Timeframe:
    if (ts.dt.hour == 0).all() and (ts.dt.minute == 0).all():
        return Timeframe.DAY
    steps = ts.sort_values().diff().dropna()
    intraday = steps[steps < pd.Timedelta(hours=6)]
    if len(intraday) and intraday.min() == pd.Timedelta(minutes=5):
        return Timeframe.MIN5
    raise ImportFormatError("bars are neither daily (midnight times) nor 5-minute")


def _choose_by_prevclose_chain(rows: pd.DataFrame) -> pd.Index:
    """Index of the rows to keep, one per date: the row whose PrevClose equals the previous kept close
    (largest volume among ties); otherwise the largest-volume row with High > Low."""
    ordered = rows.sort_values(["ts", "volume"], ascending=[True, False], kind="stable")
    labels = ordered.index.to_numpy()
    ts = ordered["ts"].to_numpy()
    close = ordered["close"].to_numpy(dtype=float)
    ranged = (ordered["high"] > ordered["low"]).to_numpy()
    prevclose = ordered["prevclose"].to_numpy(dtype=float) if "prevclose" in ordered else None
    starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    keep: list[int] = []
    previous_close = np.nan
    for start, end in zip(starts, ends, strict=True):
        chosen = start  # rows are in descending volume within a date
        if end - start > 1:
            span = np.arange(start, end)
            chained = span[np.abs(prevclose[span] - previous_close) <= PREVCLOSE_MATCH] if prevclose is not None else []
            with_range = span[ranged[span]]
            chosen = chained[0] if len(chained) else (with_range[0] if len(with_range) else start)
        keep.append(int(labels[chosen]))
        previous_close = close[chosen]
    return pd.Index(keep)


def _reject(report: ImportReport, source: Path, rows: pd.DataFrame, reason: str, detail: pd.Series | str) -> None:
    for index, row in rows.iterrows():
        report.rejected.append(
            RejectedRow(
                file=source.name,
                line=int(row["_line"]),
                symbol=str(row["symbol"] or ""),
                date=str(row["_raw_ts"]),
                reason=reason,
                detail=detail if isinstance(detail, str) else str(detail[index]),
            )
        )


def _validate(
    parsed: pd.DataFrame, problem: pd.Series, calendar: NseCalendar | None, report: ImportReport, source: Path
) -> pd.DataFrame:
    bad = problem != ""
    _reject(report, source, parsed[bad], "unparseable", problem)
    rows = parsed[~bad]
    prices = rows[PRICE_COLUMNS]
    non_positive = (prices <= 0).any(axis=1) | (rows["volume"] < 0)
    _reject(report, source, rows[non_positive], "non_positive_price", "a price <= 0 or volume < 0")
    rows = rows[~non_positive]
    inconsistent = (rows["high"] < rows[["open", "close", "low"]].max(axis=1)) | (
        rows["low"] > rows[["open", "close"]].min(axis=1)
    )
    detail = rows.apply(lambda r: f"O={r.open} H={r.high} L={r.low} C={r.close}", axis=1) if len(rows) else ""
    _reject(report, source, rows[inconsistent], "ohlc_inconsistent", detail)
    rows = rows[~inconsistent]
    if calendar is not None and len(rows):
        days = rows["ts"].dt.date
        closed = days.map(lambda d: calendar.covers(d) and not calendar.is_trading_day(d))
        _reject(report, source, rows[closed], "not_a_trading_day", "NSE closed that day")
        rows = rows[~closed]
    return rows


def import_path(
    path: Path,
    store: BarStore,
    calendar: NseCalendar | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ImportReport:
    """Load one CSV file or a folder of CSVs into `store` (merging with existing bars)."""
    files = csv_files(Path(path))
    report = ImportReport(files=len(files))
    for done, source in enumerate(files, start=1):
        try:
            frame = _read(source)
        except (ImportFormatError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            report.failed_files[source.name] = str(exc)
            continue
        report.rows_read += len(frame)
        parsed, problem = _parse(frame)
        rows = _validate(parsed, problem, calendar, report, source)
        for symbol, symbol_rows in rows.groupby("symbol", sort=True):
            _load_symbol(str(symbol), symbol_rows, source, store, calendar, report)
        if progress is not None:
            progress(source.name, done, len(files))
    return report


def _load_symbol(
    symbol: str, rows: pd.DataFrame, source: Path, store: BarStore, calendar: NseCalendar | None, report: ImportReport
) -> None:
    try:
        timeframe = _timeframe(rows["ts"])
    except ImportFormatError as exc:
        report.failed_files[f"{source.name}:{symbol}"] = str(exc)
        return
    if timeframe is Timeframe.DAY:
        rows = rows.assign(ts=rows["ts"].dt.normalize())
    if rows["ts"].duplicated().any():
        keep = _choose_by_prevclose_chain(rows)
        dropped = rows.drop(index=keep)
        _reject(report, source, dropped, "duplicate_date", "another row of the same date was kept")
        rows = rows.loc[keep]
    rows = rows.sort_values("ts")
    bars = rows[["ts", *PRICE_COLUMNS, "volume"]].assign(volume=rows["volume"].round().astype("int64"))
    store.write(symbol, timeframe, bars, merge=True)
    report.loaded[symbol] = report.loaded.get(symbol, 0) + len(bars)
    report.rows_loaded += len(bars)
    report.timeframes[symbol] = timeframe.value
    if calendar is not None and len(bars):
        _report_gaps(symbol, bars, timeframe, source, calendar, report)


def _session_bar_starts(day: date, calendar: NseCalendar, step: pd.Timedelta) -> list[pd.Timestamp]:
    session = calendar.session(day)
    if session is None:
        return []
    starts = pd.date_range(session.open, session.close - step, freq=step)
    return [ts for ts in starts if session.is_open_at(ts.to_pydatetime())]


def _report_gaps(
    symbol: str, bars: pd.DataFrame, timeframe: Timeframe, source: Path, calendar: NseCalendar, report: ImportReport
) -> None:
    """Trading days (daily bars) or session bar slots (5-minute bars) between the first and the last bar
    that have no bar; only where the calendar covers the dates."""
    stamps = set(bars["ts"])
    days = {ts.date() for ts in stamps}
    start = max(min(days), calendar.first_day)
    end = min(max(days), calendar.last_day)
    if start > end:
        return
    first, last = min(stamps), max(stamps)
    for day in calendar.iter_trading_days(start, end):
        if timeframe is Timeframe.DAY:
            missing = [] if day in days else [day.isoformat()]
        else:
            slots = _session_bar_starts(day, calendar, pd.Timedelta(minutes=5))
            missing = [ts.isoformat() for ts in slots if first <= ts <= last and ts not in stamps]
        detail = f"NSE {timeframe.value} bar missing"
        report.rejected.extend(RejectedRow(source.name, None, symbol, when, "gap", detail) for when in missing)


def gap_days(report: ImportReport, symbol: str) -> list[date]:
    """Missing trading days of a daily import."""
    return [date.fromisoformat(r.date) for r in report.gaps if r.symbol == symbol and len(r.date) == 10]


__all__ = ["ImportFormatError", "ImportReport", "RejectedRow", "csv_files", "gap_days", "import_path"]
