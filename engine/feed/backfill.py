"""Backfill of the minutes a feed outage missed, from Upstox's Intraday Candle Data V3 API.

After a reconnect the client asks `GET /v3/historical-candle/intraday/{key}/minutes/1` (through the SDK's
`HistoryV3Api.get_intra_day_candle_data`, run in a worker thread so the event loop never blocks) for every
subscribed key, and turns each missed 1-minute candle into a few ticks. These ticks are DERIVED from bars, not
traded prints: they visit the candle's open, low/high and close (in the order the candle's direction implies),
never leave its real open/high/low/close, and are placed strictly inside the missed part of the minute, after
the last tick seen before the outage and before the first tick seen after it. So the engine's one tick path
rebuilds every bar it would have built from the live feed, and indicators do not drift. A minute seen in part keeps
only what was missed, as far as its path tells: the start of the path when it is what was seen in that minute
before the gap (else a first point at the price of the last tick seen), and the end of the path when it is what came
live in that minute after the gap.

Volume: only candles missed in full carry volume — their close tick has `ltq` = the candle's volume and moves
the cumulative `volume` on by it. Minutes seen in part carry none (their seen part is already counted).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from engine.feed.synth import MINUTE_MS, waypoints
from engine.models import IST, Tick
from engine.secrets import register_secret

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candle:
    """One intraday candle of an instrument; `start` is the candle's start (IST)."""

    instrument_key: str
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int
    interval_ms: int = MINUTE_MS

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.interval_ms


class CandleSource(Protocol):
    """Where backfill candles come from (the SDK-backed `UpstoxIntradayCandles`, or a stub in tests)."""

    async def fetch(self, instrument_keys: Sequence[str]) -> dict[str, list[Candle]]: ...


class BackfillError(RuntimeError):
    """The candle API could not be read (the gap stays open and is counted, the feed keeps running)."""


class BackfillTokenRejectedError(BackfillError):
    """The candle API refused the token (HTTP 401/403): no other key is asked with it."""


def parse_candles(instrument_key: str, rows: Sequence[Sequence[Any]], interval_ms: int = MINUTE_MS) -> list[Candle]:
    """Upstox candle rows `[ts_iso, open, high, low, close, volume, oi]` (any order) → candles, oldest first.

    Rows that are malformed or inconsistent (low above open/close, high below them) are skipped, logged."""
    candles: dict[datetime, Candle] = {}
    for row in rows:
        try:
            start = datetime.fromisoformat(str(row[0])).astimezone(IST)
            open_, high, low, close = (float(value) for value in row[1:5])
            volume = int(row[5])
        except (ValueError, TypeError, IndexError) as exc:
            log.warning("skipping malformed candle row for %s: %r (%s)", instrument_key, row, exc)
            continue
        if not (0 < low <= min(open_, close) and high >= max(open_, close) and volume >= 0):
            log.warning("skipping inconsistent candle for %s: %r", instrument_key, row)
            continue
        candles[start] = Candle(instrument_key, start, open_, high, low, close, volume, interval_ms)
    return [candles[start] for start in sorted(candles)]


def _price_path(candle: Candle, *, with_open: bool) -> list[float]:
    path = list(waypoints(candle.open, candle.high, candle.low, candle.close))
    if not with_open:
        path = path[1:]  # the candle's start was seen live: its open is not missed
    deduped = [path[0]]
    for price in path[1:]:
        if price != deduped[-1]:
            deduped.append(price)
    return deduped


def _unseen_part(candle: Candle, path: list[float], seen_prices: Sequence[float], template: Tick | None) -> list[float]:
    """The part of a minute's path after what was seen of it (`path`: the path without its open)."""
    seen = list(seen_prices)
    whole = _price_path(candle, with_open=True)
    if seen and whole[: len(seen)] == seen:
        return whole[len(seen):]
    if template is not None and path and path[0] == template.ltp:
        return path[1:]  # the minute's part before the gap ended at this price: seen already
    return path


def synthesize_ticks(
    candles: Sequence[Candle],
    *,
    after_ms: int,
    before_ms: int,
    template: Tick | None = None,
    seen_prices: Sequence[float] = (),
    live_prices: Sequence[float] = (),
) -> list[Tick]:
    """Ticks for the parts of `candles` strictly between `after_ms` and `before_ms` (exclusive), ltt increasing.

    `template` (the last tick seen before the gap) supplies close_prev, the day's open/high/low and the
    cumulative volume the synthesized ticks continue from. `seen_prices`: the prices (consecutive repeats left out)
    seen from the start of the minute of `after_ms` up to it; `live_prices`: those that came live from `before_ms`
    to the end of its minute."""
    ticks: list[Tick] = []
    volume = template.volume if template else 0
    day_open = template.day_open if template else 0.0
    day_high = template.day_high if template else 0.0
    day_low = template.day_low if template else 0.0
    close_prev = template.close_prev if template else 0.0
    for candle in candles:
        low_ms = max(candle.start_ms, after_ms + 1)
        high_ms = min(candle.end_ms, before_ms) - 1
        if low_ms > high_ms:
            continue
        whole = low_ms == candle.start_ms and high_ms == candle.end_ms - 1
        path = _price_path(candle, with_open=low_ms == candle.start_ms)
        if low_ms != candle.start_ms:
            path = _unseen_part(candle, path, seen_prices, template)
        cut = candle.start_ms <= before_ms < candle.end_ms
        if cut and live_prices and path[-len(live_prices):] == list(live_prices):
            path = path[: -len(live_prices)]  # the minute's part after the gap: it came live
        if not path:
            continue
        span = high_ms - low_ms
        if span + 1 < len(path):
            path = path[-(span + 1) :]  # too little room: keep the close-most points
        steps = max(len(path) - 1, 1)
        if day_open == 0.0:
            day_open = candle.open
        day_high = max(day_high, candle.high)
        day_low = candle.low if day_low == 0.0 else min(day_low, candle.low)
        for index, price in enumerate(path):
            last = index == len(path) - 1
            traded = candle.volume if (whole and last) else 0
            volume += traded
            ticks.append(
                Tick(
                    instrument_key=candle.instrument_key,
                    ltp=price,
                    ltt_ms=low_ms + (span * index) // steps,
                    ltq=traded,
                    volume=volume,
                    close_prev=close_prev,
                    day_open=day_open,
                    day_high=day_high,
                    day_low=day_low,
                )
            )
    return ticks


class UpstoxIntradayCandles:
    """Intraday candles through upstox-python-sdk's `HistoryV3Api`, one SDK call per key in a worker thread.

    A FRESH `upstox_client.Configuration` is built per fetch with `host` set explicitly: the SDK copies a shared
    default Configuration into every instance, so relying on its defaults would leak hosts between users."""

    def __init__(
        self,
        api_url: str,
        token_provider: Callable[[], str],
        *,
        interval_minutes: int = 1,
        max_concurrency: int = 4,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token_provider = token_provider
        self.interval_minutes = interval_minutes
        self.max_concurrency = max_concurrency
        self.timeout_seconds = timeout_seconds

    def _api(self, token: str) -> Any:
        import upstox_client

        register_secret(token)  # redacted from every text from the moment it is read
        configuration = upstox_client.Configuration()
        configuration.host = self.api_url
        configuration.access_token = token
        # get_intra_day_candle_data declares no auth setting, so the bearer header is added explicitly.
        api_client = upstox_client.ApiClient(configuration, header_name="Authorization", header_value=f"Bearer {token}")
        return upstox_client.HistoryV3Api(api_client)

    def _fetch_one(self, api: Any, instrument_key: str) -> list[Candle]:
        from upstox_client.rest import ApiException

        try:
            response = api.get_intra_day_candle_data(
                instrument_key, "minutes", self.interval_minutes, _request_timeout=self.timeout_seconds
            )
        except ApiException as exc:
            error = BackfillTokenRejectedError if exc.status in (401, 403) else BackfillError
            raise error(f"intraday candles for {instrument_key}: HTTP {exc.status} {exc.reason}") from exc
        except Exception as exc:  # urllib3 network errors and the SDK's ValueErrors on odd payloads
            raise BackfillError(f"intraday candles for {instrument_key}: {exc}") from exc
        rows = response.data.candles if response is not None and response.data is not None else None
        return parse_candles(instrument_key, rows or [], self.interval_minutes * MINUTE_MS)

    async def fetch(self, instrument_keys: Sequence[str]) -> dict[str, list[Candle]]:
        """Candles per key. Keys whose request failed are left out (and logged); never raises for one key.
        Once the token is refused, the keys not yet asked are left out too (no request per key with a dead token)."""
        api = await asyncio.to_thread(self._api, self.token_provider())
        semaphore = asyncio.Semaphore(self.max_concurrency)
        result: dict[str, list[Candle]] = {}
        token_rejected = False

        async def one(key: str) -> None:
            nonlocal token_rejected
            async with semaphore:
                if token_rejected:
                    return
                try:
                    result[key] = await asyncio.to_thread(self._fetch_one, api, key)
                except BackfillTokenRejectedError as exc:
                    token_rejected = True
                    log.error("backfill stopped, token refused: %s", exc)
                except BackfillError as exc:
                    log.warning("backfill skipped: %s", exc)

        await asyncio.gather(*(one(key) for key in instrument_keys))
        return result
