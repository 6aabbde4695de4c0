"""Import a user's own CSV bars into the `BarStore`, rejecting bad rows loudly (never silently).

Accepted layouts (header names are case-insensitive):

* raw NSE: `StockName,Symbol,Date,Open,High,Low,Close,PrevClose,Volume` (any row order, e.g. newest first);
* plain: `timestamp` or `date`, `open`, `high`, `low`, `close`, `volume` (+ optional `symbol`; otherwise
  the file name is the symbol). Times with a zone are converted to IST; naive ones are taken as IST.
  Daily when every time is midnight, 5-minute when rows are 5 minutes apart.

Every rejected row is reported with its file, line and reason: `unparseable`, `invalid_symbol` (NSE symbol
characters only: A-Z, 0-9, & and -, starting with a letter or digit, at most MAX_SYMBOL_LENGTH; the symbol names a
folder of the store), `date_out_of_range` (before 1990-01-01 or after `today` + FUTURE_MARGIN), `mixed_utc_offsets`
(a row whose UTC offset differs from the one most of the file's zoned rows carry), `volume_out_of_range` (negative
or beyond int64), `non_positive_price`, `ohlc_inconsistent`, `not_a_trading_day`, `duplicate_date` (for raw NSE rows
the kept row of a date follows the PrevClose chain, like the shared data's cleaning), plus `gap` entries for trading
days missing between a symbol's first and last daily bar, or 5-minute session slots with no bar (checked where the
NSE calendar covers the dates)."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from engine.calendar import NseCalendar
from engine.models import IST, Timeframe
from engine.storage.bars import BarStore

RAW_NSE_COLUMNS = ["stockname", "symbol", "date", "open", "high", "low", "close", "prevclose", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
PREVCLOSE_MATCH = 0.005  # rupees
MAX_SYMBOL_LENGTH = 20
SYMBOL_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9&-]{{0,{MAX_SYMBOL_LENGTH - 1}}}")
SYMBOL_RULE = f"1-{MAX_SYMBOL_LENGTH} characters of A-Z, 0-9, & and -, starting with a letter or digit"
EARLIEST_DATE = date(1990, 1, 1)
FUTURE_MARGIN = timedelta(days=2)  # a file written a day "ahead" (another time zone) still imports
INT64_MAX = int(np.iinfo(np.int64).max)
VOLUME_LIMIT = float(INT64_MAX + 1)  # volumes are compared as floats: 2**63 is the first that overflows
# A time followed by a UTC offset: the offset is split off and applied by hand, so one file may not mix offsets
# silently and no row of it can make pandas raise.
ZONED_TIME = re.compile(r"^(?P<wall>.*\d:\d\d(?::\d\d(?:\.\d+)?)?)\s*(?P<offset>Z|[+-]\d\d:?\d\d)$")


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


def _offset_minutes(offset: str) -> int | None:
    """"Z", "+05:30" or "-0400" → minutes east of UTC; None beyond ±14:00 (no such zone)."""
    if offset == "Z":
        return 0
    digits = offset[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:])
    return (minutes if offset[0] == "+" else -minutes) if minutes <= 14 * 60 else None


def _offset_label(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _wall_time(text: str) -> pd.Timestamp | None:
    """One naive date/time, or None (the slow path, for a column pandas will not parse as a whole)."""
    try:
        value = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        return None
    return None if value is pd.NaT or value.tzinfo is not None else value


def _wall_times(text: pd.Series) -> pd.Series:
    """Naive date/times of `text` (NaT where unparseable), never raising whatever the rows hold."""
    try:
        parsed = pd.to_datetime(text, errors="coerce", format="mixed")
        if parsed.dt.tz is None:
            return parsed
    except (ValueError, TypeError, OverflowError, AttributeError):
        pass  # e.g. a zone name in some rows: parse row by row
    return pd.to_datetime(text.map(_wall_time), errors="coerce")


class _Problems:
    """The first reason (and its detail) each row is rejected for; '' while the row is fine."""

    def __init__(self, index: pd.Index) -> None:
        self.reason = pd.Series("", index=index, dtype=object)
        self.detail = pd.Series("", index=index, dtype=object)

    def flag(self, mask: pd.Series, reason: str, detail: pd.Series | str) -> None:
        mask = mask.fillna(False).astype(bool) & (self.reason == "")
        self.reason[mask] = reason
        self.detail[mask] = detail[mask] if isinstance(detail, pd.Series) else detail

    @property
    def fine(self) -> pd.Series:
        return self.reason == ""


def _parse_times(raw: pd.Series, problems: _Problems, today: date) -> pd.Series:
    """Bar times in IST: naive times are IST, zoned ones converted. Out-of-range dates and rows whose UTC offset
    differs from the file's most common one are flagged (and left NaT), as are unparseable times."""
    text = raw.str.strip()
    parts = text.str.extract(ZONED_TIME)
    zoned = parts["offset"].notna()
    wall = _wall_times(parts["wall"].where(zoned, text))
    problems.flag(wall.isna(), "unparseable", "date/time not parseable")
    offsets = parts["offset"][zoned].map(_offset_minutes)
    problems.flag(zoned & offsets.reindex(text.index).isna(), "unparseable", "UTC offset beyond ±14:00")
    latest = today + FUTURE_MARGIN
    out_of_range = (wall < pd.Timestamp(EARLIEST_DATE)) | (wall >= pd.Timestamp(latest + timedelta(days=1)))
    problems.flag(out_of_range, "date_out_of_range", f"outside {EARLIEST_DATE} .. {latest}")
    labels = offsets[problems.fine[zoned]].dropna().astype(int).map(_offset_label)
    if len(labels):
        counts = labels.value_counts(sort=False)  # first appearance order: a tie goes to the earlier offset
        usual = str(counts.idxmax())
        odd = (labels != usual).reindex(text.index, fill_value=False)
        problems.flag(odd, "mixed_utc_offsets",
                      labels.map(lambda label: f"UTC offset {label} differs from {usual}, the file's usual offset"))
    fine = problems.fine
    naive = wall.where(fine & ~zoned).dt.tz_localize(IST)
    utc_wall = wall.where(fine & zoned) - pd.to_timedelta(offsets.reindex(text.index).astype(float), unit="min")
    converted = utc_wall.dt.tz_localize("UTC").dt.tz_convert(IST)
    return naive.where(~zoned, converted)


def _parse(frame: pd.DataFrame, today: date) -> tuple[pd.DataFrame, _Problems]:
    """Typed columns, and per row the first reason it is rejected for (see the module docstring)."""
    symbol = frame["symbol"].str.strip()
    parsed = pd.DataFrame({"_line": frame["_line"], "_raw_ts": frame["ts"], "symbol": symbol.str.upper()})
    problems = _Problems(frame.index)
    parsed["ts"] = _parse_times(frame["ts"], problems, today)
    for column in [*PRICE_COLUMNS, "volume", *(["prevclose"] if "prevclose" in frame else [])]:
        values = pd.to_numeric(frame[column].str.replace(",", ""), errors="coerce").astype("float64")
        parsed[column] = values
        problems.flag(~np.isfinite(values), "unparseable", f"{column} not a finite number")  # NaN, inf
    missing = symbol.fillna("") == ""
    problems.flag(missing, "unparseable", "no symbol")
    parsed.loc[missing, "symbol"] = None
    not_nse = ~symbol.str.fullmatch(SYMBOL_PATTERN, na=False)
    problems.flag(not_nse, "invalid_symbol", f"not an NSE symbol: {SYMBOL_RULE}")
    volume_text = frame["volume"].str.strip()
    problems.flag((parsed["volume"] < 0) | (parsed["volume"] >= VOLUME_LIMIT), "volume_out_of_range",
                  "volume " + volume_text + f" is negative or beyond int64 ({INT64_MAX})")
    return parsed, problems


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


def _reject(
    report: ImportReport, source: Path, rows: pd.DataFrame, reason: pd.Series | str, detail: pd.Series | str
) -> None:
    """Report `rows` as rejected; `reason` and `detail` are one text for all, or per row (indexed like `rows`)."""
    for index, row in rows.iterrows():
        report.rejected.append(
            RejectedRow(
                file=source.name,
                line=int(row["_line"]),
                symbol=str(row["symbol"] or ""),
                date=str(row["_raw_ts"]),
                reason=reason if isinstance(reason, str) else str(reason[index]),
                detail=detail if isinstance(detail, str) else str(detail[index]),
            )
        )


def _validate(
    parsed: pd.DataFrame, problems: _Problems, calendar: NseCalendar | None, report: ImportReport, source: Path
) -> pd.DataFrame:
    _reject(report, source, parsed[~problems.fine], problems.reason, problems.detail)
    rows = parsed[problems.fine]
    non_positive = (rows[PRICE_COLUMNS] <= 0).any(axis=1)
    _reject(report, source, rows[non_positive], "non_positive_price", "a price <= 0")
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
    *,
    today: date,
) -> ImportReport:
    """Load one CSV file or a folder of CSVs into `store` (merging with existing bars). `today` (the caller's clock)
    bounds the dates accepted: up to `today` + FUTURE_MARGIN."""
    files = csv_files(Path(path))
    report = ImportReport(files=len(files))
    for done, source in enumerate(files, start=1):
        try:
            frame = _read(source)
        except (ImportFormatError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            report.failed_files[source.name] = str(exc)
            continue
        report.rows_read += len(frame)
        parsed, problems = _parse(frame, today)
        rows = _validate(parsed, problems, calendar, report, source)
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


__all__ = [
    "MAX_SYMBOL_LENGTH", "ImportFormatError", "ImportReport", "RejectedRow", "csv_files", "gap_days", "import_path"
]
