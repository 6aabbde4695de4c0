"""Bar history in Parquet: one dataset partitioned by timeframe and symbol
(`<root>/timeframe=1d/symbol=RELIANCE/part-0.parquet`).

Columns: `ts` (bar start, timestamp[ns, Asia/Kolkata]), `open`, `high`, `low`, `close` (float64),
`volume` (int64). Rows are sorted by `ts` with no duplicates."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engine.models import IST, Bar, Timeframe

BAR_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("ns", tz="Asia/Kolkata")),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.int64()),
    ]
)
BAR_COLUMNS = [f.name for f in BAR_SCHEMA]


class BarPathError(ValueError):
    """A symbol whose file would lie outside the bar store (e.g. `A/../../x`)."""


def _as_ts(value: date | datetime) -> pd.Timestamp:
    if isinstance(value, datetime):
        return pd.Timestamp(value).tz_convert(IST) if value.tzinfo else pd.Timestamp(value, tz=IST)
    return pd.Timestamp(datetime.combine(value, time()), tz=IST)


class BarStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, symbol: str, timeframe: Timeframe | str) -> Path:
        """The Parquet file of one symbol and timeframe (it may not exist). Raises `BarPathError` unless the symbol's
        folder, resolved, is a direct child of its timeframe folder: defence in depth behind the importer's check."""
        folder = self.root / f"timeframe={Timeframe(timeframe).value}"
        path = folder / f"symbol={symbol}" / "part-0.parquet"
        try:
            resolved, base = path.parent.resolve(), folder.resolve()
        except (OSError, ValueError) as exc:  # a NUL byte, a symlink loop
            raise BarPathError(f"symbol {symbol!r}: not a valid path in the bar store ({exc})") from None
        if not resolved.is_relative_to(base) or resolved.parent != base:
            raise BarPathError(f"symbol {symbol!r} leads outside the bar store: {resolved} is not a folder of {base}")
        return path

    def symbols(self, timeframe: Timeframe | str) -> list[str]:
        folder = self.root / f"timeframe={Timeframe(timeframe).value}"
        if not folder.exists():
            return []
        return sorted(p.name.removeprefix("symbol=") for p in folder.iterdir() if p.name.startswith("symbol="))

    def has(self, symbol: str, timeframe: Timeframe | str) -> bool:
        return self.path(symbol, timeframe).exists()

    def read(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: date | datetime | None = None,
        end: date | datetime | None = None,
    ) -> pd.DataFrame:
        """Bars with `start <= ts < end` (dates mean midnight IST). Empty frame if none."""
        path = self.path(symbol, timeframe)
        if not path.exists():
            return BAR_SCHEMA.empty_table().to_pandas()
        frame = pq.read_table(path, schema=BAR_SCHEMA).to_pandas()
        if start is not None:
            frame = frame[frame["ts"] >= _as_ts(start)]
        if end is not None:
            frame = frame[frame["ts"] < _as_ts(end)]
        return frame.reset_index(drop=True)

    def last_ts(self, symbol: str, timeframe: Timeframe | str) -> datetime | None:
        """Start of the symbol's latest bar (reads the `ts` column only), None without bars."""
        path = self.path(symbol, timeframe)
        if not path.exists():
            return None
        ts = pq.read_table(path, columns=["ts"], schema=BAR_SCHEMA).column("ts")
        return pd.Timestamp(ts[-1].as_py()).tz_convert(IST).to_pydatetime() if len(ts) else None

    def read_bars(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: date | datetime | None = None,
        end: date | datetime | None = None,
    ) -> list[Bar]:
        frame = self.read(symbol, timeframe, start, end)
        tf = Timeframe(timeframe)
        return [
            Bar(symbol, ts.to_pydatetime(), o, h, lo, c, int(v), tf)
            for ts, o, h, lo, c, v in zip(
                frame["ts"], frame["open"], frame["high"], frame["low"], frame["close"], frame["volume"],
                strict=True,
            )
        ]

    def write(self, symbol: str, timeframe: Timeframe | str, frame: pd.DataFrame, *, merge: bool = True) -> int:
        """Write bars for one symbol; with `merge`, new rows replace existing rows of the same `ts`.
        Returns the number of rows stored."""
        frame = frame[BAR_COLUMNS].copy()
        frame["ts"] = pd.to_datetime(frame["ts"])
        if frame["ts"].dt.tz is None:
            frame["ts"] = frame["ts"].dt.tz_localize(IST)
        frame["ts"] = frame["ts"].dt.tz_convert(IST).astype("datetime64[ns, Asia/Kolkata]")
        if merge:
            existing = self.read(symbol, timeframe)
            if len(existing):
                frame = pd.concat([existing, frame], ignore_index=True)
        frame = frame.drop_duplicates("ts", keep="last").sort_values("ts").reset_index(drop=True)
        path = self.path(symbol, timeframe)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(frame, schema=BAR_SCHEMA, preserve_index=False)
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(path)
        return len(frame)
