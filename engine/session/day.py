"""Pre-open and post-close work of a trading day, one function per step (each a Prefect task).

Pre-open: broker token check, instrument master refresh, market caps + universe filter, metadata.
Post-close: the day's daily bars appended to history, metadata saved, market caps refreshed from the
close, the daily report, shutdown. Every step is idempotent, so a re-run is harmless."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlmodel import select

from engine.data.instruments import (
    filter_universe,
    load_instrument_table,
    refresh_market_caps,
    sync_instruments,
)
from engine.indicators.metadata import build_metadata as build_indicator_metadata
from engine.indicators.metadata import save_metadata
from engine.indicators.multitimeframe import IndicatorConfig
from engine.models import IST, Timeframe
from engine.report import daily_report as report_of_day
from engine.session.stages import TradingDayContext
from engine.storage import BarStore, session_scope
from engine.storage.tables import InstrumentRow
from engine.strategy import load_strategy
from engine.trader import required_indicator_config

log = logging.getLogger(__name__)


class TokenMissing(RuntimeError):
    """A credential the day needs is not configured."""


def bar_store(context: TradingDayContext) -> BarStore:
    return BarStore(Path(context.settings.data_dir) / "bars")


def work_dir(context: TradingDayContext) -> Path:
    """Where the day's files live (metadata, charts): next to the database for SQLite, else var/."""
    url = context.settings.database_url
    on_disk = url.startswith("sqlite:///") and ":memory:" not in url
    return Path(url.removeprefix("sqlite:///")).parent if on_disk else Path("var")


def metadata_dir(context: TradingDayContext) -> Path:
    return work_dir(context) / "metadata"


# ---------------------------------------------------------------- pre-open


async def check_broker_token(context: TradingDayContext) -> str:
    """Connect to the broker (and check the feed token when the feed is live Upstox); raise when a
    token is missing or rejected. Returns a one-line description."""
    from engine.brokers.factory import make_broker
    from engine.clock import LiveClock
    from engine.settings import load_credentials

    credentials = load_credentials()
    if context.settings.feed.source == "upstox" and credentials.upstox_access_token is None:
        raise TokenMissing("feed.source is 'upstox' but UPSTOX_ACCESS_TOKEN is not set")
    broker = make_broker(context.settings, credentials, clock=LiveClock(), db=context.db)
    try:
        await broker.connect()
    finally:
        await broker.close()
    return f"broker {broker.name} connected; feed {context.settings.feed.source}"


def refresh_instrument_master(context: TradingDayContext) -> int:
    """Upsert the instrument master (shipped `instruments.parquet`) into the database."""
    table = load_instrument_table(Path(context.settings.data_dir))
    return sync_instruments(context.db, table, updated_on=context.day)


def _last_closes(context: TradingDayContext, symbols: list[str], before: bool) -> dict[str, float]:
    """Each symbol's last daily close before the day (`before`) or on it."""
    store = bar_store(context)
    end = context.day if before else context.day + timedelta(days=1)
    closes: dict[str, float] = {}
    for symbol in symbols:
        frame = store.read(symbol, Timeframe.DAY, start=end - timedelta(days=10), end=end)
        if len(frame):
            closes[symbol] = float(frame["close"].iloc[-1])
    return closes


def refresh_universe(context: TradingDayContext) -> list[str]:
    """Market caps from the previous close, then the universe filter; marks `in_universe` in the
    database and returns the universe's symbols (largest market cap first)."""
    table = load_instrument_table(Path(context.settings.data_dir))
    table = refresh_market_caps(table, _last_closes(context, list(table["symbol"]), before=True))
    universe = filter_universe(
        table,
        context.settings.universe.min_market_cap_cr,
        context.settings.universe.max_instruments,
        context.settings.universe.require_complete_history,
    )
    table["in_universe"] = table["symbol"].isin(set(universe["symbol"]))
    sync_instruments(context.db, table, updated_on=context.day)
    return list(universe["symbol"])


def universe_symbols(context: TradingDayContext) -> list[str]:
    """The universe marked by the last pre-open (largest market cap first)."""
    with session_scope(context.db) as session:
        rows = session.exec(select(InstrumentRow).where(InstrumentRow.in_universe == True)).all()  # noqa: E712
        return [r.symbol for r in sorted(rows, key=lambda r: -(r.market_cap_cr or 0.0))]


def _save_metadata(context: TradingDayContext, symbols: list[str], asof: date, path: Path) -> str:
    keys = dict(zip(*load_instrument_table(Path(context.settings.data_dir))[["symbol", "instrument_key"]].T.values,
                    strict=True))
    built = build_indicator_metadata(bar_store(context), symbols, asof=asof, config=indicator_config(context),
                                     instrument_keys=keys)
    if built.missing:
        log.warning("no daily history up to %s for %s", asof, built.missing)
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(save_metadata(path, built))


def indicator_config(context: TradingDayContext) -> IndicatorConfig:
    """Every indicator period the strategy, the stop policy and the validator read."""
    return required_indicator_config(context.settings, load_strategy(context.settings))


def premarket_metadata_path(context: TradingDayContext) -> Path:
    return metadata_dir(context) / f"{context.day.isoformat()}.parquet"


def build_metadata(context: TradingDayContext) -> str:
    """Indicator state of the universe as of the previous close, saved for the live session."""
    symbols = universe_symbols(context) or refresh_universe(context)
    return _save_metadata(context, symbols, context.day - timedelta(days=1), premarket_metadata_path(context))


# ---------------------------------------------------------------- post-close


def day_bars(context: TradingDayContext, symbol: str) -> pd.DataFrame:
    start = datetime.combine(context.day, datetime.min.time(), tzinfo=IST)
    return bar_store(context).read(symbol, Timeframe.MIN5, start=start, end=start + timedelta(days=1))


BAR_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]


def session_bars_path(context: TradingDayContext) -> Path:
    """The day's daily bars as the live session built them from ticks (one row per symbol)."""
    return work_dir(context) / "sessions" / f"{context.day.isoformat()}-daily.parquet"


def save_session_bars(context: TradingDayContext, bars: dict[str, tuple[float, float, float, float, float]]) -> Path:
    """Write {symbol: (open, high, low, close, volume)} of the day (from the live session's ticks)."""
    path = session_bars_path(context)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        [(symbol, *ohlcv) for symbol, ohlcv in sorted(bars.items())],
        columns=["symbol", "open", "high", "low", "close", "volume"],
    )
    frame.to_parquet(path, index=False)
    return path


def _daily_bar_of(context: TradingDayContext, symbol: str, session_bars: pd.DataFrame) -> pd.DataFrame | None:
    """The day's bar of `symbol`: from its 5-minute bars in the store, else from the session's ticks."""
    day_start = pd.Timestamp(context.day, tz=IST)
    bars = day_bars(context, symbol)
    if len(bars):
        ohlcv = (bars["open"].iloc[0], bars["high"].max(), bars["low"].min(), bars["close"].iloc[-1],
                 bars["volume"].sum())
    else:
        row = session_bars[session_bars["symbol"] == symbol]
        if row.empty:
            return None
        ohlcv = tuple(row.iloc[0][["open", "high", "low", "close", "volume"]])
    frame = pd.DataFrame([(day_start, *ohlcv)], columns=BAR_COLUMNS)
    frame["volume"] = frame["volume"].astype("int64")
    return frame


def append_daily_bars(context: TradingDayContext) -> int:
    """Append the day's daily bar to the history of every universe symbol that lacks it: from the
    day's 5-minute bars in the store, else from the bars the live session built from ticks. History
    that already has the day is left alone (append-only). Returns the number of bars appended."""
    store = bar_store(context)
    path = session_bars_path(context)
    session_bars = pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=["symbol"])
    appended = 0
    for symbol in universe_symbols(context):
        if len(store.read(symbol, Timeframe.DAY, start=context.day, end=context.day + timedelta(days=1))):
            continue
        daily = _daily_bar_of(context, symbol, session_bars)
        if daily is None:
            continue
        store.write(symbol, Timeframe.DAY, daily, merge=True)
        appended += 1
    return appended


def save_day_metadata(context: TradingDayContext) -> str:
    """Indicator state as of this day's close, ready for the next pre-open."""
    path = metadata_dir(context) / f"close-{context.day.isoformat()}.parquet"
    return _save_metadata(context, universe_symbols(context), context.day, path)


def refresh_market_caps_from_close(context: TradingDayContext) -> int:
    """Market caps from today's closes into the database; returns how many were refreshed."""
    table = load_instrument_table(Path(context.settings.data_dir))
    closes = _last_closes(context, list(table["symbol"]), before=False)
    with session_scope(context.db) as session:
        rows = {r.symbol: r for r in session.exec(select(InstrumentRow)).all()}
        refreshed = 0
        for symbol, close in closes.items():
            row = rows.get(symbol)
            if row is not None and row.shares_outstanding:
                row.market_cap_cr = row.shares_outstanding * close / 1e7
                row.updated_on = context.day
                session.add(row)
                refreshed += 1
    return refreshed


def daily_report(context: TradingDayContext) -> dict[str, Any]:
    """`{"setups", "orders", "trades", "positions", "risk"}` of the day from the database."""
    return report_of_day(context.db, context.day, context.settings)


def shutdown(context: TradingDayContext) -> None:
    """Release the database connections of the day."""
    context.db.dispose()
