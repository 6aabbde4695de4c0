"""Streaming client for Upstox's Market Data Feed V3: owns the socket, reconnects, backfills.

Flow of one connection: authorize (`GET {api_url}/v3/feed/market-data-feed/authorize` with the CURRENT token from
the provider) → open the returned `authorized_redirect_uri` → send `sub` for every key in its mode (binary frames
holding JSON) → decode each binary frame with `engine.feed.decoder.decode_frame` → drop duplicate / out-of-order
ticks (by ltt per instrument) → `on_ticks`. A lost, stalled or refused connection is retried with exponential
backoff and full jitter (tenacity) for as long as `run` runs; after each reconnect the missed minutes are
backfilled from the intraday candle API (see `engine.feed.backfill`) before live ticks flow again. HTTP 401/403 on
authorize or on the WebSocket handshake means the token is no longer valid: the client enters `TOKEN_EXPIRED`,
reports it and stops (retrying would only hammer the broker with a dead token).

All times come from the injected `Clock` (watchdog, backoff sleeps, `until`), so a replayed day at speed 100
runs the same code 100 times faster. Use a LiveClock or SimulatedClock: a SteppedClock only moves when told. On a
driven clock (lockstep, `engine.clock.VirtualClock`) a reconnect and a backfill hold the clock (`Clock.hold`) until
they are done, and `backoff_seed` makes the backoff jitter repeatable: a replayed day with faults is deterministic.

Recovery is measured per fault kind (`FeedStats.recovery`): from the fault as the client sees it (a drop: the socket
closing; a stall: the last frame before the watchdog gave up; a malformed frame, a duplicate or an out-of-order tick:
its arrival) to the first tick handed to `on_ticks` again, on the clock and on the wall clock, with the minutes the
backfill filled in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import httpx
import websockets
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus, WebSocketException

from engine.clock import Clock, wall_seconds
from engine.feed.backfill import MINUTE_MS, CandleSource, UpstoxIntradayCandles, synthesize_ticks
from engine.feed.decoder import decode_frame
from engine.feed.limits import UPSTOX_V3_LIMITS, ModeLimit, SubscriptionLimitError, check_limits, check_mode
from engine.models import IST, MarketStatus, Tick
from engine.secrets import redact, register_secret

log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/v3/feed/market-data-feed/authorize"
MAX_FRAME_BYTES = 16 * 1024 * 1024
BACKFILL_GRACE_MS = 2_000  # after a minute ends, before its candle is asked for
CONNECTION_FAULTS = ("drop", "stall")  # the faults that take the feed down until a reconnect

TicksCallback = Callable[[list[Tick]], Awaitable[None]]
MarketStatusCallback = Callable[[dict[str, MarketStatus]], Awaitable[None]]
StateCallback = Callable[["FeedState"], Awaitable[None]]
RawFrameCallback = Callable[[bytes | str, datetime], Awaitable[None]]

__all__ = [
    "FeedState",
    "FeedStats",
    "MarketDataClient",
    "RecoveryFigures",
    "SessionCalendar",
    "SubscriptionLimitError",
    "TokenRejectedError",
]


class FeedState(enum.StrEnum):
    IDLE = "IDLE"  # created, `run` not called yet
    CONNECTING = "CONNECTING"  # authorizing / opening the socket (first time)
    STREAMING = "STREAMING"  # subscribed, ticks flowing
    BACKFILLING = "BACKFILLING"  # reconnected; fetching the missed minutes, live ticks held back meanwhile
    RECONNECTING = "RECONNECTING"  # connection lost; backing off before the next attempt
    TOKEN_EXPIRED = "TOKEN_EXPIRED"  # 401/403: retrying stopped, needs a new token (alert!)
    STOPPED = "STOPPED"  # `stop()` called or `until` reached


@dataclass(slots=True)
class RecoveryFigures:
    """Recoveries from one kind of fault: how many, and the time from the fault to the first tick handed on again
    (session clock and wall clock seconds, mean and max) with the minutes backfilled meanwhile."""

    count: int = 0
    session_seconds_total: float = 0.0
    session_seconds_max: float = 0.0
    wall_seconds_total: float = 0.0
    wall_seconds_max: float = 0.0
    minutes_backfilled: int = 0

    def add(self, session_seconds: float, wall: float, minutes_backfilled: int) -> None:
        self.count += 1
        self.session_seconds_total += session_seconds
        self.session_seconds_max = max(self.session_seconds_max, session_seconds)
        self.wall_seconds_total += wall
        self.wall_seconds_max = max(self.wall_seconds_max, wall)
        self.minutes_backfilled += minutes_backfilled

    def as_dict(self) -> dict[str, float | int]:
        count = max(self.count, 1)
        return {
            "count": self.count,
            "session_seconds_mean": round(self.session_seconds_total / count, 1),
            "session_seconds_max": round(self.session_seconds_max, 1),
            "wall_seconds_mean": round(self.wall_seconds_total / count, 4),
            "wall_seconds_max": round(self.wall_seconds_max, 4),
            "minutes_backfilled": self.minutes_backfilled,
        }


@dataclass(frozen=True, slots=True)
class _Outage:
    kind: str  # drop | stall | malformed | duplicate | out_of_order
    at: datetime  # on the clock
    wall: float  # `wall_seconds()`


@dataclass(slots=True)
class FeedStats:
    frames: int = 0  # decoded frames
    ticks: int = 0  # live ticks delivered to on_ticks
    duplicates_dropped: int = 0
    out_of_order_dropped: int = 0
    malformed_frames: int = 0
    reconnects: int = 0
    backfilled_bars: int = 0  # candles that produced backfill ticks
    backfilled_ticks: int = 0
    backfill_failures: int = 0
    watchdog_timeouts: int = 0
    callback_errors: int = 0
    state: FeedState = FeedState.IDLE
    last_frame_at: datetime | None = None
    last_error: str = ""
    recovery: dict[str, RecoveryFigures] = field(default_factory=dict)  # fault kind -> its recoveries
    # (from, to) on the clock of each time the feed was down (a drop or a stall) until ticks flowed again
    outages: list[tuple[datetime, datetime]] = field(default_factory=list)

    def down_at(self, moment: datetime) -> bool:
        """Was the feed down at `moment` (inside a recovered outage)?"""
        return any(start <= moment < end for start, end in self.outages)

    def recovery_figures(self) -> dict[str, dict[str, float | int]]:
        """`recovery` as plain numbers (JSON, artifacts), kinds in name order."""
        return {kind: self.recovery[kind].as_dict() for kind in sorted(self.recovery)}


class SessionCalendar(Protocol):
    """What the watchdog needs from a calendar (`engine.calendar.NseCalendar` fits)."""

    def session(self, day: date) -> Any: ...  # an object with `is_open_at(datetime) -> bool`, or None if closed


class TokenRejectedError(RuntimeError):
    """The broker refused the access token (HTTP 401/403)."""


class FeedProtocolError(RuntimeError):
    """The authorize endpoint answered something other than the documented envelope."""


class FeedStalledError(RuntimeError):
    """No frame for `watchdog_seconds` while the segment is open."""


class FeedConnectionLost(RuntimeError):
    """The socket closed while streaming (the server went away or cut the connection)."""


_TRANSIENT = (
    OSError, TimeoutError, WebSocketException, httpx.HTTPError, FeedProtocolError, FeedStalledError, FeedConnectionLost
)


def _subscription_request(method: str, keys: Sequence[str], mode: str | None = None) -> bytes:
    data: dict[str, Any] = {"instrumentKeys": list(keys)}
    if mode is not None:
        data["mode"] = mode
    return json.dumps({"guid": uuid.uuid4().hex, "method": method, "data": data}).encode()


class MarketDataClient:
    """Upstox Market Data Feed V3 over asyncio `websockets`, with reconnect, watchdog and backfill.

    `token_provider` is called on EVERY (re)connect, so a token refreshed mid-day is picked up.
    Callbacks are awaited in the receive loop; an exception inside one is logged and counted, never fatal."""

    def __init__(
        self,
        *,
        api_url: str,
        token_provider: Callable[[], str],
        clock: Clock,
        calendar: SessionCalendar | None = None,
        on_ticks: TicksCallback | None = None,
        on_market_status: MarketStatusCallback | None = None,
        on_state: StateCallback | None = None,
        on_raw_frame: RawFrameCallback | None = None,
        candle_source: CandleSource | None = None,
        backfill: bool = True,
        backfill_complete_minutes: bool = True,
        watchdog_seconds: float = 10.0,
        reconnect_base_seconds: float = 0.5,
        reconnect_max_seconds: float = 30.0,
        stable_after_seconds: float = 30.0,
        http_timeout_seconds: float = 10.0,
        backfill_timeout_seconds: float = 60.0,
        limits: Mapping[str, ModeLimit] = UPSTOX_V3_LIMITS,
        backoff_seed: int | None = None,
        backfill_from: datetime | None = None,
    ) -> None:
        if watchdog_seconds <= 0:
            raise ValueError(f"watchdog_seconds must be > 0, got {watchdog_seconds}")
        self.api_url = api_url.rstrip("/")
        self.token_provider = token_provider
        self.clock = clock
        self.calendar = calendar
        self.on_ticks = on_ticks
        self.on_market_status = on_market_status
        self.on_state = on_state
        self.on_raw_frame = on_raw_frame
        self.candle_source: CandleSource | None = None
        if backfill:
            self.candle_source = candle_source or UpstoxIntradayCandles(self.api_url, token_provider)
        self.backfill_complete_minutes = backfill_complete_minutes
        self.backfill_from = backfill_from  # a first connect after it backfills from it (`_history_start_ms`)
        self.watchdog_seconds = watchdog_seconds
        self.stable_after_seconds = stable_after_seconds
        self.http_timeout_seconds = http_timeout_seconds
        self.backfill_timeout_seconds = backfill_timeout_seconds
        self.limits = dict(limits)
        self.reconnect_base_seconds = reconnect_base_seconds
        self.reconnect_max_seconds = reconnect_max_seconds
        self._jitter = random.Random(backoff_seed)  # seeded: the same backoffs in every run (lockstep replays)
        self.stats = FeedStats()
        self.market_status: dict[str, MarketStatus] = {}
        self._keys_by_mode: dict[str, set[str]] = {}
        self._last_tick: dict[str, Tick] = {}
        self._minute_prices: dict[str, tuple[int, list[float]]] = {}  # key -> (minute, its distinct prices so far)
        self._ws: ClientConnection | None = None
        self._stop_event = asyncio.Event()
        self._running = False
        self._failures = 0
        self._connected_once = False
        self._stream_start_ms: int | None = None
        self._last_frame_ms = 0
        self._stalled_since_ms = 0  # the last frame before the watchdog gave up on a socket
        self._deliver_lock = asyncio.Lock()
        self._held_ticks: list[Tick] | None = None  # not None while a backfill is pending
        self._backfill_task: asyncio.Task[None] | None = None
        self._outages: list[_Outage] = []  # faults seen, not yet followed by a tick handed on

    # ---- subscriptions -------------------------------------------------------------------------------------

    @property
    def state(self) -> FeedState:
        return self.stats.state

    @property
    def subscriptions(self) -> dict[str, frozenset[str]]:
        """Mode → keys currently subscribed (what a reconnect resubscribes)."""
        return {mode: frozenset(keys) for mode, keys in self._keys_by_mode.items() if keys}

    def _subscribed_keys(self) -> set[str]:
        return set().union(*self._keys_by_mode.values())

    def _planned(self, keys: Iterable[str], mode: str | None) -> dict[str, set[str]]:
        moving = set(keys)
        planned = {m: ks - moving for m, ks in self._keys_by_mode.items()}
        if mode is not None:
            planned.setdefault(mode, set()).update(moving)
        check_limits(planned, self.limits)
        return planned

    async def subscribe(self, instrument_keys: Iterable[str], mode: str = "full") -> None:
        """Add keys in `mode` (a key already held in another mode moves to this one).

        Raises `SubscriptionLimitError` (nothing changed, nothing sent) if Upstox's limit would be exceeded."""
        keys = list(dict.fromkeys(instrument_keys))
        check_mode(mode)
        if not keys:
            return
        self._keys_by_mode = self._planned(keys, mode)
        await self._send(_subscription_request("sub", keys, mode))

    async def change_mode(self, instrument_keys: Iterable[str], mode: str) -> None:
        keys = list(dict.fromkeys(instrument_keys))
        check_mode(mode)
        held = self._subscribed_keys()
        unknown = [key for key in keys if key not in held]
        if unknown:
            raise ValueError(f"change_mode on keys that are not subscribed: {unknown[:5]}")
        self._keys_by_mode = self._planned(keys, mode)
        await self._send(_subscription_request("change_mode", keys, mode))

    async def unsubscribe(self, instrument_keys: Iterable[str]) -> None:
        keys = list(dict.fromkeys(instrument_keys))
        self._keys_by_mode = self._planned(keys, None)
        await self._send(_subscription_request("unsub", keys))

    async def _send(self, request: bytes) -> None:
        ws = self._ws
        if ws is None:
            return  # sent on the next (re)connect from self._keys_by_mode
        try:
            await ws.send(request)
        except WebSocketException as exc:
            log.info("subscription request not sent (%s); it is replayed on reconnect", exc)

    # ---- lifecycle -----------------------------------------------------------------------------------------

    async def run(self, until: datetime | None = None) -> FeedState:
        """Stream until `stop()`, `until` (clock time) or a rejected token. Returns the final state."""
        if self._running:
            raise RuntimeError("MarketDataClient.run is already running")
        self._running = True
        self._stop_event = asyncio.Event()
        until_task = asyncio.create_task(self._stop_at(until)) if until is not None else None
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_TRANSIENT),
            wait=self._next_backoff,
            sleep=self._sleep,
            stop=lambda _state: self._stop_event.is_set(),
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            async with httpx.AsyncClient(timeout=self.http_timeout_seconds) as http:
                async for attempt in retrying:
                    with attempt:
                        await self._connection(http)
        except TokenRejectedError as exc:
            self.stats.last_error = str(exc)
            log.error("feed token rejected, not retrying: %s", exc)
            await self._set_state(FeedState.TOKEN_EXPIRED)
        except _TRANSIENT as exc:  # only reached when stop was requested during a failing attempt
            self.stats.last_error = str(exc)
        finally:
            self._running = False
            if until_task is not None:
                until_task.cancel()
            await self._cancel_backfill()
        if self.state is not FeedState.TOKEN_EXPIRED:
            await self._set_state(FeedState.STOPPED)
        return self.state

    async def stop(self) -> None:
        """Close the socket and make `run` return (safe to call from a callback or another task)."""
        self._stop_event.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), timeout=2.0)

    async def _stop_at(self, until: datetime) -> None:
        await self.clock.sleep_until(until)
        await self.stop()

    async def _sleep(self, seconds: float) -> None:
        """Clock-time sleep that `stop()` interrupts."""
        await self.clock.sleep_until_or(self.clock.now() + timedelta(seconds=seconds), self._stop_event)

    def _next_backoff(self, _retry_state: RetryCallState) -> float:
        """Exponential backoff with full jitter. Our own failure count, not tenacity's attempt number: a connection
        that stayed up resets the backoff."""
        self._failures += 1
        ceiling = min(self.reconnect_max_seconds, self.reconnect_base_seconds * 2 ** (self._failures - 1))
        return self._jitter.uniform(0, ceiling)

    async def _before_retry(self, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        self.stats.last_error = f"{type(error).__name__}: {error}" if error else ""
        log.warning("feed connection lost (%s); reconnecting", self.stats.last_error)
        await self._set_state(FeedState.RECONNECTING)

    async def _set_state(self, state: FeedState) -> None:
        if state is self.stats.state:
            return
        self.stats.state = state
        if self.on_state is not None:
            await self._call(self.on_state, state)

    async def _call(self, callback: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            await callback(*args)
        except Exception:
            self.stats.callback_errors += 1
            log.exception("feed callback %s failed", getattr(callback, "__name__", callback))

    # ---- one connection ------------------------------------------------------------------------------------

    async def _authorize(self, http: httpx.AsyncClient, token: str) -> str:
        response = await http.get(
            self.api_url + AUTHORIZE_PATH,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
        if response.status_code in (401, 403):
            raise TokenRejectedError(f"authorize answered HTTP {response.status_code}: {redact(response.text)[:200]}")
        response.raise_for_status()
        try:
            data = response.json()["data"]
            uri = data.get("authorized_redirect_uri") or data["authorizedRedirectUri"]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FeedProtocolError(
                f"authorize answered no authorized_redirect_uri: {redact(response.text)[:200]}") from exc
        return str(uri)

    async def _open(self, http: httpx.AsyncClient) -> ClientConnection:
        """Authorize with the current token and open the socket."""
        try:
            token = self.token_provider()
        except Exception as exc:  # no token to be had: the same outcome as a refused one
            raise TokenRejectedError(f"token provider failed: {exc}") from exc
        register_secret(token)  # a token refreshed mid-day is redacted from the moment it is read
        uri = await self._authorize(http, token)
        try:
            return await websockets.connect(
                uri,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=self.http_timeout_seconds,
                close_timeout=2.0,
                max_size=MAX_FRAME_BYTES,
            )
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise TokenRejectedError(f"WebSocket handshake answered HTTP {exc.response.status_code}") from exc
            raise

    async def _connection(self, http: httpx.AsyncClient) -> None:
        if self._stop_event.is_set():
            return
        if self.state is not FeedState.RECONNECTING:
            await self._set_state(FeedState.CONNECTING)
        with self.clock.hold():  # a driven clock waits until the socket is open and subscribed again
            ws = await self._open(http)
            opened_at = self.clock.now()
            reconnect = self._connected_once
            self._connected_once = True
            self._ws = ws
            self._last_frame_ms = self.clock.now_ms()
            watchdog = asyncio.create_task(self._watchdog(ws))
            subscribed = False
            try:
                if not self._stop_event.is_set():  # stop() may have come while connecting and found no socket
                    for mode, keys in self.subscriptions.items():
                        await ws.send(_subscription_request("sub", sorted(keys), mode))
                    subscribed = True
            finally:
                if not subscribed:
                    await self._close_connection(ws, watchdog, opened_at)
        if not subscribed:
            return
        try:
            late_start = False
            if self._stream_start_ms is None:
                now_ms = self.clock.now_ms()
                self._stream_start_ms = self._history_start_ms(now_ms)
                late_start = self._stream_start_ms < now_ms
            if reconnect:
                self.stats.reconnects += 1
                self._start_backfill()
            elif late_start:
                self._start_backfill()
            else:
                await self._set_state(FeedState.STREAMING)
            await self._receive(ws)
        finally:
            await self._close_connection(ws, watchdog, opened_at)
        if watchdog.done() and not watchdog.cancelled() and watchdog.exception() is not None:
            self._fault_seen("stall", datetime.fromtimestamp(self._stalled_since_ms / 1000, IST))
            raise FeedStalledError(str(watchdog.exception()))
        if not self._stop_event.is_set():
            self._fault_seen("drop", self.clock.now())
            close = ws.protocol.close_rcvd
            raise FeedConnectionLost(f"socket closed ({close.code} {close.reason})" if close else "socket closed")

    async def _close_connection(self, ws: ClientConnection, watchdog: asyncio.Task[None], opened_at: datetime) -> None:
        watchdog.cancel()
        self._ws = None
        await self._cancel_backfill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), timeout=2.0)
        if (self.clock.now() - opened_at).total_seconds() >= self.stable_after_seconds:
            self._failures = 0

    async def _receive(self, ws: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in ws:
                now = self.clock.now()
                self._last_frame_ms = int(now.timestamp() * 1000)
                self.stats.last_frame_at = now
                if self.on_raw_frame is not None:
                    await self._call(self.on_raw_frame, message, now)
                if isinstance(message, str):
                    self.stats.malformed_frames += 1
                    self._fault_seen("malformed", now)
                    log.warning("text frame on the market data feed (expected binary protobuf): %.200s", message)
                    continue
                try:
                    frame = decode_frame(message)
                except Exception as exc:  # FrameDecodeError, or anything else odd bytes provoke: never fatal
                    self.stats.malformed_frames += 1
                    self._fault_seen("malformed", now)
                    log.warning("malformed frame skipped (%s): %s", type(exc).__name__, exc)
                    continue
                self.stats.frames += 1
                if frame.market_status:
                    self.market_status.update(frame.market_status)
                    if self.on_market_status is not None:
                        await self._call(self.on_market_status, dict(self.market_status))
                if frame.ticks:
                    await self._deliver_live(frame.ticks)

    async def _watchdog(self, ws: ClientConnection) -> None:
        """Abort a socket that stays silent for `watchdog_seconds` (clock time) while the segment is open."""
        interval = self.watchdog_seconds / 4
        while True:
            await self.clock.sleep(interval)
            now = self.clock.now()
            silent = (now.timestamp() * 1000 - self._last_frame_ms) / 1000
            subscribed = any(self._keys_by_mode.values())
            if silent >= self.watchdog_seconds and subscribed and self.segment_open(now):
                self.stats.watchdog_timeouts += 1
                self._stalled_since_ms = self._last_frame_ms
                log.warning("no frame for %.1f s while the market is open; reconnecting", silent)
                ws.transport.abort()
                raise FeedStalledError(f"no frame for {silent:.1f} s while the market is open")
            if silent >= self.watchdog_seconds:
                self._last_frame_ms = int(now.timestamp() * 1000)  # closed market or nothing subscribed: expected

    def segment_open(self, when: datetime) -> bool:
        """Is continuous trading on for the subscribed segments at `when`? Both the calendar (if given) and the
        latest market_info (if any) must say open; with neither, assume open (the watchdog then always runs)."""
        if self.calendar is not None:
            try:
                session = self.calendar.session(when.date())
            except ValueError:  # outside the calendar's years: do not guess closed
                session = True
            if session is None or (session is not True and not session.is_open_at(when)):
                return False
        segments = {key.split("|", 1)[0] for key in self._subscribed_keys()}
        known = [self.market_status[segment] for segment in segments if segment in self.market_status]
        return not known or MarketStatus.NORMAL_OPEN in known

    # ---- tick delivery, dedupe, backfill -------------------------------------------------------------------

    def _accept(self, ticks: Iterable[Tick]) -> list[Tick]:
        """Drop ticks older than the last one per instrument (out of order) or repeating it (same ltt, no new
        volume: a duplicate)."""
        accepted: list[Tick] = []
        last_ticks = self._last_tick
        minute_prices = self._minute_prices  # what the backfill of a minute seen in part leaves out
        stats = self.stats
        out_of_order, duplicates = stats.out_of_order_dropped, stats.duplicates_dropped
        for tick in ticks:
            last = last_ticks.get(tick.instrument_key)
            if last is not None:
                if tick.ltt_ms < last.ltt_ms:
                    stats.out_of_order_dropped += 1
                    continue
                if tick.ltt_ms == last.ltt_ms and tick.volume <= last.volume:
                    stats.duplicates_dropped += 1
                    continue
            last_ticks[tick.instrument_key] = tick
            accepted.append(tick)
            minute = tick.ltt_ms // MINUTE_MS
            seen = minute_prices.get(tick.instrument_key)
            if seen is None or seen[0] != minute:
                minute_prices[tick.instrument_key] = (minute, [tick.ltp])
            elif seen[1][-1] != tick.ltp:
                seen[1].append(tick.ltp)
        if stats.out_of_order_dropped > out_of_order:
            self._fault_seen("out_of_order", self.clock.now())
        if stats.duplicates_dropped > duplicates:
            self._fault_seen("duplicate", self.clock.now())
        return accepted

    async def _pass_on(self, ticks: list[Tick], *, backfilled: bool = False, minutes_backfilled: int = 0) -> None:
        """Dedupe `ticks`, count what is left and hand it to `on_ticks` (callers hold `_deliver_lock`)."""
        accepted = self._accept(ticks)
        if backfilled:
            self.stats.backfilled_ticks += len(accepted)
        else:
            self.stats.ticks += len(accepted)
        if accepted and self.on_ticks is not None:
            await self._call(self.on_ticks, accepted)
        if accepted:
            self._recovered(minutes_backfilled)

    def _fault_seen(self, kind: str, at: datetime) -> None:
        self._outages.append(_Outage(kind, at, wall_seconds()))

    def _recovered(self, minutes_backfilled: int) -> None:
        """Ticks were handed on: every fault seen since the last ones is recovered from."""
        now, wall = self.clock.now(), wall_seconds()
        for outage in self._outages:
            figures = self.stats.recovery.setdefault(outage.kind, RecoveryFigures())
            figures.add((now - outage.at).total_seconds(), wall - outage.wall, minutes_backfilled)
        down = [outage.at for outage in self._outages if outage.kind in CONNECTION_FAULTS]
        if down:
            self.stats.outages.append((min(down), now))
        self._outages.clear()

    def unrecovered(self) -> list[tuple[str, datetime]]:
        """(kind, when) of the drops and stalls no tick has followed yet: at the end of a run, the minutes lost."""
        return [(outage.kind, outage.at) for outage in self._outages if outage.kind in CONNECTION_FAULTS]

    async def _deliver_live(self, ticks: list[Tick]) -> None:
        if self._held_ticks is not None:
            self._held_ticks.extend(ticks)
            return
        async with self._deliver_lock:
            await self._pass_on(ticks)

    def _history_start_ms(self, now_ms: int) -> int:
        """Where the stream's ticks begin: `backfill_from` when the first connect comes after it (a late start or a
        retried session: the day's earlier minutes are backfilled, so its open and low are the day's), else now."""
        if self.backfill_from is None or self.candle_source is None:
            return now_ms
        return min(now_ms, int(self.backfill_from.timestamp() * 1000))

    def last_tick(self, instrument_key: str) -> Tick | None:
        """The last tick handed on for `instrument_key` (its `day_open`/`day_high`/`day_low`: the feed's day OHLC)."""
        return self._last_tick.get(instrument_key)

    def _start_backfill(self) -> None:
        self._held_ticks = []
        self._backfill_task = asyncio.create_task(self._backfill(self.clock.now_ms()))

    async def _cancel_backfill(self) -> None:
        task, self._backfill_task = self._backfill_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Held live ticks are dropped: the next reconnect's backfill starts from the last DELIVERED tick.
        self._held_ticks = None

    async def _backfill(self, reconnected_ms: int) -> None:
        await self._set_state(FeedState.BACKFILLING)
        if self.backfill_complete_minutes:
            # Upstox serves a candle once its minute is complete: wait for the reconnect minute to end, or the
            # missed part of that minute (its high or low, say) would never be filled.
            complete_ms = (reconnected_ms // MINUTE_MS + 1) * MINUTE_MS + BACKFILL_GRACE_MS
            await self.clock.sleep_until(datetime.fromtimestamp(complete_ms / 1000, IST))
        with self.clock.hold():  # a driven clock waits for the candles and their delivery
            await self._fill_gap(reconnected_ms)
        await self._set_state(FeedState.STREAMING)

    def _live_after_gap(self, held: list[Tick]) -> dict[str, list[Tick]]:
        """Per instrument, the held live ticks newer than the last one handed on, in the minute of the first."""
        live: dict[str, list[Tick]] = {}
        for tick in sorted(held, key=lambda held_tick: held_tick.ltt_ms):
            last = self._last_tick.get(tick.instrument_key)
            ticks = live.setdefault(tick.instrument_key, [])
            newer = tick.ltt_ms > (ticks[-1].ltt_ms if ticks else last.ltt_ms if last else -1)
            if newer and (not ticks or tick.ltt_ms // MINUTE_MS == ticks[0].ltt_ms // MINUTE_MS):
                ticks.append(tick)
        return {key: ticks for key, ticks in live.items() if ticks}

    async def _fill_gap(self, reconnected_ms: int) -> None:
        """Fetch the candles of the missed minutes, hand on their ticks, then the live ticks held meanwhile."""
        keys = sorted(self._subscribed_keys())
        candles: dict[str, list[Any]] = {}
        if self.candle_source is not None and keys:
            try:
                candles = await asyncio.wait_for(self.candle_source.fetch(keys), self.backfill_timeout_seconds)
            except Exception as exc:  # the feed must go on; the gap is counted and logged
                log.error("backfill failed: %s", exc)
            if len(candles) < len(keys):
                self.stats.backfill_failures += 1
                log.error("backfill: no candles for %d of %d keys (gap stays)", len(keys) - len(candles), len(keys))
        async with self._deliver_lock:
            held = self._held_ticks or []
            live_after_gap = self._live_after_gap(held)
            synthesized: list[Tick] = []
            floor_ms = (self._stream_start_ms or reconnected_ms) - 1
            for key, key_candles in candles.items():
                last = self._last_tick.get(key)
                live = live_after_gap.get(key, [])
                ticks = synthesize_ticks(
                    key_candles,
                    after_ms=last.ltt_ms if last is not None else floor_ms,
                    before_ms=live[0].ltt_ms if live else reconnected_ms,
                    template=last,
                    seen_prices=self._minute_prices.get(key, (0, []))[1],
                    live_prices=_distinct_prices(live),
                )
                if ticks:
                    self.stats.backfilled_bars += len({tick.ltt_ms // MINUTE_MS for tick in ticks})
                    synthesized.extend(ticks)
            await self._pass_on(synthesized, backfilled=True,
                                minutes_backfilled=len({tick.ltt_ms // MINUTE_MS for tick in synthesized}))
            # Flush live ticks held meanwhile; more may arrive while on_ticks runs, so loop until none are left.
            while self._held_ticks:
                batch, self._held_ticks = self._held_ticks, []
                await self._pass_on(batch)
            self._held_ticks = None
            self._backfill_task = None


def _distinct_prices(ticks: Sequence[Tick]) -> list[float]:
    """The prices of `ticks`, a price repeated by the next tick counted once."""
    prices: list[float] = []
    for tick in ticks:
        if not prices or tick.ltp != prices[-1]:
            prices.append(tick.ltp)
    return prices
