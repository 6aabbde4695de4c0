"""The NIFTY 500 daily bars of ../shared (2018-2024, unadjusted), for the benches that measure ~500 symbols x
6 years; they live outside the repository, so those benches skip when they are absent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.data.instruments import INSTRUMENT_COLUMNS, write_instrument_table
from engine.models import IST
from engine.storage.bars import BarStore

ROOT = Path(__file__).resolve().parent.parent
NIFTY500 = ROOT.parent / "shared" / "data" / "nse" / "daily_nifty500_2018_2024_unadjusted"


def csv_to_store(store: BarStore) -> list[str]:
    """Every symbol's CSV as daily bars in `store`; returns the symbols."""
    symbols = []
    for path in sorted(NIFTY500.glob("*.csv")):
        if path.name.startswith("_"):
            continue
        frame = pd.read_csv(path, usecols=["Date", "Open", "High", "Low", "Close", "Volume"])
        frame = frame.rename(columns=str.lower).rename(columns={"date": "ts"})
        frame["ts"] = pd.to_datetime(frame["ts"]).dt.tz_localize(IST)
        store.write(path.stem, "1d", frame, merge=False)
        symbols.append(path.stem)
    return symbols


def write_data_dir(data_dir: Path) -> list[str]:
    """A data directory a backtest can run on: the bars, and an instrument table with made-up keys."""
    symbols = csv_to_store(BarStore(data_dir / "bars"))
    table = pd.DataFrame({column: [None] * len(symbols) for column in INSTRUMENT_COLUMNS})
    table["symbol"] = symbols
    table["instrument_key"] = [f"NSE_EQ|BENCH{number:07d}" for number in range(len(symbols))]
    table["isin"] = [key.split("|")[1] for key in table["instrument_key"]]
    table["name"] = symbols
    table["tick_size"], table["lot_size"], table["history_complete"] = 0.05, 1, True
    write_instrument_table(table, data_dir)
    return symbols
