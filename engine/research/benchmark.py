"""The benchmark a backtest is read against: NIFTY 50 buy-and-hold, from the shipped index closes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

NIFTY50_FILE = Path("index") / "NIFTY50.parquet"


def load_benchmark_closes(data_dir: Path) -> dict[date, float]:
    """{day: NIFTY 50 close}; empty when the data folder has no index file (a user's own data_dir)."""
    path = Path(data_dir) / NIFTY50_FILE
    if not path.is_file():
        return {}
    table = pq.read_table(path, columns=["date", "close"]).to_pydict()
    return dict(zip(table["date"], table["close"], strict=True))
