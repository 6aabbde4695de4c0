"""The instrument table shipped in `data/instruments.parquet`: identity (Upstox key, ISIN, Kite token),
tick and lot size, market cap and shares outstanding, and the daily-history quality flags.

`shares_outstanding` comes from the 2024-03-28 market-cap snapshot divided by that day's close on the
June-2024 price basis, so `refresh_market_caps` can recompute market cap from any day's closes. A split or
bonus multiplies it by its factor as the stored history is divided by it (`engine.data.corporate_actions`), so
market cap = shares x price stays right."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine
from sqlmodel import col, select

from engine.models import Instrument
from engine.storage.db import session_scope
from engine.storage.tables import InstrumentRow

INSTRUMENTS_FILE = "instruments.parquet"

INSTRUMENT_SCHEMA = pa.schema(
    [
        ("instrument_key", pa.string()),
        ("symbol", pa.string()),
        ("isin", pa.string()),
        ("name", pa.string()),
        ("tick_size", pa.float64()),  # rupees
        ("lot_size", pa.int64()),
        ("kite_token", pa.int64()),  # Kite instrument_token; null when unknown
        ("exchange_token", pa.string()),
        ("market_cap_cr", pa.float64()),  # rupees crore
        ("shares_outstanding", pa.float64()),
        ("price_factor", pa.float64()),  # daily source prices x factor = stored prices (June-2024 basis)
        ("history_complete", pa.bool_()),  # False: daily history has gaps vs the NSE calendar
        ("history_start", pa.date32()),
        ("history_end", pa.date32()),
        ("history_source", pa.string()),
        ("repaired_5min_bars", pa.int64()),
        ("history_note", pa.string()),
        ("master_note", pa.string()),
    ]
)
INSTRUMENT_COLUMNS = [f.name for f in INSTRUMENT_SCHEMA]


class InstrumentTableError(ValueError):
    """The instrument table is missing or malformed."""


def write_instrument_table(table: pd.DataFrame, data_dir: Path) -> Path:
    path = Path(data_dir) / INSTRUMENTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pandas(table[INSTRUMENT_COLUMNS], schema=INSTRUMENT_SCHEMA, preserve_index=False)
    pq.write_table(arrow, path, compression="zstd")
    return path


def load_instrument_table(data_dir: Path) -> pd.DataFrame:
    """The instrument table, one row per symbol, sorted by symbol."""
    path = Path(data_dir) / INSTRUMENTS_FILE
    if not path.exists():
        raise InstrumentTableError(f"{path} does not exist; run `autotrader data build` or point data_dir at it")
    table = pq.read_table(path).to_pandas()
    missing = [c for c in ("instrument_key", "symbol", "isin", "tick_size", "lot_size") if c not in table]
    if missing:
        raise InstrumentTableError(f"{path} lacks columns {missing}")
    table["kite_token"] = table["kite_token"].astype("Int64")
    return table.sort_values("symbol").reset_index(drop=True)


def _optional(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def to_instrument(row: pd.Series) -> Instrument:
    kite_token = _optional(row.get("kite_token"))
    return Instrument(
        instrument_key=str(row["instrument_key"]),
        symbol=str(row["symbol"]),
        isin=str(row["isin"]),
        tick_size=float(row["tick_size"]),
        lot_size=int(row["lot_size"]),
        kite_token=int(kite_token) if kite_token is not None else None,
        exchange_token=_optional(row.get("exchange_token")),
        name=str(_optional(row.get("name")) or ""),
    )


def load_instruments(data_dir: Path) -> list[Instrument]:
    """Every shipped instrument as a domain `Instrument`, sorted by symbol."""
    return [to_instrument(row) for _, row in load_instrument_table(data_dir).iterrows()]


def filter_universe(
    table: pd.DataFrame, min_market_cap_cr: float, max_instruments: int, require_complete_history: bool
) -> pd.DataFrame:
    """Instruments with a known market cap >= `min_market_cap_cr` (and, if required, complete daily
    history), the largest `max_instruments` by market cap, in descending market-cap order."""
    selected = table[table["market_cap_cr"].notna() & (table["market_cap_cr"] >= min_market_cap_cr)]
    if require_complete_history:
        selected = selected[selected["history_complete"].astype(bool)]
    selected = selected.sort_values(["market_cap_cr", "symbol"], ascending=[False, True])
    return selected.head(max_instruments).reset_index(drop=True)


def refresh_market_caps(table: pd.DataFrame, closes: dict[str, float]) -> pd.DataFrame:
    """A copy with `market_cap_cr = shares_outstanding x close / 1e7` for every symbol in `closes`
    that has shares outstanding; other rows keep their market cap."""
    out = table.copy()
    close_series = out["symbol"].map(closes)
    known = close_series.notna() & out["shares_outstanding"].notna()
    out.loc[known, "market_cap_cr"] = out.loc[known, "shares_outstanding"] * close_series[known].astype(float) / 1e7
    return out


def sync_instruments(db_engine: Engine, table: pd.DataFrame, updated_on: date | None = None) -> int:
    """Upsert every row of `table` into the `instruments` table (keyed by instrument_key; a symbol
    that moved to a new key replaces its old row). Returns the number of rows written."""
    written = 0
    with session_scope(db_engine) as session:
        existing = {row.instrument_key: row for row in session.exec(select(InstrumentRow)).all()}
        by_symbol = {row.symbol: row for row in existing.values()}
        for _, record in table.iterrows():
            key = str(record["instrument_key"])
            stale = by_symbol.get(str(record["symbol"]))
            if stale is not None and stale.instrument_key != key:
                session.delete(stale)
                session.flush()
            row = existing.get(key) or InstrumentRow(instrument_key=key, symbol=str(record["symbol"]), isin="")
            instrument = to_instrument(record)
            row.symbol = instrument.symbol
            row.isin = instrument.isin
            row.name = instrument.name
            row.tick_size = instrument.tick_size
            row.lot_size = instrument.lot_size
            row.kite_token = instrument.kite_token
            row.exchange_token = instrument.exchange_token
            row.shares_outstanding = _optional(record.get("shares_outstanding"))
            row.market_cap_cr = _optional(record.get("market_cap_cr"))
            row.history_complete = bool(_optional(record.get("history_complete")) or False)
            if "in_universe" in record:
                row.in_universe = bool(record["in_universe"])
            row.updated_on = updated_on
            session.add(row)
            written += 1
    return written



def universe_in_db(db_engine: Engine) -> list[str]:
    """The symbols marked `in_universe` in the `instruments` table, largest market cap first."""
    with session_scope(db_engine) as session:
        rows = session.exec(select(InstrumentRow).where(col(InstrumentRow.in_universe))).all()
        return [row.symbol for row in sorted(rows, key=lambda row: -(row.market_cap_cr or 0.0))]


def store_market_caps(db_engine: Engine, closes: dict[str, float], day: date) -> int:
    """Market cap = shares outstanding x `closes[symbol]` in the `instruments` table (rows without shares
    outstanding keep theirs); returns how many were refreshed."""
    refreshed = 0
    with session_scope(db_engine) as session:
        for row in session.exec(select(InstrumentRow).where(col(InstrumentRow.symbol).in_(list(closes)))).all():
            if row.shares_outstanding:
                row.market_cap_cr = row.shares_outstanding * closes[row.symbol] / 1e7
                row.updated_on = day
                session.add(row)
                refreshed += 1
    return refreshed


def rebase_shares_outstanding(db_engine: Engine, symbol: str, was: float, now: float) -> bool:
    """`symbol`'s shares outstanding set to `now` where it still holds `was` (a split or bonus applied at most
    once); True when it changed."""
    with session_scope(db_engine) as session:
        row = session.exec(select(InstrumentRow).where(InstrumentRow.symbol == symbol)).first()
        if row is None or row.shares_outstanding is None or not math.isclose(row.shares_outstanding, was,
                                                                             rel_tol=1e-12):
            return False
        row.shares_outstanding = now
        session.add(row)
    return True

__all__ = [
    "INSTRUMENTS_FILE",
    "INSTRUMENT_COLUMNS",
    "INSTRUMENT_SCHEMA",
    "InstrumentTableError",
    "filter_universe",
    "load_instrument_table",
    "load_instruments",
    "rebase_shares_outstanding",
    "refresh_market_caps",
    "store_market_caps",
    "sync_instruments",
    "to_instrument",
    "universe_in_db",
    "write_instrument_table",
]
