"""True day bars: after the close the broker's official daily candle replaces the day's bar built from ticks, days
missed since the last stored bar are filled, and each day gets a data-quality report (gaps, replaced bars,
volume-less bars).

Official candles come from a `DayBarSource`:

* `UpstoxDayBars`: Upstox's Historical Candle Data V3 through the SDK's `HistoryV3Api.get_historical_candle_data1`
  (`GET /v3/historical-candle/{instrument_key}/days/1/{to_date}/{from_date}`, answer
  `{"status": "success", "data": {"candles": [[ts, open, high, low, close, volume, oi], ...]}}`, newest first).
  A replayed day asks the replay server's daily route (`engine.feed.replay_candles`) through it.
* `KiteDayBars`: Kite Connect's `historical_data(instrument_token, from, to, "day")`
  (`GET /instruments/historical/{instrument_token}/day?from=&to=`, the same row shape without `oi`).

A bar built from an `ltpc` feed has no volume (ltpc frames carry none): it is never stored with volume 0. It is
reported volume-less and the official candle fills it; without one the bar is held back (a gap, filled as a missed
day by the next post-close)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from engine.feed.backfill import Candle
from engine.models import IST, Instrument, Tick, Timeframe
from engine.secrets import redact, register_secret
from engine.storage.bars import BAR_COLUMNS, BarStore

if TYPE_CHECKING:
    from engine.brokers.zerodha.config import ZerodhaConfig

log = logging.getLogger(__name__)

PRICE_FIELDS = ("open", "high", "low", "close")
PRICE_TOLERANCE = 1e-6  # rupees: a difference below this is float noise, not a replaced value


@dataclass(frozen=True, slots=True)
class DayCandle:
    """One day's bar. `volume` None: not known (built from an ltpc feed, which carries no volume)."""

    day: date
    open: float
    high: float
    low: float
    close: float
    volume: int | None

    def row(self) -> tuple[pd.Timestamp, float, float, float, float, int]:
        """The bar store's row (midnight IST); only for a candle with a known volume."""
        if self.volume is None:
            raise ValueError(f"the bar of {self.day} has no volume: it is not stored")
        return (pd.Timestamp(datetime.combine(self.day, time(), IST)), self.open, self.high, self.low, self.close,
                self.volume)


class DayBarError(RuntimeError):
    """Official daily candles could not be read (the message is redacted)."""


class DayBarTokenRejectedError(DayBarError):
    """The source refused the token: no other instrument is asked with it."""


class DayBarSource(Protocol):
    """Where official daily candles come from. `fetch` returns the candles of `start <= day <= end`, oldest first,
    or raises `DayBarError`."""

    name: str

    def fetch(self, instrument: Instrument, start: date, end: date) -> list[DayCandle]: ...


def parse_day_candles(rows: Sequence[Sequence[Any]]) -> list[DayCandle]:
    """Broker candle rows `[ts, open, high, low, close, volume(, oi)]` (ts an ISO 8601 string such as
    "2024-06-04T00:00:00+05:30" or Kite's "+0530", or a datetime), any order → candles by IST date, oldest first.
    Malformed or inconsistent rows are skipped and logged."""
    candles: dict[date, DayCandle] = {}
    for row in rows:
        try:
            stamp = row[0] if isinstance(row[0], datetime) else datetime.fromisoformat(str(row[0]))
            day = (stamp.astimezone(IST) if stamp.tzinfo else stamp).date()
            open_, high, low, close = (float(value) for value in row[1:5])
            volume = int(row[5])
        except (ValueError, TypeError, IndexError) as exc:
            log.warning("skipping malformed daily candle %r (%s)", row, exc)
            continue
        if not (0 < low <= min(open_, close) and high >= max(open_, close) and volume >= 0):
            log.warning("skipping inconsistent daily candle %r", row)
            continue
        candles[day] = DayCandle(day, open_, high, low, close, volume)
    return [candles[day] for day in sorted(candles)]


class UpstoxDayBars:
    """Upstox's daily candles through upstox-python-sdk (`HistoryV3Api.get_historical_candle_data1`), blocking.
    A fresh `Configuration` with an explicit host per source (the SDK copies a shared default into every instance)."""

    name = "upstox"

    def __init__(self, api_url: str, token_provider: Callable[[], str], *, timeout_seconds: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.token_provider = token_provider
        self.timeout_seconds = timeout_seconds
        self._client: tuple[str, Any] | None = None  # (token, HistoryV3Api): one connection pool per token

    def _api(self) -> Any:
        import upstox_client

        token = self.token_provider()
        if self._client is not None and self._client[0] == token:
            return self._client[1]
        register_secret(token)
        configuration = upstox_client.Configuration()
        configuration.host = self.api_url
        configuration.access_token = token
        # The SDK declares no auth setting for the candle APIs: the bearer header is added explicitly.
        api_client = upstox_client.ApiClient(configuration, header_name="Authorization", header_value=f"Bearer {token}")
        self._client = (token, upstox_client.HistoryV3Api(api_client))
        return self._client[1]

    def fetch(self, instrument: Instrument, start: date, end: date) -> list[DayCandle]:
        from upstox_client.rest import ApiException

        try:
            response = self._api().get_historical_candle_data1(
                instrument.instrument_key, "days", 1, end.isoformat(), start.isoformat(),
                _request_timeout=self.timeout_seconds)
        except ApiException as exc:
            error = DayBarTokenRejectedError if exc.status in (401, 403) else DayBarError
            raise error(f"Upstox daily candles of {instrument.symbol}: HTTP {exc.status} {exc.reason}") from None
        except Exception as exc:  # urllib3 network errors, the SDK's ValueErrors on odd payloads
            raise DayBarError(redact(f"Upstox daily candles of {instrument.symbol}: {type(exc).__name__}: {exc}")) \
                from None
        rows = response.data.candles if response is not None and response.data is not None else None
        return [c for c in parse_day_candles(rows or []) if start <= c.day <= end]


class KiteDayBars:
    """Kite Connect's daily candles (`historical_data(..., "day")`) through the adapter's `KiteClient`, blocking."""

    name = "kite"

    def __init__(self, config: ZerodhaConfig) -> None:
        self.config = config

    def fetch(self, instrument: Instrument, start: date, end: date) -> list[DayCandle]:
        from engine.brokers.base import TokenExpired
        from engine.brokers.zerodha.client import KiteClient

        if instrument.kite_token is None:
            raise DayBarError(f"Kite daily candles of {instrument.symbol}: no Kite instrument_token in the master")
        client = KiteClient(self.config)
        try:
            records = client.historical_data(instrument.kite_token, f"{start.isoformat()} 00:00:00",
                                             f"{end.isoformat()} 23:59:59", "day")
        except Exception as exc:  # KiteClient's errors are already redacted
            error = DayBarTokenRejectedError if isinstance(exc, TokenExpired) else DayBarError
            raise error(f"Kite daily candles of {instrument.symbol}: {type(exc).__name__}: {exc}") from None
        finally:
            client.close()
        rows = [(r["date"], r["open"], r["high"], r["low"], r["close"], r["volume"]) for r in records]
        return [c for c in parse_day_candles(rows) if start <= c.day <= end]


def with_exchange_ohlc(open_: float, high: float, low: float, tick: Tick | None) -> tuple[float, float, float]:
    """The day's open/high/low with the exchange's own (a full-mode tick's `day_open`/`day_high`/`day_low`, the
    feed's "1d" OHLC): a session started late or retried missed the real open and maybe the extremes."""
    if tick is None or tick.day_open <= 0:
        return open_, high, low
    day_high = max(high, tick.day_high) if tick.day_high > 0 else high
    day_low = min(low, tick.day_low) if tick.day_low > 0 else low
    return tick.day_open, day_high, day_low


@dataclass
class DayQuality:
    """The data-quality report of one day's settlement of daily bars."""

    day: date
    source: str
    symbols: int = 0
    written: int = 0  # bars written (or rewritten with changed values)
    replaced: list[dict[str, Any]] = field(default_factory=list)  # {"symbol", "field", "was", "now"}
    filled: list[dict[str, Any]] = field(default_factory=list)  # {"symbol", "day"}: a missed day filled
    gaps: list[dict[str, Any]] = field(default_factory=list)  # {"symbol", "day", "reason"}: still no bar
    volume_less: list[dict[str, Any]] = field(default_factory=list)  # {"symbol", "day", "resolution"}
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "source": self.source, "symbols": self.symbols, "written": self.written,
                "replaced_bars": len({r["symbol"] for r in self.replaced}), "replaced": self.replaced,
                "filled": self.filled, "gaps": self.gaps, "volume_less": self.volume_less, "errors": self.errors}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> DayQuality:
        """The report `as_dict` gave (read back from its JSON)."""
        return cls(date.fromisoformat(saved["day"]), saved["source"], saved["symbols"], saved["written"],
                   list(saved["replaced"]), list(saved["filled"]), list(saved["gaps"]), list(saved["volume_less"]),
                   list(saved["errors"]))

    def rows(self) -> list[dict[str, Any]]:
        """One table row per finding: {"symbol", "day", "issue", "detail"}."""
        rows = [{"symbol": r["symbol"], "day": self.day.isoformat(), "issue": "replaced",
                 "detail": f"{r['field']}: {r['was']} -> {r['now']}"} for r in self.replaced]
        rows += [{"symbol": r["symbol"], "day": r["day"], "issue": "filled", "detail": f"official ({self.source})"}
                 for r in self.filled]
        rows += [{"symbol": r["symbol"], "day": r["day"], "issue": "gap", "detail": r["reason"]} for r in self.gaps]
        rows += [{"symbol": r["symbol"], "day": r["day"], "issue": "volume-less", "detail": r["resolution"]}
                 for r in self.volume_less]
        return rows

    def markdown(self) -> str:
        lines = [
            f"# Daily bars — data quality {self.day.isoformat()}",
            "",
            f"- source of official candles: **{self.source}**; symbols: **{self.symbols}**",
            f"- replaced bars: **{len({r['symbol'] for r in self.replaced})}** ({len(self.replaced)} fields), "
            f"missed days filled: **{len(self.filled)}**, gaps: **{len(self.gaps)}**, "
            f"volume-less bars: **{len(self.volume_less)}**",
        ]
        lines += [f"- error: {error}" for error in self.errors]
        rows = self.rows()
        if rows:
            lines += ["", "| symbol | day | issue | detail |", "|---|---|---|---|"]
            lines += [f"| {r['symbol']} | {r['day']} | {r['issue']} | {r['detail']} |" for r in rows]
        return "\n".join(lines)


def _stored_days(frame: pd.DataFrame) -> dict[date, DayCandle]:
    return {
        ts.date(): DayCandle(ts.date(), float(o), float(h), float(lo), float(c), int(v))
        for ts, o, h, lo, c, v in zip(frame["ts"], frame["open"], frame["high"], frame["low"], frame["close"],
                                      frame["volume"], strict=True)
    }


def _replaced_fields(symbol: str, was: DayCandle, now: DayCandle) -> list[dict[str, Any]]:
    changes = [{"symbol": symbol, "field": name, "was": getattr(was, name), "now": getattr(now, name)}
               for name in PRICE_FIELDS if abs(getattr(was, name) - getattr(now, name)) > PRICE_TOLERANCE]
    if was.volume != now.volume:
        changes.append({"symbol": symbol, "field": "volume", "was": was.volume, "now": now.volume})
    return changes


def settle_day_bars(
    store: BarStore,
    instruments: Sequence[Instrument],
    day: date,
    built: Mapping[str, DayCandle],
    source: DayBarSource | None,
    trading_days: Callable[[date, date], list[date]],
) -> DayQuality:
    """Settle the daily history of `instruments` for `day` and return its quality report.

    `built[symbol]` is the day's bar as the session built it (volume None when the feed gave none). For each
    symbol: the official candles from the day after its last stored bar before `day` through `day` are fetched;
    missed trading days are filled from them (else reported as gaps); the day's bar becomes the official candle
    (each field that differs from the built, else the stored, bar is reported), else the built bar when it has a
    volume and the day has none stored yet. Idempotent: a re-run finds the bars stored and writes none."""
    quality = DayQuality(day, source.name if source is not None else "none", len(instruments))
    refused = "no official candle source"
    for instrument in instruments:
        symbol = instrument.symbol
        stored = _stored_days(store.read(symbol, Timeframe.DAY))
        earlier = [d for d in stored if d < day]
        since = max(earlier) + timedelta(days=1) if earlier else day
        official: dict[date, DayCandle] = {}
        failure = "no official candle"
        if source is not None:
            try:
                official = {c.day: c for c in source.fetch(instrument, since, day)}
            except DayBarError as exc:
                failure = f"official candles not read: {exc}"
                quality.errors.append(str(exc))
                if isinstance(exc, DayBarTokenRejectedError):
                    source, refused = None, failure  # one refusal, not one request per instrument
        else:
            failure = refused
        writes: list[DayCandle] = []
        for missed in trading_days(since, day - timedelta(days=1)):
            if missed in stored:
                continue
            if missed in official:
                writes.append(official[missed])
                quality.filled.append({"symbol": symbol, "day": missed.isoformat()})
            else:
                quality.gaps.append({"symbol": symbol, "day": missed.isoformat(), "reason": failure})
        settled = _settle_the_day(quality, symbol, day, built.get(symbol), stored.get(day), official.get(day), failure)
        writes += [bar for bar in settled if bar != stored.get(day)]  # an unchanged bar is not rewritten
        if writes:
            quality.written += len(writes)
            frame = pd.DataFrame([c.row() for c in writes], columns=BAR_COLUMNS)
            store.write(symbol, Timeframe.DAY, frame, merge=True)
    return quality


def _settle_the_day(quality: DayQuality, symbol: str, day: date, built: DayCandle | None, stored: DayCandle | None,
                    official: DayCandle | None, failure: str) -> list[DayCandle]:
    """The bar to write for `day` (if any), noting replaced fields, volume-less bars and gaps in `quality`."""
    iso = day.isoformat()
    volume_less = built is not None and built.volume is None
    if official is not None:
        basis = built or stored
        if basis is not None:
            quality.replaced += _replaced_fields(symbol, basis, official)
        if volume_less:
            quality.volume_less.append({"symbol": symbol, "day": iso, "resolution": "volume from the official candle"})
        if official.volume == 0:
            quality.volume_less.append({"symbol": symbol, "day": iso, "resolution": "the official candle has volume 0"})
        return [official]
    if volume_less:
        resolution = "stored bar kept" if stored is not None else "held back (no official candle to give its volume)"
        quality.volume_less.append({"symbol": symbol, "day": iso, "resolution": resolution})
    if stored is not None:
        return []  # without an official candle the stored bar stands
    if built is None or volume_less:
        quality.gaps.append({"symbol": symbol, "day": iso, "reason": failure if built is None else
                             "volume-less bar held back"})
        return []
    return [built]


def built_candle(day: date, ohlcv: Sequence[float]) -> DayCandle:
    """A day's (open, high, low, close, volume) as the session built it; a NaN volume means none known."""
    open_, high, low, close, volume = (float(value) for value in ohlcv)
    return DayCandle(day, open_, high, low, close, None if math.isnan(volume) else int(volume))


class CandleBook:
    """Candles by instrument id (an Upstox instrument_key, a Kite instrument_token) that a loopback sandbox serves on
    its historical-candle routes: official daily candles (`put`) and intraday candles (`put_intraday`, Upstox's
    intraday route). Empty until a test fills it."""

    def __init__(self) -> None:
        self._daily: dict[str, dict[date, DayCandle]] = {}
        self._intraday: dict[tuple[str, int], dict[datetime, Candle]] = {}

    def put(self, instrument_id: str | int, candles: Sequence[DayCandle]) -> None:
        self._daily.setdefault(str(instrument_id), {}).update({c.day: c for c in candles})

    def put_intraday(self, candles: Sequence[Candle]) -> None:
        """Intraday candles, each filed under its instrument_key and interval."""
        for candle in candles:
            self._intraday.setdefault((candle.instrument_key, candle.interval_ms), {})[candle.start] = candle

    def knows(self, instrument_id: str | int) -> bool:
        return str(instrument_id) in self._daily or any(key == str(instrument_id) for key, _ in self._intraday)

    def between(self, instrument_id: str | int, start: date, end: date) -> list[DayCandle]:
        """The daily candles of `start <= day <= end`, oldest first."""
        book = self._daily.get(str(instrument_id), {})
        return [book[day] for day in sorted(book) if start <= day <= end]

    def intraday(self, instrument_key: str, interval_ms: int, now: datetime) -> list[Candle]:
        """The candles of `now`'s day with that interval complete at `now`, oldest first."""
        book = self._intraday.get((instrument_key, interval_ms), {})
        today, now_ms = now.astimezone(IST).date(), now.timestamp() * 1000
        return [book[start] for start in sorted(book)
                if start.astimezone(IST).date() == today and book[start].end_ms <= now_ms]
