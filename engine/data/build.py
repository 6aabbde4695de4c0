"""Build the shipped data set (`data/`) and the NSE calendar file from `../shared/data/nse/`.

This is the ONLY code that reads `../shared`; everything else reads `data/`. Run it with
`autotrader data build --source ../shared/data/nse --out data`. See `data/README.md` for what it
writes and why (price-basis rebasing, the open-outside-range repair, history flags)."""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from engine.calendar import NseCalendar, read_calendar_file
from engine.data.instruments import INSTRUMENT_COLUMNS, write_instrument_table
from engine.models import IST, Timeframe
from engine.storage.bars import BAR_SCHEMA, BarStore

log = logging.getLogger(__name__)

FIVE_MIN_DIR = "intraday_5min_2023-07_2024-06/all_fno_stocks_2024-06"
# The same vendor's 5-minute bars of 15 symbols for 2023-07-03 .. 2024-06-28: they replace those
# symbols' June-only files (whose rows they contain, checked at build time).
FULL_YEAR_DIR = "intraday_5min_2023-07_2024-06/full_year"
# The first replay day (of FIVE_MIN_DIR): every daily series is rebased to the 5-minute prices of the
# days from here on, so a longer 5-minute history does not move any price factor.
BASIS_FIRST_DAY = date(2024, 6, 3)
ADJUSTED_DIR = "daily_nifty50_2020_2025_adjusted"
UNADJUSTED_DIR = "daily_nifty500_2018_2024_unadjusted"
UPSTOX_MASTER = "instruments/upstox_NSE_instruments_2025-01.json"
KITE_MASTER = "instruments/zerodha_kite_instruments_NSE_2026-01.csv"
DHAN_MASTER = "instruments/dhan_scrip_master_NSE_EQ_2026-05.csv"
MARKET_CAP = "market_cap/nse_mcap_2024-03-28__tradebook.csv"
CONSTITUENTS_DIR = "index_constituents"
HOLIDAYS_DIR = "holidays"
NIFTY_INDEX = "index_daily/NIFTY_index_day_full.csv"
INDEX_FIRST_DAY = date(2015, 1, 1)  # enough for any backtest on the shipped bars (2018 on)
MARKET_CAP_DATE = date(2024, 3, 28)

# Symbols of June 2024 that later sources know under another name (same company, same ISIN),
# or whose older name is used by the 2024 sources (market cap snapshot, NIFTY 500 daily set).
LATER_NAMES = {"GMRINFRA": "GMRAIRPORT", "TATAMOTORS": "TMPV"}
EARLIER_NAMES = {"LTF": "L&TFH", "UNITDSPR": "MCDOWELL-N"}
# Not in any shipped master (IDFC Ltd merged into IDFC First Bank in Oct 2024, delisted).
KNOWN_ISINS = {"IDFC": ("INE043D01016", "IDFC LIMITED")}

# A median price-basis factor within this of 1 (or of a simple fraction) is snapped to it; the official
# close is a 30-minute VWAP, not the last trade, so single days differ by up to ~2% (2024-06-04).
FACTOR_TOLERANCE = 0.005
# Unadjusted history: an overnight fall below this fraction (open / previous close) that matches a
# usual split/bonus ratio within SPLIT_SNAP_TOLERANCE (log distance) is a corporate action.
SPLIT_JUMP_THRESHOLD = 0.7
SPLIT_SNAP_TOLERANCE = 0.06
USUAL_SPLIT_RATIOS = (1 / 2, 1 / 3, 2 / 3, 1 / 4, 1 / 5, 1 / 10)

# Parquet encoding of the shipped bars (see `write_compact`).
COMPACT_ZSTD_LEVEL = 19
COMPACT_ENCODING = {"ts": "DELTA_BINARY_PACKED", "volume": "DELTA_BINARY_PACKED"} | {
    column: "BYTE_STREAM_SPLIT" for column in ("open", "high", "low", "close")
}

CALENDAR_FIRST_DAY = date(2018, 1, 1)
CALENDAR_LAST_DAY = date(2026, 12, 31)
# Special sessions with their published times (IST). Sources: NSE circulars as reported by the press;
# DR-drill times checked against the 5-minute bars in full_year/ (09:15-10:00 and 11:30-12:30).
SPECIAL_SESSIONS: list[dict[str, object]] = [
    {"date": "2018-11-07", "kind": "muhurat", "open": "17:30", "close": "18:30", "note": "Muhurat (Diwali)"},
    {"date": "2019-10-27", "kind": "muhurat", "open": "18:15", "close": "19:15", "note": "Muhurat (Diwali), Sunday"},
    {"date": "2020-02-01", "kind": "special", "open": "09:15", "close": "15:30", "note": "Union Budget, Saturday"},
    {"date": "2020-11-14", "kind": "muhurat", "open": "18:15", "close": "19:15", "note": "Muhurat (Diwali), Saturday"},
    {"date": "2021-11-04", "kind": "muhurat", "open": "18:15", "close": "19:15", "note": "Muhurat (Diwali)"},
    {"date": "2022-10-24", "kind": "muhurat", "open": "18:15", "close": "19:15", "note": "Muhurat (Diwali)"},
    {"date": "2023-11-12", "kind": "muhurat", "open": "18:15", "close": "19:15", "note": "Muhurat (Diwali), Sunday"},
    {"date": "2024-01-20", "kind": "special", "open": "09:15", "close": "15:30", "note": "Saturday full session"},
    {"date": "2024-03-02", "kind": "special", "open": "09:15", "close": "12:30", "breaks": [["10:00", "11:30"]],
     "note": "Saturday DR drill: primary site 09:15-10:00, DR site 11:30-12:30"},
    {"date": "2024-05-18", "kind": "special", "open": "09:15", "close": "12:30", "breaks": [["10:00", "11:30"]],
     "note": "Saturday DR drill: primary site 09:15-10:00, DR site 11:30-12:30"},
    {"date": "2024-11-01", "kind": "muhurat", "open": "18:00", "close": "19:00", "pre_open_start": "17:45",
     "pre_open_end": "17:53", "note": "Muhurat (Diwali)"},
    {"date": "2025-02-01", "kind": "special", "open": "09:15", "close": "15:30", "note": "Union Budget, Saturday"},
    {"date": "2025-10-21", "kind": "muhurat", "open": "13:45", "close": "14:45", "pre_open_start": "13:30",
     "pre_open_end": "13:38", "note": "Muhurat (Diwali), afternoon"},
    {"date": "2026-02-01", "kind": "special", "open": "09:15", "close": "15:30", "note": "Union Budget, Sunday"},
    {"date": "2026-11-08", "kind": "muhurat", "open": "18:15", "close": "19:15",
     "note": "Muhurat (Diwali), Sunday; times provisional (not yet notified by NSE)"},
]

# Holidays the name sources miss.
EXTRA_HOLIDAY_NAMES = {"2021-03-29": "Holi"}

Progress = Callable[[str, int, int], None]


def _noop_progress(_stage: str, _done: int, _total: int) -> None:
    return None


# --------------------------------------------------------------------------------------------
# Calendar


def _read_csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return [{k.strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(handle)]


@dataclass
class CalendarBuildReport:
    holidays: int = 0
    sessions: int = 0
    disagreements: list[str] = field(default_factory=list)


def build_calendar(source: Path, out_file: Path) -> CalendarBuildReport:
    """Write the calendar TOML: holidays = weekdays missing from the trading-day list of
    `nse-trading-calendar`, named from iaseth (2018-2025) and aion (2026); cross-checked with
    nse-workday. Disagreements are recorded in the file's header."""
    folder = source / HOLIDAYS_DIR
    trading = {r["date"] for r in _read_csv_rows(folder / "nse_trading_days_1990_2026__nse-trading-calendar.csv")}
    names = {r["date"]: r["description"] for r in _read_csv_rows(folder / "nse_bse_holidays_2018_2025__iaseth.csv")}
    names.update(EXTRA_HOLIDAY_NAMES)
    workday = {r["date"] for r in _read_csv_rows(folder / "nse_holidays_2010_2026__nse-workday.csv")}
    events = json.loads((folder / "india_market_events_2026__aion-indian-market-calendar.json").read_text())
    for event in events["events"]:
        if event["id"].startswith("NSE_EQUITY_HOLIDAY_"):
            names.setdefault(event["start"][:10], event["name"].removeprefix("Nse Equity Holiday: "))
    special_days = {str(s["date"]) for s in SPECIAL_SESSIONS}
    report = CalendarBuildReport()
    holidays: dict[str, str] = {}
    day = CALENDAR_FIRST_DAY
    while day <= CALENDAR_LAST_DAY:
        iso = day.isoformat()
        if day.weekday() < 5 and iso not in trading and iso not in special_days:
            holidays[iso] = names.get(iso, "Holiday")
            if iso not in workday:
                report.disagreements.append(f"{iso}: holiday in nse-trading-calendar, absent from nse-workday")
            if iso in EXTRA_HOLIDAY_NAMES:
                report.disagreements.append(f"{iso}: holiday in nse-trading-calendar, missing from iaseth")
        day += timedelta(days=1)
    for iso, name in sorted(names.items()):
        weekday = date.fromisoformat(iso).weekday() < 5
        if weekday and iso not in holidays and iso not in special_days and iso[:4] >= "2018":
            report.disagreements.append(f"{iso}: listed as holiday ({name}) by iaseth/aion, but a trading day")
        if not weekday:
            report.disagreements.append(f"{iso}: iaseth lists {name!r} on a weekend (ignored)")
    for iso in sorted(workday):
        if iso[:4] >= "2018" and date.fromisoformat(iso).weekday() < 5 and iso not in holidays:
            what = "a special session" if iso in special_days else "a trading day"
            report.disagreements.append(f"{iso}: nse-workday lists a holiday; {what} here")
    for iso in sorted(special_days):
        if iso not in trading:
            report.disagreements.append(f"{iso}: special session missing from nse-trading-calendar (added here)")
    report.holidays = len(holidays)
    report.sessions = len(SPECIAL_SESSIONS)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(_calendar_toml(holidays, report.disagreements))
    read_calendar_file(out_file)  # fail now, not at first use, if the file is malformed
    return report


def _toml_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _calendar_toml(holidays: dict[str, str], disagreements: list[str]) -> str:
    lines = [
        "# NSE cash-market calendar, generated by `autotrader data build` (engine/data/build.py) from",
        "# ../shared/data/nse/holidays/ (nse-trading-calendar trading days; names from iaseth/nse-bse-holidays",
        "# and aion-indian-market-calendar; cross-checked with nse-workday). Do not edit by hand: override",
        "# with your own file (setting calendar_file / AUTOTRADER_CALENDAR_FILE) in the same format.",
        "# A trading day is a weekday not listed under [holidays], or a date with a [[sessions]] entry.",
        "# Normal session: pre-open 09:00-09:08, continuous 09:15-15:30 IST.",
        "#",
        "# Source disagreements (resolved in favour of the trading-day list and the published sessions):",
        *[f"#   {line}" for line in disagreements],
        "",
        f'first_day = "{CALENDAR_FIRST_DAY.isoformat()}"',
        f'last_day = "{CALENDAR_LAST_DAY.isoformat()}"',
        "",
        "[holidays]",
        *[f'"{iso}" = {json.dumps(name)}' for iso, name in sorted(holidays.items())],
        "",
    ]
    for session in SPECIAL_SESSIONS:
        lines.append("[[sessions]]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in session.items())
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Bars


def read_5min(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame["ts"] = pd.to_datetime(frame["date"]).dt.tz_convert(IST)
    return frame[["ts", "open", "high", "low", "close", "volume"]].sort_values("ts").reset_index(drop=True)


def read_symbol_5min(source: Path, symbol: str) -> pd.DataFrame:
    """The symbol's 5-minute bars: the full year where `FULL_YEAR_DIR` has it, else June 2024. The
    year must hold the June file's rows unchanged (the replay days stay as they were)."""
    june = read_5min(source / FIVE_MIN_DIR / f"{symbol}.csv")
    year_file = source / FULL_YEAR_DIR / f"{symbol}.csv"
    if not year_file.exists():
        return june
    year = read_5min(year_file)
    if not year[year["ts"] >= june["ts"].iloc[0]].reset_index(drop=True).equals(june):
        raise ValueError(f"{symbol}: {FULL_YEAR_DIR} differs from {FIVE_MIN_DIR} on the June-2024 days")
    return year


def repair_open_outside_range(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Widen high/low to include open and close (vendor artefact); return the number of bars changed."""
    high = frame[["high", "open", "close"]].max(axis=1)
    low = frame[["low", "open", "close"]].min(axis=1)
    changed = int(((high != frame["high"]) | (low != frame["low"])).sum())
    repaired = frame.assign(high=high, low=low)
    return repaired, changed


def aggregate_daily(frame: pd.DataFrame) -> pd.DataFrame:
    """Daily bars (ts = midnight IST) from intraday bars. Close is the last trade, not NSE's official
    closing price (a 30-minute VWAP)."""
    day = frame["ts"].dt.normalize()
    grouped = frame.groupby(day, sort=True)
    daily = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
        }
    )
    daily.index.name = "ts"
    return daily.reset_index()


def read_adjusted_daily(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame["ts"] = pd.to_datetime(frame["timestamp"]).dt.tz_convert(IST).dt.normalize()
    return frame[["ts", "open", "high", "low", "close", "volume"]]


def read_unadjusted_daily(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame["ts"] = pd.to_datetime(frame["Date"]).dt.tz_localize(IST)
    frame = frame.rename(columns={c: c.lower() for c in ("Open", "High", "Low", "Close", "PrevClose", "Volume")})
    return frame[["ts", "open", "high", "low", "close", "prevclose", "volume"]].sort_values("ts")


def snap_factor(raw: float) -> float:
    """Round a price-basis factor to 1, or to a simple fraction (splits/bonuses are n:m with small m)."""
    if abs(raw - 1.0) <= FACTOR_TOLERANCE:
        return 1.0
    fraction = Fraction(raw).limit_denominator(10)
    if abs(float(fraction) - raw) / raw <= FACTOR_TOLERANCE:
        return float(fraction)
    return round(raw, 6)


def usual_split_ratio(ratio: float, tolerance: float = SPLIT_SNAP_TOLERANCE) -> float | None:
    """The usual split/bonus ratio (1:n split, bonus) nearest to `ratio`, if within `tolerance` (log)."""
    nearest = min(USUAL_SPLIT_RATIOS, key=lambda usual: abs(math.log(ratio / usual)))
    return nearest if abs(math.log(ratio / nearest)) <= tolerance else None


def gap_split_factor(last_close: float, next_open: float) -> float:
    """Price-basis factor across a two-month hole in the history (2024-03-28 -> 2024-06-03). Prices
    move in two months, so only a fall below `SPLIT_JUMP_THRESHOLD` counts as a split/bonus, snapped
    to the nearest usual ratio, e.g. CANBK's 1:5 split in May 2024, BPCL's 1:1 bonus."""
    ratio = next_open / last_close
    if ratio >= SPLIT_JUMP_THRESHOLD:
        return 1.0
    return usual_split_ratio(ratio, tolerance=math.inf) or 1.0


@dataclass
class CorporateAction:
    day: date
    ratio: float  # open on the ex-date / previous close, snapped: earlier prices are multiplied by it


@dataclass
class HistoryRepair:
    frame: pd.DataFrame
    actions: list[CorporateAction] = field(default_factory=list)
    dropped: list[tuple[date, date]] = field(default_factory=list)  # stretches of foreign-series rows
    unexplained: list[tuple[date, float]] = field(default_factory=list)  # jumps left as they are


def back_adjust(frame: pd.DataFrame) -> HistoryRepair:
    """Adjust unadjusted daily history for splits/bonuses. NSE's PrevClose in this source is NOT
    restated on ex-dates, so an action shows as an overnight fall (open / previous close) below
    `SPLIT_JUMP_THRESHOLD` that matches a usual ratio; earlier rows get prices x ratio, volume / ratio.
    A fall with no usual ratio that a later jump of the inverse size undoes is a stretch of another
    series' rows (e.g. BRITANNIA's bonus debentures in 2021): it is dropped (and becomes a gap)."""
    frame = frame.reset_index(drop=True)
    ratio = (frame["open"] / frame["close"].shift(1)).to_numpy()
    repair = HistoryRepair(frame)
    keep = np.ones(len(frame), dtype=bool)
    factor = np.ones(len(frame))
    position = 1
    while position < len(frame):
        jump = ratio[position]
        if not SPLIT_JUMP_THRESHOLD <= jump <= 1 / SPLIT_JUMP_THRESHOLD:
            usual = usual_split_ratio(jump) if jump < 1 else None
            undo = [j for j in range(position + 1, len(frame)) if abs(math.log(ratio[j] * jump)) < 0.25]
            if usual is not None:
                factor[:position] *= usual
                repair.actions.append(CorporateAction(frame.loc[position, "ts"].date(), usual))
            elif undo and (jump < 1 / 3 or jump > 3):
                keep[position : undo[0]] = False
                days = (frame.loc[position, "ts"].date(), frame.loc[undo[0] - 1, "ts"].date())
                repair.dropped.append(days)
                position = undo[0]
            else:
                repair.unexplained.append((frame.loc[position, "ts"].date(), round(float(jump), 4)))
        position += 1
    adjusted = frame.copy()
    for column in ("open", "high", "low", "close"):
        adjusted[column] = (adjusted[column] * factor).round(4)
    adjusted["volume"] = (adjusted["volume"] / factor).round().astype("int64")
    repair.frame = adjusted[keep].reset_index(drop=True)
    return repair


def rebase(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
    if factor == 1.0:
        return frame
    out = frame.copy()
    for column in ("open", "high", "low", "close"):
        out[column] = (out[column] * factor).round(4)
    out["volume"] = (out["volume"] / factor).round().astype("int64")
    return out


# --------------------------------------------------------------------------------------------
# Instruments


@dataclass
class Masters:
    upstox: dict[str, dict[str, Any]]  # symbol -> Upstox EQ record
    kite: dict[str, dict[str, str]]  # tradingsymbol -> Kite row
    dhan_by_symbol: dict[str, dict[str, str]]
    dhan_by_isin: dict[str, dict[str, str]]
    constituents: dict[str, dict[str, str]]  # symbol -> niftyindices row
    market_cap_lakh: dict[str, float]


def load_masters(source: Path) -> Masters:
    upstox_rows = json.loads((source / UPSTOX_MASTER).read_text())
    upstox = {
        str(r["trading_symbol"]): r for r in upstox_rows if r["segment"] == "NSE_EQ" and r["instrument_type"] == "EQ"
    }
    kite = {r["tradingsymbol"]: r for r in _read_csv_rows(source / KITE_MASTER) if r["segment"] == "NSE"}
    dhan_eq = [r for r in _read_csv_rows(source / DHAN_MASTER) if r["SERIES"] == "EQ"]
    constituents: dict[str, dict[str, str]] = {}
    for path in sorted((source / CONSTITUENTS_DIR).glob("*.csv")):
        for row in _read_csv_rows(path):
            constituents.setdefault(row["Symbol"], row)
    market_cap = {r["symbol"]: float(r["market_cap_inr_lakhs"]) for r in _read_csv_rows(source / MARKET_CAP)}
    return Masters(
        upstox=upstox,
        kite=kite,
        dhan_by_symbol={r["UNDERLYING_SYMBOL"]: r for r in dhan_eq},
        dhan_by_isin={r["ISIN"]: r for r in dhan_eq},
        constituents=constituents,
        market_cap_lakh=market_cap,
    )


def instrument_master_row(symbol: str, masters: Masters) -> dict[str, object]:
    """Identity, tick and lot size of one symbol, with a note on which source supplied them."""
    notes: list[str] = []
    upstox = masters.upstox.get(symbol) or masters.upstox.get(LATER_NAMES.get(symbol, ""))
    isin: str | None = str(upstox["isin"]) if upstox else None
    name = str(upstox["name"]) if upstox else ""
    tick_size: float | None = float(upstox["tick_size"]) / 100 if upstox else None  # Upstox: paise
    exchange_token = str(upstox["exchange_token"]) if upstox else None
    if upstox is None:
        if symbol in masters.constituents:
            isin = masters.constituents[symbol]["ISIN Code"]
            name = masters.constituents[symbol]["Company Name"]
            notes.append("ISIN from index constituents (no Upstox EQ row)")
        elif symbol in KNOWN_ISINS:
            isin, name = KNOWN_ISINS[symbol]
            notes.append("ISIN not in shipped masters (delisted); from NSE records")
        dhan = masters.dhan_by_isin.get(isin or "") or masters.dhan_by_symbol.get(symbol)
        if dhan:
            tick_size = float(dhan["TICK_SIZE"]) / 100  # Dhan: paise
            exchange_token = dhan["SECURITY_ID"]
            notes.append("tick size and exchange token from Dhan master")
    if isin is None:
        raise ValueError(f"{symbol}: no ISIN in any instrument master")
    kite = masters.kite.get(symbol)
    if kite is None:
        dhan = masters.dhan_by_isin.get(isin)
        current = dhan["UNDERLYING_SYMBOL"] if dhan else LATER_NAMES.get(symbol)
        kite = masters.kite.get(current or "")
        if kite is not None:
            notes.append(f"Kite token of {current} (same ISIN, renamed)")
        else:
            notes.append("no Kite token (not in the 2026 Kite master)")
    if tick_size is None:
        tick_size = float(kite["tick_size"]) if kite else 0.05
        notes.append("tick size from Kite master" if kite else "tick size defaulted to 0.05")
    return {
        "instrument_key": f"NSE_EQ|{isin}",
        "symbol": symbol,
        "isin": isin,
        "name": name,
        "tick_size": tick_size,
        "lot_size": 1,
        "kite_token": int(kite["instrument_token"]) if kite else None,
        "exchange_token": exchange_token or (kite["exchange_token"] if kite else None),
        "master_note": "; ".join(notes),
    }


# --------------------------------------------------------------------------------------------
# Build


@dataclass
class SymbolReport:
    symbol: str
    repaired_bars: int
    daily_source: str
    price_factor: float
    history_complete: bool
    history_start: date | None
    history_end: date | None
    history_note: str
    corporate_actions: list[CorporateAction]


@dataclass
class BuildReport:
    symbols: int = 0
    repaired_bars: int = 0
    bytes_written: int = 0
    calendar: CalendarBuildReport | None = None
    per_symbol: list[SymbolReport] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "symbols": self.symbols,
            "repaired_5min_bars": self.repaired_bars,
            "bytes": self.bytes_written,
            "history_incomplete": sum(not s.history_complete for s in self.per_symbol),
            "rebased": {s.symbol: s.price_factor for s in self.per_symbol if s.price_factor != 1.0},
            "calendar_holidays": self.calendar.holidays if self.calendar else None,
            "calendar_disagreements": len(self.calendar.disagreements) if self.calendar else None,
        }


def _missing_days(days: Iterable[date], calendar: NseCalendar, start: date, end: date) -> list[date]:
    have = set(days)
    return [d for d in calendar.trading_days(start, end) if d not in have]


def _describe_gaps(missing: list[date]) -> str:
    if not missing:
        return ""
    april_may = [d for d in missing if date(2024, 3, 29) <= d <= date(2024, 5, 31)]
    other = [d for d in missing if d not in set(april_may)]
    parts = []
    if april_may:
        parts.append(f"{len(april_may)} days 2024-04-01..2024-05-31 missing (no daily source)")
    if other:
        sample = ", ".join(d.isoformat() for d in other[:3])
        parts.append(f"{len(other)} other trading days missing (e.g. {sample})")
    return "; ".join(parts)


def build_symbol(
    symbol: str, source: Path, store: BarStore, calendar: NseCalendar, adjusted_files: dict[str, Path]
) -> tuple[SymbolReport, float | None]:
    """Write one symbol's 5-minute and daily bars; return its report and its 2024-03-28 close
    (on the June-2024 price basis) for shares outstanding."""
    five, repaired = repair_open_outside_range(read_symbol_5min(source, symbol))
    write_compact(store, symbol, Timeframe.MIN5, five)
    five_daily = aggregate_daily(five)
    june = five_daily[five_daily["ts"] >= pd.Timestamp(BASIS_FIRST_DAY, tz=IST)].reset_index(drop=True)
    notes: list[str] = []
    actions: list[CorporateAction] = []
    if symbol in adjusted_files:
        daily = read_adjusted_daily(adjusted_files[symbol])
        overlap = june.merge(daily, on="ts", suffixes=("_5m", "_1d"))
        factor = snap_factor(float((overlap["close_5m"] / overlap["close_1d"]).median()))
        daily = rebase(daily, factor)
        daily_source = "nifty50_adjusted"
        if factor != 1.0:
            notes.append(f"rebased to the June-2024 basis: prices x {factor:g}, volume / {factor:g}")
    elif not (source / UNADJUSTED_DIR / f"{EARLIER_NAMES.get(symbol, symbol)}.csv").exists():
        factor = 1.0
        daily = five_daily
        daily_source = "5min_june2024"
        notes.append("no daily history in the sources; only June 2024 aggregated from 5-minute bars")
    else:
        raw = read_unadjusted_daily(source / UNADJUSTED_DIR / f"{EARLIER_NAMES.get(symbol, symbol)}.csv")
        repair = back_adjust(raw)
        raw, actions = repair.frame, repair.actions
        if actions:
            listed = ", ".join(f"{a.day.isoformat()} x{a.ratio:g}" for a in actions)
            notes.append(f"split/bonus back-adjusted (overnight jump matching a usual ratio): {listed}")
        for first, last in repair.dropped:
            notes.append(f"rows {first}..{last} dropped (another series' prices, undone by an inverse jump)")
        if repair.unexplained:
            listed = ", ".join(f"{d.isoformat()} x{r:g}" for d, r in repair.unexplained)
            notes.append(f"large overnight jumps left unadjusted (rights/demerger/crash?): {listed}")
        factor = gap_split_factor(float(raw["close"].iloc[-1]), float(june["open"].iloc[0]))
        daily = rebase(raw[["ts", "open", "high", "low", "close", "volume"]], factor)
        if factor != 1.0:
            notes.append(f"basis change between 2024-03-28 and 2024-06-03 assumed: prices x {factor:g}")
        daily = pd.concat([daily, five_daily], ignore_index=True)
        daily_source = "nifty500_unadjusted+5min_june2024"
        notes.append("June 2024 daily bars aggregated from 5-minute bars (close = last trade)")
        if EARLIER_NAMES.get(symbol):
            notes.append(f"daily history under former symbol {EARLIER_NAMES[symbol]}")
    daily = daily.drop_duplicates("ts", keep="first").sort_values("ts").reset_index(drop=True)
    write_compact(store, symbol, Timeframe.DAY, daily)
    days = [ts.date() for ts in daily["ts"]]
    start, end = days[0], days[-1]
    missing = _missing_days(days, calendar, start, end)
    extra = [d for d in days if not calendar.is_trading_day(d)]
    if extra:
        raise ValueError(f"{symbol}: daily bars on non-trading days {extra[:5]}")
    gap_note = _describe_gaps(missing)
    if gap_note:
        notes.insert(0, gap_note)
    notes.extend(_five_minute_notes(symbol, [ts.date() for ts in five_daily["ts"]], calendar))
    close_row = daily.loc[daily["ts"].dt.date == MARKET_CAP_DATE, "close"]
    close_on_snapshot = float(close_row.iloc[0]) if len(close_row) else None
    report = SymbolReport(
        symbol=symbol,
        repaired_bars=repaired,
        daily_source=daily_source,
        price_factor=factor,
        history_complete=not missing and daily_source != "5min_june2024",
        history_start=start,
        history_end=end,
        history_note="; ".join(notes),
        corporate_actions=actions,
    )
    return report, close_on_snapshot


def _five_minute_notes(symbol: str, days: list[date], calendar: NseCalendar) -> list[str]:
    """What the history note says of the 5-minute bars: their span when it reaches before June 2024,
    and trading days missing inside it. Raises on a 5-minute day the calendar does not trade."""
    extra = [d for d in days if not calendar.is_trading_day(d)]
    if extra:
        raise ValueError(f"{symbol}: 5-minute bars on non-trading days {extra[:5]}")
    notes = []
    if days[0] < BASIS_FIRST_DAY:
        notes.append(f"5-minute bars {days[0]}..{days[-1]} ({len(days)} days)")
    missing = _missing_days(days, calendar, days[0], days[-1])
    if missing:
        notes.append(f"{len(missing)} trading days without 5-minute bars (e.g. {missing[0]})")
    return notes


def write_compact(store: BarStore, symbol: str, timeframe: Timeframe, frame: pd.DataFrame) -> None:
    """Write bars through the store, then re-encode the file for size (same schema and values):
    delta-coded times and volumes, byte-split prices, zstd level 19 — about half the size of the
    store's default, which keeps a year of 5-minute bars for 15 symbols inside the 20 MB budget."""
    store.write(symbol, timeframe, frame, merge=False)
    path = store.path(symbol, timeframe)
    table = pq.read_table(path, schema=BAR_SCHEMA)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="zstd", compression_level=COMPACT_ZSTD_LEVEL, use_dictionary=False,
                   column_encoding=COMPACT_ENCODING)
    tmp.replace(path)


def build_index(source: Path, out: Path) -> Path:
    """NIFTY 50 daily OHLC from INDEX_FIRST_DAY, for backtest benchmarks: `out/index/NIFTY50.parquet`."""
    frame = pd.read_csv(source / NIFTY_INDEX)
    frame["date"] = pd.to_datetime(frame["date"].str[:10]).dt.date
    frame = frame[frame["date"] >= INDEX_FIRST_DAY][["date", "open", "high", "low", "close"]]
    target = out / "index" / "NIFTY50.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target, index=False)
    return target


def build(source: Path, out: Path, calendar_file: Path, progress: Progress = _noop_progress) -> BuildReport:
    """Build `out/` (bars, instruments.parquet) and the calendar file from the shared source folder."""
    source = Path(source)
    out = Path(out)
    if not (source / FIVE_MIN_DIR).is_dir():
        raise FileNotFoundError(f"{source} does not look like the shared NSE data folder (no {FIVE_MIN_DIR}/)")
    report = BuildReport()
    report.calendar = build_calendar(source, calendar_file)
    calendar = NseCalendar.load(base_file=calendar_file)
    masters = load_masters(source)
    symbols = sorted(p.stem for p in (source / FIVE_MIN_DIR).glob("*.csv"))
    adjusted_files = {p.name.split("_")[0]: p for p in (source / ADJUSTED_DIR).glob("*.csv")}
    store = BarStore(out / "bars")
    rows: list[dict[str, object]] = []
    for done, symbol in enumerate(symbols, start=1):
        symbol_report, close_on_snapshot = build_symbol(symbol, source, store, calendar, adjusted_files)
        report.per_symbol.append(symbol_report)
        report.repaired_bars += symbol_report.repaired_bars
        row = instrument_master_row(symbol, masters)
        lakh = masters.market_cap_lakh.get(symbol) or masters.market_cap_lakh.get(EARLIER_NAMES.get(symbol, ""))
        market_cap_cr = lakh / 100 if lakh else None
        shares = market_cap_cr * 1e7 / close_on_snapshot if market_cap_cr and close_on_snapshot else None
        history_note = symbol_report.history_note
        if market_cap_cr is None:
            history_note = "; ".join(filter(None, [history_note, "no market cap in the 2024-03-28 snapshot"]))
        row.update(
            market_cap_cr=market_cap_cr,
            shares_outstanding=round(shares) if shares else None,
            price_factor=symbol_report.price_factor,
            history_complete=symbol_report.history_complete,
            history_start=symbol_report.history_start,
            history_end=symbol_report.history_end,
            history_source=symbol_report.daily_source,
            repaired_5min_bars=symbol_report.repaired_bars,
            history_note=history_note,
        )
        rows.append(row)
        progress("symbols", done, len(symbols))
    table = pd.DataFrame(rows)[INSTRUMENT_COLUMNS]
    write_instrument_table(table, out)
    build_index(source, out)
    report.symbols = len(symbols)
    report.bytes_written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log.info("built %d symbols into %s (%d bytes)", report.symbols, out, report.bytes_written)
    return report
