"""Pre-open and post-close work of a trading day, one function per step (each a Prefect task).

Pre-open: NSE holidays from the broker and the calendar's look-ahead check, broker token check,
instrument master refresh, market caps + universe filter, metadata.
Post-close: the day's daily bars settled (the official daily candle, missed days filled, a data-quality
report: `engine.data.daybars`), metadata saved, market caps refreshed from the close, the daily report,
shutdown. Every step is idempotent, so a re-run is harmless."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from engine.calendar import CalendarError, files_dir, holidays_cache_file, load_calendar, update_holidays_cache
from engine.data.daybars import DayBarSource, DayCandle, DayQuality, UpstoxDayBars, built_candle, settle_day_bars
from engine.data.instruments import (
    filter_universe,
    refresh_market_caps,
    store_market_caps,
    sync_instruments,
    to_instrument,
    universe_in_db,
)
from engine.data.master import (
    SHIPPED_SOURCE,
    BrokerInstrument,
    carry_changes,
    kite_instruments,
    load_master_as_of,
    merge_broker_masters,
    refresh_table,
    save_master,
    upstox_instruments,
)
from engine.indicators.metadata import build_metadata as build_indicator_metadata
from engine.indicators.metadata import save_metadata
from engine.indicators.multitimeframe import IndicatorConfig
from engine.models import IST, Instrument, Timeframe
from engine.report import daily_report as report_of_day
from engine.session.stages import TradingDayContext
from engine.storage import BarStore
from engine.storage.positions import position_store
from engine.strategy import load_strategy
from engine.trader import required_indicator_config

log = logging.getLogger(__name__)


class TokenMissing(RuntimeError):
    """A credential the day needs is not configured."""


def bar_store(context: TradingDayContext) -> BarStore:
    return BarStore(Path(context.settings.data_dir) / "bars")


def work_dir(context: TradingDayContext) -> Path:
    """Where the day's files live (metadata, charts, fetched holidays): next to the database for
    SQLite, else var/."""
    return files_dir(context.settings.database_url)


def metadata_dir(context: TradingDayContext) -> Path:
    return work_dir(context) / "metadata"


# ---------------------------------------------------------------- pre-open


CALENDAR_LOOKAHEAD_DAYS = 30
# The stable start of the WARNING logged (and returned) when fewer days ahead are known: alerts match it.
CALENDAR_WARNING = "NSE calendar coverage low"


def _upstox_for_holidays(context: TradingDayContext) -> str | None:
    """Why the day fetches no holidays from Upstox (None: it does). Only a day that uses Upstox (its
    broker or its live feed) asks it: a replayed day must not reach a real API."""
    settings = context.settings
    if settings.broker == "upstox" or settings.feed.source == "upstox":
        return None
    return f"no Upstox connection (broker {settings.broker}, feed {settings.feed.source})"


def _fetch_holidays(context: TradingDayContext, cache: Path) -> int:
    """This year's holidays from Upstox into `cache`, then each day of the look-ahead that no source
    knows yet, asked one by one (the exchange may publish next year's list before Upstox's year list
    shows it). Returns the number of entries fetched."""
    from engine.brokers.upstox.config import UpstoxConfig
    from engine.brokers.upstox.holidays import UpstoxHolidays, nse_calendar_data
    from engine.settings import load_credentials

    with UpstoxHolidays(UpstoxConfig.from_credentials(load_credentials())) as upstox:
        year_list = upstox.year_list()
        update_holidays_cache(cache, nse_calendar_data(year_list), source="upstox", fetched_on=context.day)
        calendar = load_calendar(context.settings.calendar_file, cache)
        ahead = [context.day + timedelta(days=n) for n in range(1, CALENDAR_LOOKAHEAD_DAYS + 1)]
        day_entries = [entry for day in ahead if calendar.is_provisional(day) for entry in upstox.on(day)]
    if day_entries:
        update_holidays_cache(cache, nse_calendar_data([], day_entries), source="upstox", fetched_on=context.day)
    return len(year_list) + len(day_entries)


def refresh_calendar(context: TradingDayContext) -> dict[str, Any]:
    """Fetch NSE holidays from Upstox into the cache beside the database (read by every later
    `open_trading_day`), then check that the next CALENDAR_LOOKAHEAD_DAYS days are known (not
    provisional). Never raises: a failed fetch is reported, and only warned about (with the
    CALENDAR_WARNING prefix) when the known calendar no longer covers the look-ahead.

    Returns {"fetched" (entries, None when not fetched), "not_refreshed" (why, or None),
    "known_days_ahead", "provisional_from" (ISO date or None), "warning" (or None)}."""
    cache = holidays_cache_file(context.settings.database_url)
    fetched: int | None = None
    not_refreshed = _upstox_for_holidays(context)
    if not_refreshed is None:
        try:
            fetched = _fetch_holidays(context, cache)
        except Exception as exc:  # network, token, a bad answer, a full disk: never a reason to fail the day
            not_refreshed = f"fetching holidays from Upstox failed: {type(exc).__name__}: {exc}"
    try:
        calendar = load_calendar(context.settings.calendar_file, cache)
    except CalendarError as exc:  # the user's file went bad since the day opened
        calendar, not_refreshed = context.calendar, f"{not_refreshed}; {exc}" if not_refreshed else str(exc)
    start = context.day + timedelta(days=1)
    first_unknown = calendar.first_provisional_day(start, CALENDAR_LOOKAHEAD_DAYS)
    known = CALENDAR_LOOKAHEAD_DAYS if first_unknown is None else (first_unknown - start).days
    warning = None
    if first_unknown is not None:
        remedy = (
            f"not refreshed: {not_refreshed}. Add the exchange's holidays to your calendar_file "
            "(AUTOTRADER_CALENDAR_FILE), or let pre-open fetch them (AUTOTRADER_FEED__SOURCE=upstox)"
            if not_refreshed
            else "Upstox lists none further yet. Add the exchange's holidays to your calendar_file "
            "(AUTOTRADER_CALENDAR_FILE) once NSE publishes them"
        )
        warning = (
            f"{CALENDAR_WARNING}: only {known} of the {CALENDAR_LOOKAHEAD_DAYS} days after {context.day} are known; "
            f"from {first_unknown} the calendar is provisional (weekdays trade except the fixed national holidays); "
            f"{remedy}."
        )
        log.warning(warning)
    elif not_refreshed:
        log.info("holidays not refreshed (%s); the calendar still knows the next %d days", not_refreshed, known)
    return {"fetched": fetched, "not_refreshed": not_refreshed, "known_days_ahead": known,
            "provisional_from": first_unknown.isoformat() if first_unknown else None, "warning": warning}


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


async def read_broker_funds(context: TradingDayContext) -> dict[str, Any]:
    """The broker's cash at pre-open and the capital the risk engine may use from it (the smaller of
    `capital` and the cash, `engine.risk.funds.usable_capital`). A read that fails for a temporary
    reason is reported (cash None: the settings' capital stands), never raised; a rejected token is."""
    from engine.brokers.base import TemporaryBrokerError
    from engine.brokers.factory import make_broker
    from engine.clock import LiveClock
    from engine.risk.funds import usable_capital
    from engine.settings import load_credentials

    broker = make_broker(context.settings, load_credentials(), clock=LiveClock(), db=context.db)
    cash: float | None = None
    problem = ""
    try:
        await broker.connect()
        cash = await broker.funds()
    except TemporaryBrokerError as error:
        problem = f"; funds not read ({error})"
    finally:
        await broker.close()
    usable = usable_capital(context.settings.capital, cash)
    log.info("broker %s: %s%s", broker.name, usable.reason, problem)
    return {"broker": broker.name, "cash": cash, "settings_capital": context.settings.capital,
            "usable_capital": usable.amount, "limited_by": usable.limited_by, "reason": usable.reason + problem}


def instrument_table(context: TradingDayContext) -> pd.DataFrame:
    """The instrument table the day trades with: the master its pre-open refreshed (the newest on or
    before the day), else the shipped `instruments.parquet`."""
    return load_master_as_of(Path(context.settings.data_dir), work_dir(context), context.day)


def day_instruments(context: TradingDayContext) -> list[Instrument]:
    return [to_instrument(row) for _, row in instrument_table(context).iterrows()]


def _is_live(context: TradingDayContext) -> bool:
    """Whether the day trades the live market (the Upstox feed); a replayed day reads no network, even
    with a real broker's adapter (which a replay allows only on loopback)."""
    return context.settings.feed.source == "upstox"


def _read_broker_master(context: TradingDayContext) -> tuple[list[BrokerInstrument] | None, dict[str, str]]:
    """The broker's NSE equities (Upstox's published master and Kite's, merged), or None when none
    could be read, and per source what was read or why not. Never raises: a failed download falls
    back to the band rule."""
    from engine.brokers.upstox.instruments import fetch_upstox_master
    from engine.brokers.zerodha.config import ZerodhaConfig
    from engine.brokers.zerodha.instruments import fetch_kite_instruments
    from engine.secrets import redact
    from engine.settings import load_credentials

    settings = context.settings
    if not _is_live(context):
        return None, {"broker": f"not read: replayed day (broker {settings.broker}, feed {settings.feed.source}), "
                                "band rule at its prices"}
    timeout = settings.instruments.fetch_timeout_seconds
    credentials = load_credentials()
    sources: dict[str, str] = {}
    read: dict[str, list[BrokerInstrument]] = {}

    def attempt(name: str, fetch: Callable[[], list[BrokerInstrument]]) -> None:
        try:
            rows = fetch()
        except Exception as exc:  # network, token, a malformed file: the band rule still gives the ticks
            sources[name] = redact(f"failed: {type(exc).__name__}: {exc}")
            return
        if rows:
            read[name], sources[name] = rows, f"{len(rows)} equities"
        else:
            sources[name] = "failed: no NSE equity in the master"

    url = settings.instruments.upstox_master_url
    if url:
        attempt("upstox", lambda: upstox_instruments(fetch_upstox_master(url, timeout=timeout)))
    else:
        sources["upstox"] = "not read: instruments.upstox_master_url is empty"
    if credentials.kite_api_key and credentials.kite_access_token:
        config = ZerodhaConfig.from_credentials  # inside attempt: a bad KITE_ROOT_URL is reported, not raised
        attempt("kite", lambda: kite_instruments(fetch_kite_instruments(config(credentials, timeout=timeout))))
    else:
        sources["kite"] = "not read: KITE_API_KEY / KITE_ACCESS_TOKEN not set"
    if not read:
        return None, sources
    return merge_broker_masters(read.get("upstox", []), read.get("kite", [])), sources


def refresh_instrument_master(context: TradingDayContext) -> dict[str, Any]:
    """The day's instrument master (engine/data/master.py): the broker's masters on a live day, the
    previous master on a replayed one, ticks cross-checked with the NSE band rule at the last close;
    renames and ISIN changes carried to open positions and the bar store; saved for the day and
    upserted into the database. Returns the refresh result (sources, renames, isin_changes,
    tick_changes, tick_disagreements, not_in_master, carried, warnings)."""
    previous = instrument_table(context)
    broker, sources = _read_broker_master(context)
    closes = _last_closes(context, list(previous["symbol"]), before=True)
    refresh = refresh_table(previous, broker, closes, context.day, source=SHIPPED_SOURCE)
    refresh.sources = sources
    if broker is None and _is_live(context):
        refresh.warnings.insert(0, "no broker master could be read (" + "; ".join(
            f"{name}: {why}" for name, why in sources.items()) + "): ticks from the NSE band rule at the last close")
    refresh.carried = carry_changes(context.db, bar_store(context).root, refresh)
    save_master(work_dir(context), refresh)
    sync_instruments(context.db, refresh.table, updated_on=context.day)
    for change in refresh.renames:
        log.warning("instrument renamed: %s -> %s (ISIN %s)", change["old_symbol"], change["new_symbol"],
                    change["isin"])
    for change in refresh.isin_changes:
        log.warning("ISIN changed: %s %s -> %s", change["symbol"], change["old_isin"], change["new_isin"])
    for warning in refresh.warnings:
        log.warning(warning)
    return refresh.result()


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
    table = instrument_table(context)
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
    return universe_in_db(context.db)


def held_positions(context: TradingDayContext) -> dict[str, str]:
    """{instrument_key: symbol} of every OPEN position in the database, in today's universe or not."""
    return {position.instrument_key: position.symbol for position in position_store(context.db).open_positions()}


def with_held_symbols(universe: list[str], held: Iterable[str]) -> list[str]:
    """`universe`, then the `held` symbols (of open positions) outside it: every position is watched,
    marked and protected every day, so its indicators and daily bars are kept too."""
    return universe + sorted(set(held) - set(universe))


def session_symbols(context: TradingDayContext) -> list[str]:
    """What the day's session streams: the universe (largest market cap first) and the held symbols."""
    return with_held_symbols(universe_symbols(context) or refresh_universe(context), held_positions(context).values())


def _save_metadata(context: TradingDayContext, symbols: list[str], asof: date, path: Path) -> str:
    keys = dict(zip(*instrument_table(context)[["symbol", "instrument_key"]].T.values,
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
    """Indicator state of the universe and of the open positions as of the previous close, saved for
    the live session."""
    symbols = session_symbols(context)
    return _save_metadata(context, symbols, context.day - timedelta(days=1), premarket_metadata_path(context))


# ---------------------------------------------------------------- post-close


def day_bars(context: TradingDayContext, symbol: str) -> pd.DataFrame:
    start = datetime.combine(context.day, datetime.min.time(), tzinfo=IST)
    return bar_store(context).read(symbol, Timeframe.MIN5, start=start, end=start + timedelta(days=1))


def session_bars_path(context: TradingDayContext) -> Path:
    """The day's daily bars as the live session built them from ticks (one row per symbol)."""
    return work_dir(context) / "sessions" / f"{context.day.isoformat()}-daily.parquet"


def save_session_bars(context: TradingDayContext, bars: dict[str, tuple[float, float, float, float, float]]) -> Path:
    """Write {symbol: (open, high, low, close, volume)} of the day (from the live session's ticks). An `ltpc` feed
    carries no volume: its bars are saved volume-less (NaN), never with volume 0."""
    path = session_bars_path(context)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        [(symbol, *ohlcv) for symbol, ohlcv in sorted(bars.items())],
        columns=["symbol", "open", "high", "low", "close", "volume"],
    )
    if context.settings.feed.mode == "ltpc":
        frame["volume"] = float("nan")
    frame.to_parquet(path, index=False)
    return path


def _built_bar(context: TradingDayContext, symbol: str, session_bars: pd.DataFrame) -> DayCandle | None:
    """The day's bar of `symbol` as the day built it: from its 5-minute bars in the store, else from the session's
    ticks (volume-less from an ltpc feed)."""
    bars = day_bars(context, symbol)
    if len(bars):
        return built_candle(context.day, (bars["open"].iloc[0], bars["high"].max(), bars["low"].min(),
                                          bars["close"].iloc[-1], bars["volume"].sum()))
    row = session_bars[session_bars["symbol"] == symbol]
    if row.empty:
        return None
    return built_candle(context.day, tuple(row.iloc[0][["open", "high", "low", "close", "volume"]]))


def day_bars_report_path(context: TradingDayContext) -> Path:
    """The day's data-quality report of daily bars (JSON), written by `append_daily_bars`."""
    return work_dir(context) / "reports" / context.day.isoformat() / "daybars.json"


def _settle_with(context: TradingDayContext, source: DayBarSource | None) -> DayQuality:
    path = session_bars_path(context)
    session_bars = pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=["symbol"])
    by_symbol = {i.symbol: i for i in day_instruments(context)}
    held = held_positions(context)
    keys = {symbol: key for key, symbol in held.items()}
    instruments = [by_symbol.get(symbol) or Instrument(keys[symbol], symbol, "")
                   for symbol in with_held_symbols(universe_symbols(context), held.values())]
    built = {i.symbol: bar for i in instruments if (bar := _built_bar(context, i.symbol, session_bars)) is not None}
    return settle_day_bars(bar_store(context), instruments, context.day, built, source,
                           context.calendar.trading_days)


def _settle_on_replay(context: TradingDayContext) -> DayQuality:
    """A replayed day's official candles come from the replay server's daily route (the shipped data), asked
    through the Upstox SDK like a live day's; the server runs on its own loop in a worker thread."""
    from engine.clock import SteppedClock
    from engine.feed.replay import ReplayServer

    assert context.session is not None
    after_close = SteppedClock(context.session.close + timedelta(minutes=15))

    async def settle() -> DayQuality:
        server = ReplayServer(data_dir=context.settings.data_dir, day=context.day,
                              instruments=instrument_table(context), clock=after_close, preload=False)
        await server.start()
        try:
            source = UpstoxDayBars(server.api_url, lambda: "replay-day-bars")
            source.name = "replay server (shipped data)"
            return await asyncio.to_thread(_settle_with, context, source)
        finally:
            await server.stop()

    with ThreadPoolExecutor(max_workers=1) as pool:  # a loop of its own, whatever the caller runs in
        return pool.submit(asyncio.run, settle()).result()


def append_daily_bars(context: TradingDayContext) -> int:
    """Settle the day's daily bars of every universe or held symbol (`engine.data.daybars`): the official
    daily candle replaces the bar built from the day's 5-minute bars or the live session's ticks, days missed
    since the last stored bar are filled, and a volume-less (ltpc) bar is never stored with volume 0. Official
    candles come from Upstox on a live day, from the replay server's daily route on a replayed one. Writes the
    data-quality report to `day_bars_report_path` and returns the number of bars written."""
    if _is_live(context):
        from engine.brokers.login import TokenProvider
        from engine.settings import load_credentials

        source = UpstoxDayBars(load_credentials().upstox_api_url, TokenProvider("UPSTOX_ACCESS_TOKEN"))
        quality = _settle_with(context, source)
    else:
        quality = _settle_on_replay(context)
    for error in quality.errors:
        log.warning("daily bars of %s: %s", context.day, error)
    path = day_bars_report_path(context)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(quality.as_dict(), indent=1))
    return quality.written


def day_bars_quality(context: TradingDayContext) -> DayQuality:
    """The day's data-quality report of daily bars, as `append_daily_bars` saved it."""
    return DayQuality.from_dict(json.loads(day_bars_report_path(context).read_text()))


def save_day_metadata(context: TradingDayContext) -> str:
    """Indicator state as of this day's close, ready for the next pre-open."""
    path = metadata_dir(context) / f"close-{context.day.isoformat()}.parquet"
    symbols = with_held_symbols(universe_symbols(context), held_positions(context).values())
    return _save_metadata(context, symbols, context.day, path)


def refresh_market_caps_from_close(context: TradingDayContext) -> int:
    """Market caps from today's closes into the database; returns how many were refreshed."""
    table = instrument_table(context)
    closes = _last_closes(context, list(table["symbol"]), before=False)
    return store_market_caps(context.db, closes, context.day)


def daily_report(context: TradingDayContext) -> dict[str, Any]:
    """`{"setups", "orders", "trades", "positions", "risk"}` of the day from the database."""
    return report_of_day(context.db, context.day, context.settings)


def shutdown(context: TradingDayContext) -> None:
    """Release the database connections of the day."""
    context.db.dispose()
