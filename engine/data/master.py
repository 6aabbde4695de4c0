"""The instrument master of a day: the broker's masters (Upstox's published NSE file, Kite's
`instruments("NSE")`) merged into the instrument table, with NSE's price-band tick rule
(`engine.data.ticks`) as fallback and cross-check.

- Identity: a row of our table is matched to the broker's row by ISIN, then symbol, then exchange token.
  Same ISIN under a new symbol is a rename; the same symbol under a new ISIN is an ISIN change (a split
  or a face-value change gives a new ISIN, so the `NSE_EQ|<ISIN>` key goes stale). Both are carried to
  open positions (`instrument_key`, `symbol`, active GTTs) and to the bar store (the symbol's folders
  are renamed), logged at WARNING and listed in the refresh result.
- Tick: the broker's (the coarser of Upstox's and Kite's when both list it) cross-checked with the band
  rule at the last close; when they disagree the result says so and the engine uses the coarser, so
  every price it sends is on the exchange's grid. With no broker tick the band rule decides; with
  neither, the previous tick stays.
- A replayed day reads no network: the previous master (the shipped one at first) with the band rule at
  that day's prices.

Each refresh writes `<work dir>/instruments/master-<day>.parquet` (the table the day trades with,
`load_master_as_of`) and `<day>.json` (its result), and appends every rename and ISIN change to
`changes.jsonl`."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from engine.data.instruments import load_instrument_table
from engine.data.ticks import coarser_tick, paise, tick_for_price
from engine.storage.journal import move_active_gtts
from engine.storage.positions import position_store

log = logging.getLogger(__name__)

MASTER_DIR = "instruments"
CHANGES_FILE = "changes.jsonl"
_MASTER_FILE = re.compile(r"^master-(\d{4}-\d{2}-\d{2})\.parquet$")
SHIPPED_SOURCE = "shipped"


@dataclass(frozen=True, slots=True)
class BrokerInstrument:
    """One NSE equity of a broker's master, in our units (tick in rupees)."""

    symbol: str
    isin: str  # "" when the source lists none (Kite)
    name: str = ""
    tick_size: float | None = None
    lot_size: int | None = None
    instrument_key: str | None = None  # Upstox key
    kite_token: int | None = None
    exchange_token: str | None = None
    source: str = ""


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def upstox_instruments(records: Iterable[Mapping[str, Any]]) -> list[BrokerInstrument]:
    """NSE_EQ equities (instrument_type EQ) of Upstox's master; tick_size there is in paise. Rows
    without a symbol or ISIN are skipped."""
    rows = []
    for record in records:
        if record.get("segment") != "NSE_EQ" or record.get("instrument_type") != "EQ":
            continue
        symbol, isin = str(record.get("trading_symbol") or ""), str(record.get("isin") or "")
        if not symbol or not isin:
            continue
        tick_paise, lot = _positive(record.get("tick_size")), _positive(record.get("lot_size"))
        rows.append(BrokerInstrument(
            symbol=symbol, isin=isin, name=str(record.get("name") or ""),
            tick_size=tick_paise / 100 if tick_paise else None, lot_size=int(lot) if lot else None,
            instrument_key=str(record.get("instrument_key") or f"NSE_EQ|{isin}"),
            exchange_token=str(record["exchange_token"]) if record.get("exchange_token") else None, source="upstox"))
    return rows


def kite_instruments(records: Iterable[Mapping[str, Any]]) -> list[BrokerInstrument]:
    """NSE equities (segment NSE, instrument_type EQ) of Kite's master; tick_size in rupees."""
    rows = []
    for record in records:
        if record.get("segment") != "NSE" or record.get("instrument_type") != "EQ" or not record.get("tradingsymbol"):
            continue
        tick, lot = _positive(record.get("tick_size")), _positive(record.get("lot_size"))
        token = _positive(record.get("instrument_token"))
        rows.append(BrokerInstrument(
            symbol=str(record["tradingsymbol"]), isin="", name=str(record.get("name") or ""), tick_size=tick,
            lot_size=int(lot) if lot else None, kite_token=int(token) if token else None,
            exchange_token=str(record["exchange_token"]) if record.get("exchange_token") else None, source="kite"))
    return rows


def merge_broker_masters(upstox: list[BrokerInstrument], kite: list[BrokerInstrument]) -> list[BrokerInstrument]:
    """Upstox's rows with Kite's token (joined by exchange token, then symbol) and the coarser of the
    two ticks; Kite's rows Upstox lacks are kept without ISIN."""
    kite_by_token = {row.exchange_token: row for row in kite if row.exchange_token}
    kite_by_symbol = {row.symbol: row for row in kite}
    merged, used = [], set()
    for row in upstox:
        match = kite_by_token.get(row.exchange_token or "")
        if match is None or match.symbol != row.symbol:
            match = kite_by_symbol.get(row.symbol, match)
        if match is None:
            merged.append(row)
            continue
        used.add(match.symbol)
        ticks = [t for t in (row.tick_size, match.tick_size) if t]
        tick = coarser_tick(*ticks) if len(ticks) == 2 else (ticks[0] if ticks else None)
        merged.append(BrokerInstrument(
            symbol=row.symbol, isin=row.isin, name=row.name or match.name, tick_size=tick,
            lot_size=row.lot_size or match.lot_size, instrument_key=row.instrument_key, kite_token=match.kite_token,
            exchange_token=row.exchange_token or match.exchange_token, source="upstox+kite"))
    merged.extend(row for row in kite if row.symbol not in used)
    return merged


@dataclass
class MasterRefresh:
    """The refreshed table and what changed. `result()` is the JSON-able summary."""

    day: date
    table: pd.DataFrame
    sources: dict[str, str] = field(default_factory=dict)  # source -> "N equities" or why not read
    renames: list[dict[str, Any]] = field(default_factory=list)
    isin_changes: list[dict[str, Any]] = field(default_factory=list)
    tick_changes: list[dict[str, Any]] = field(default_factory=list)
    tick_disagreements: list[dict[str, Any]] = field(default_factory=list)
    not_in_master: list[str] = field(default_factory=list)
    carried: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def result(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "instruments": len(self.table), "sources": self.sources,
                "renames": self.renames, "isin_changes": self.isin_changes, "tick_changes": self.tick_changes,
                "tick_disagreements": self.tick_disagreements, "not_in_master": self.not_in_master,
                "carried": self.carried, "warnings": self.warnings}


def _index(rows: list[BrokerInstrument]) -> tuple[dict[str, BrokerInstrument], ...]:
    by_isin = {row.isin: row for row in rows if row.isin}
    by_symbol = {row.symbol: row for row in rows}
    by_token = {row.exchange_token: row for row in rows if row.exchange_token}
    return by_isin, by_symbol, by_token


def _match(record: Mapping[str, Any], indexes: tuple[dict[str, BrokerInstrument], ...]) -> BrokerInstrument | None:
    by_isin, by_symbol, by_token = indexes
    token = record.get("exchange_token")
    return (by_isin.get(str(record["isin"])) or by_symbol.get(str(record["symbol"]))
            or (by_token.get(str(token)) if isinstance(token, str) and token else None))


def refresh_table(
    previous: pd.DataFrame,
    broker: list[BrokerInstrument] | None,
    closes: Mapping[str, float],
    day: date,
    *,
    source: str,
) -> MasterRefresh:
    """`previous` (one row per symbol, the instrument-table columns) updated from `broker` (None: no
    master was read) and the band rule at `closes` (last close by the previous symbol)."""
    table = previous.copy().reset_index(drop=True)
    refresh = MasterRefresh(day, table)
    indexes = _index(broker) if broker else None
    taken = set(table["symbol"])
    columns: dict[str, list[Any]] = {"source": [], "as_of": [], "broker_tick": [], "band_tick": []}
    for position, record in table.iterrows():
        symbol, old_tick = str(record["symbol"]), float(record["tick_size"])
        match = _match(record, indexes) if indexes else None
        broker_tick = match.tick_size if match else None
        if indexes and match is None:
            refresh.not_in_master.append(symbol)
        if match is not None:
            _apply_identity(refresh, position, record, match, taken)
        close = closes.get(symbol)
        band_tick = tick_for_price(close, day) if close and math.isfinite(close) and close > 0 else None
        tick = _decide_tick(refresh, symbol, broker_tick, band_tick, close, old_tick)
        if paise(tick) != paise(old_tick):
            refresh.tick_changes.append({"symbol": str(table.at[position, "symbol"]), "old": old_tick, "new": tick})
        table.at[position, "tick_size"] = tick
        columns["source"].append(match.source if match else str(record.get("source") or source))
        columns["as_of"].append(day)
        columns["broker_tick"].append(broker_tick)
        columns["band_tick"].append(band_tick)
    for name, values in columns.items():
        table[name] = values
    refresh.table = table.sort_values("symbol").reset_index(drop=True)
    if refresh.tick_disagreements:
        shown = ", ".join(f"{d['symbol']} {d['broker_tick']:g}/{d['band_tick']:g}"
                          for d in refresh.tick_disagreements[:8])
        refresh.warnings.append(
            f"{len(refresh.tick_disagreements)} broker tick(s) disagree with the NSE band rule at the last close "
            f"(broker/band: {shown}{' ...' if len(refresh.tick_disagreements) > 8 else ''}); the coarser is used")
    return refresh


def _apply_identity(refresh: MasterRefresh, position: Any, record: Mapping[str, Any], match: BrokerInstrument,
                    taken: set[str]) -> None:
    table = refresh.table
    symbol, isin, key = str(record["symbol"]), str(record["isin"]), str(record["instrument_key"])
    if match.symbol != symbol:
        if match.symbol in taken:
            refresh.warnings.append(f"{symbol} ({isin}) is listed as {match.symbol}, which is another row of the "
                                    "table: not renamed")
            return
        taken.discard(symbol)
        taken.add(match.symbol)
        refresh.renames.append({"old_symbol": symbol, "new_symbol": match.symbol, "isin": match.isin or isin})
        table.at[position, "symbol"] = match.symbol
    new_isin = match.isin or isin
    new_key = match.instrument_key or (f"NSE_EQ|{new_isin}" if match.isin else key)
    if new_isin != isin:
        refresh.isin_changes.append({"symbol": match.symbol, "old_isin": isin, "new_isin": new_isin,
                                     "old_instrument_key": key, "new_instrument_key": new_key})
    table.at[position, "isin"] = new_isin
    table.at[position, "instrument_key"] = new_key
    if match.name:
        table.at[position, "name"] = match.name
    if match.lot_size:
        table.at[position, "lot_size"] = match.lot_size
    if match.kite_token is not None:
        table.at[position, "kite_token"] = match.kite_token
    if match.exchange_token:
        table.at[position, "exchange_token"] = match.exchange_token


def _decide_tick(refresh: MasterRefresh, symbol: str, broker_tick: float | None, band_tick: float | None,
                 close: float | None, old_tick: float) -> float:
    if broker_tick and band_tick:
        tick = coarser_tick(broker_tick, band_tick)
        if paise(broker_tick) != paise(band_tick):
            refresh.tick_disagreements.append({"symbol": symbol, "broker_tick": broker_tick, "band_tick": band_tick,
                                               "close": close, "tick_size": tick})
        return tick
    return broker_tick or band_tick or old_tick


# ---------------------------------------------------------------- carrying renames and ISIN changes


def carry_changes(db: Engine, bars_root: Path, refresh: MasterRefresh) -> dict[str, Any]:
    """Move open positions and active GTTs to their new key and symbol, and rename the bar store's
    folders of renamed symbols. Idempotent: what was already moved is not found again."""
    keys = {c["old_instrument_key"]: c["new_instrument_key"] for c in refresh.isin_changes}
    symbols = {r["old_symbol"]: r["new_symbol"] for r in refresh.renames}
    positions = gtts = 0
    if keys or symbols:
        store = position_store(db)
        for row in store.open_positions():
            new_key = keys.get(row.instrument_key, row.instrument_key)
            new_symbol = symbols.get(row.symbol, row.symbol)
            if (new_key, new_symbol) != (row.instrument_key, row.symbol):
                log.warning("open position %s: %s %s -> %s %s", row.id, row.symbol, row.instrument_key,
                            new_symbol, new_key)
                store.update(row.id, instrument_key=new_key, symbol=new_symbol)
                positions += 1
        gtts = move_active_gtts(db, keys)
    moved, conflicts = _rename_bar_folders(bars_root, symbols)
    return {"positions": positions, "gtts": gtts, "bar_folders": moved, "bar_conflicts": conflicts}


def _rename_bar_folders(root: Path, symbols: Mapping[str, str]) -> tuple[list[str], list[str]]:
    moved, conflicts = [], []
    for old, new in symbols.items():
        for timeframe in sorted(root.glob("timeframe=*")):
            source, target = timeframe / f"symbol={old}", timeframe / f"symbol={new}"
            if not source.is_dir():
                continue
            if target.exists():
                conflicts.append(f"{timeframe.name}: both {source.name} and {target.name} exist; left as they are")
                continue
            source.rename(target)
            moved.append(f"{timeframe.name}/{source.name} -> {target.name}")
            log.warning("bar store: %s/%s renamed to %s", timeframe.name, source.name, target.name)
    return moved, conflicts


# ---------------------------------------------------------------- the day's master on disk


def master_dir(work_dir: Path) -> Path:
    return Path(work_dir) / MASTER_DIR


def master_path(work_dir: Path, day: date) -> Path:
    return master_dir(work_dir) / f"master-{day.isoformat()}.parquet"


def latest_master_file(work_dir: Path, day: date) -> Path | None:
    """The newest refreshed master dated on or before `day`, or None."""
    dated = []
    for path in master_dir(work_dir).glob("master-*.parquet"):
        found = _MASTER_FILE.match(path.name)
        if found and date.fromisoformat(found.group(1)) <= day:
            dated.append((found.group(1), path))
    return max(dated)[1] if dated else None


def load_master_as_of(data_dir: Path, work_dir: Path, day: date) -> pd.DataFrame:
    """The instrument table a day trades with: its refreshed master (the newest on or before `day`),
    else the shipped `instruments.parquet`."""
    path = latest_master_file(work_dir, day)
    if path is None:
        table = load_instrument_table(data_dir)
        table["source"], table["as_of"] = SHIPPED_SOURCE, None
        return table
    table = pd.read_parquet(path)
    table["kite_token"] = table["kite_token"].astype("Int64")
    return table.sort_values("symbol").reset_index(drop=True)


def write_master_table(work_dir: Path, day: date, table: pd.DataFrame) -> Path:
    """Write (atomically) the instrument table `day` trades with: the master `load_master_as_of` finds."""
    path = master_path(work_dir, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    table.to_parquet(partial, index=False)
    partial.replace(path)
    return path


def save_master(work_dir: Path, refresh: MasterRefresh) -> Path:
    """Write the day's master and result, and append its renames and ISIN changes to the journal."""
    folder = master_dir(work_dir)
    path = write_master_table(work_dir, refresh.day, refresh.table)
    (folder / f"{refresh.day.isoformat()}.json").write_text(json.dumps(refresh.result(), default=str, indent=1))
    changes = [{"day": refresh.day.isoformat(), "kind": "rename", **r} for r in refresh.renames]
    changes += [{"day": refresh.day.isoformat(), "kind": "isin_change", **c} for c in refresh.isin_changes]
    if changes:
        with (folder / CHANGES_FILE).open("a") as journal:
            journal.writelines(json.dumps(change) + "\n" for change in changes)
    return path


def instrument_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """One row of a master as `autotrader instruments show --json` prints it (keys are an interface)."""

    def plain(value: Any) -> Any:
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return None
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value.item() if hasattr(value, "item") else value

    kite_token = plain(record.get("kite_token"))
    return {"symbol": str(record["symbol"]), "isin": str(record["isin"]),
            "instrument_key": str(record["instrument_key"]), "tick_size": float(record["tick_size"]),
            "lot_size": int(record["lot_size"]), "kite_token": int(kite_token) if kite_token is not None else None,
            "exchange_token": plain(record.get("exchange_token")), "name": str(plain(record.get("name")) or ""),
            "source": plain(record.get("source")) or SHIPPED_SOURCE, "as_of": plain(record.get("as_of")),
            "broker_tick": plain(record.get("broker_tick")), "band_tick": plain(record.get("band_tick"))}


__all__ = [
    "BrokerInstrument",
    "MasterRefresh",
    "carry_changes",
    "instrument_json",
    "kite_instruments",
    "latest_master_file",
    "load_master_as_of",
    "master_path",
    "merge_broker_masters",
    "refresh_table",
    "save_master",
    "upstox_instruments",
    "write_master_table",
]
