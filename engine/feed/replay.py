"""Upstox-compatible replay server: the Market Data Feed V3 and the intraday candle API, on loopback.

It speaks Upstox's wire contract so the real clients (upstox-python-sdk, our `engine.feed.client`) run unchanged:

* `GET /v3/feed/market-data-feed/authorize` with `Authorization: Bearer <token>` →
  `{"status": "success", "data": {"authorized_redirect_uri": "ws://HOST:PORT/v3/feed/market-data-feed?code=…",
  "authorizedRedirectUri": …}}`; a bad token → 401 with Upstox's error envelope (UDAPI100050).
* WebSocket `/v3/feed/market-data-feed`, authorised by the `code` from authorize or by a bearer header (what the
  SDK's MarketDataStreamerV3 sends). Requests are binary (or text) frames holding JSON
  `{"guid", "method": "sub" | "change_mode" | "unsub", "data": {"mode", "instrumentKeys"}}`; responses are binary
  protobuf `FeedResponse`s: a market_info frame first, an initial_feed snapshot for every (re)subscribed key, then
  live_feed frames, and a market_info frame at each session boundary of the replay clock (PRE_OPEN_START 09:00,
  PRE_OPEN_END 09:08, NORMAL_OPEN 09:15, NORMAL_CLOSE 15:30; NORMAL_CLOSE before 09:00).
  Upstox's per-mode key limits (`engine.feed.limits`) hold per connection: a `sub` / `change_mode` that would break
  one is refused whole (nothing subscribed, moved or truncated; the socket and earlier keys stream on), logged and
  recorded in `ReplayServer.refused`. Upstox documents the limits but not its wire answer; this is our choice.
* `GET /v3/historical-candle/intraday/{instrument_key}/{unit}/{interval}` (the path of the SDK's
  `HistoryV3Api.get_intra_day_candle_data`) → `{"status": "success", "data": {"candles": [[ts, o, h, l, c, v, oi],
  …]}}`, newest first as Upstox sends them, `ts` ISO 8601 with +05:30. Only candles COMPLETE on the replay clock are
  served, aggregated from the same derived tick path the socket streams (unit minutes 1..300, hours 1..5, days 1).

Sources: a day of the Parquet store (`data/bars`, 5-minute bars; instrument_key → symbol through
`data/instruments.parquet`) with DERIVED ticks (`engine.feed.synth`: a path through each real bar that never leaves
its open/high/low/close; no tick here was ever traded), or a recorded frame file (`engine.feed.framefile`) whose
frames are resent as recorded, at their receive times, whatever the subscription.

Time is the injected `Clock` (default: SimulatedClock from 09:00 IST of the replayed day at `speed`).
LOCKSTEP (in-process only): with `lockstep=Lockstep(VirtualClock(...))` the server DRIVES the clock instead of
following it. Before moving time to the next frame it waits until the consumer (in the same event loop) has read and
processed every frame sent so far and every clock sleeper due meanwhile has run; a day is then deterministic and
replays as fast as the CPU allows. One consumer connection at a time. Faults fire at replay-clock times there too, so
a chaos day (`FaultPlan.chaos`) is as deterministic as a clean one: a connection cut by a fault is followed by
driving time from one clock sleeper to the next (the client's backoff) until the consumer is back.
Faults (`FaultPlan`): connection drop, stall, malformed frame, a frame of duplicated or of out-of-order ticks, token
rejection at given replay times or at seeded random times; duplicated and out-of-order ticks at seeded random rates.
Exposure: a `host` beyond loopback needs a `token` (`engine.listen`, `ExposedHostError`); tokens are compared in
constant time and never logged.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import random
import secrets
import threading
from collections import Counter
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from engine.clock import Clock, Lockstep, SimulatedClock
from engine.feed.client import AUTHORIZE_PATH
from engine.feed.decoder import FeedMode, FrameDecodeError, FrameKind, decode_frame, encode_market_info, encode_ticks
from engine.feed.framefile import read_frames
from engine.feed.limits import UPSTOX_V3_LIMITS, ModeLimit, SubscriptionLimitError, check_limits
from engine.feed.replay_candles import DAILY_CANDLE_PREFIX, CandleRequestError, daily_candles
from engine.feed.synth import BAR_MS, MINUTE_MS, bar_path, candles, day_ticks
from engine.listen import refuse_exposed_host
from engine.models import IST, Bar, MarketStatus, Tick, Timeframe
from engine.storage.bars import BarStore

log = logging.getLogger(__name__)

FEED_PATH = "/v3/feed/market-data-feed"
CANDLE_PREFIX = "/v3/historical-candle/intraday/"
SEGMENTS = ("NSE_EQ", "NSE_FO", "NSE_INDEX", "BSE_EQ", "BSE_FO", "BSE_INDEX")
SESSION_BOUNDARIES = (
    (time(9, 0), MarketStatus.PRE_OPEN_START),
    (time(9, 8), MarketStatus.PRE_OPEN_END),
    (time(9, 15), MarketStatus.NORMAL_OPEN),
    (time(15, 30), MarketStatus.NORMAL_CLOSE),
)
SESSION_OPEN = time(9, 15)
SESSION_CLOSE = time(15, 30)
REPLAY_START = time(9, 0)
# Not a FeedResponse: a length-delimited field whose length runs past the end of the frame.
MALFORMED_FRAME = b"\x12\xff\xff\x03garbage-not-protobuf"
TOKEN_REJECTED_CLOSE_CODE = 1008
EXPOSED_REMEDY = "give the server a token it requires (token=...; the CLI: --require-token)"
DISCONNECTED_GRACE_SECONDS = 1.0  # lockstep: real seconds without a consumer before time moves on its own
INVALID_TOKEN = {"errorCode": "UDAPI100050", "message": "Invalid token used to access API"}
NOT_FOUND = {"errorCode": "UDAPI100060", "message": "Resource not Found."}
UNIT_LIMITS = {"minutes": (1, 300, MINUTE_MS), "hours": (1, 5, 60 * MINUTE_MS), "days": (1, 1, 0)}


class ReplayError(ValueError):
    """The replay cannot start: no data for the day, unknown instruments, bad options."""


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Faults to inject. Times are replay-clock times (IST) of the replayed day; each fires once, on every
    connection open at that moment. `random_*` add that many faults at seeded random times between 09:15 and 15:30.

    * drop: the TCP connection is cut without a close frame.
    * stall: the server stops sending on the socket (requests still read, socket kept open) for `stall_seconds` of
      replay time, or until the client goes away when None; what it would have sent meanwhile is lost.
    * malformed: one binary frame that is not a FeedResponse.
    * duplicate: one frame resending, unchanged, the latest tick sent of every subscribed instrument.
    * out_of_order: one frame resending the tick before the latest one sent of every subscribed instrument.
    * reject_token: from then on the token is refused (authorize and handshake answer 401) and open sockets are
      closed with code 1008; `ReplayServer.set_token` accepts a new one. `reject_token=True` refuses from the start.
    * duplicate_rate: probability that a tick is sent again, unchanged, in a frame of its own right after.
    * out_of_order_rate: probability that after a tick the instrument's previous (older) tick is sent again.
    """

    drop_at: tuple[time, ...] = ()
    stall_at: tuple[time, ...] = ()
    malformed_at: tuple[time, ...] = ()
    duplicate_at: tuple[time, ...] = ()
    out_of_order_at: tuple[time, ...] = ()
    reject_token_at: tuple[time, ...] = ()
    reject_token: bool = False
    duplicate_rate: float = 0.0
    out_of_order_rate: float = 0.0
    random_drops: int = 0
    random_stalls: int = 0
    random_malformed: int = 0
    random_duplicates: int = 0
    random_out_of_order: int = 0
    stall_seconds: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "out_of_order_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ReplayError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        for kind in CHAOS_KINDS:
            if self._random_count(kind) < 0:
                raise ReplayError(f"{RANDOM_FIELDS[kind]} must be >= 0, got {self._random_count(kind)}")

    @classmethod
    def chaos(cls, count: int, seed: int = 0, day: date | None = None) -> FaultPlan:
        """`count` faults at seeded random times of the session, shared as evenly as can be between the kinds of
        `CHAOS_KINDS` (the first kinds get the remainder); with `day`, other moments on each day of one seed.
        Stalls last until the client gives up on the socket (its watchdog), so every stall outlasts the watchdog."""
        if count < 0:
            raise ReplayError(f"the number of chaos faults must be >= 0, got {count}")
        share, remainder = divmod(count, len(CHAOS_KINDS))
        drops, stalls, malformed, duplicates, out_of_order = (share + (index < remainder)
                                                               for index in range(len(CHAOS_KINDS)))
        if day is not None:
            seed = random.Random(f"{seed}:{day.isoformat()}").getrandbits(32)
        return cls(random_drops=drops, random_stalls=stalls, random_malformed=malformed,
                   random_duplicates=duplicates, random_out_of_order=out_of_order, seed=seed)

    def _random_count(self, kind: str) -> int:
        return int(getattr(self, RANDOM_FIELDS[kind]))

    def schedule(self, day: date) -> list[tuple[datetime, str]]:
        """(when, kind) of every timed fault, in time order; kind is one of `CHAOS_KINDS` or reject_token."""
        rng = random.Random(self.seed)
        open_s = SESSION_OPEN.hour * 3600 + SESSION_OPEN.minute * 60
        close_s = SESSION_CLOSE.hour * 3600 + SESSION_CLOSE.minute * 60
        events = [
            (datetime.combine(day, at, IST), kind)
            for kind, times in (("drop", self.drop_at), ("stall", self.stall_at), ("malformed", self.malformed_at),
                                ("duplicate", self.duplicate_at), ("out_of_order", self.out_of_order_at),
                                ("reject_token", self.reject_token_at))
            for at in times
        ]
        for kind in CHAOS_KINDS:
            for _ in range(self._random_count(kind)):
                second = rng.uniform(open_s, close_s)
                events.append((datetime.combine(day, time(), IST) + timedelta(seconds=second), kind))
        return sorted(events)


CHAOS_KINDS = ("drop", "stall", "malformed", "duplicate", "out_of_order")
RANDOM_FIELDS = {"drop": "random_drops", "stall": "random_stalls", "malformed": "random_malformed",
                 "duplicate": "random_duplicates", "out_of_order": "random_out_of_order"}


def market_status_at(moment: datetime) -> MarketStatus:
    """Status of the equity segments at `moment` per the replay schedule."""
    current = MarketStatus.NORMAL_CLOSE
    clock_time = moment.astimezone(IST).time()
    for boundary, status in SESSION_BOUNDARIES:
        if clock_time >= boundary:
            current = status
    return current


def _next_boundary(moment: datetime) -> datetime | None:
    moment = moment.astimezone(IST)
    for boundary, _ in SESSION_BOUNDARIES:
        when = datetime.combine(moment.date(), boundary, IST)
        if when > moment:
            return when
    return None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, IST)


class BarTape:
    """Derived ticks of one day of the bar store, per instrument_key, computed on first use. Loading reads Parquet
    (slow): the server does it in worker threads, so a lock keeps two loads of one key from interleaving."""

    def __init__(self, data_dir: Path, day: date, instruments: pd.DataFrame | None = None) -> None:
        self.day = day
        self.store = BarStore(Path(data_dir) / "bars")
        if instruments is None:
            from engine.data.instruments import load_instrument_table

            instruments = load_instrument_table(Path(data_dir))
        sizes = instruments["tick_size"] if "tick_size" in instruments else [None] * len(instruments)
        self.instruments: dict[str, tuple[str, float | None]] = {
            str(key): (str(symbol), float(size) if size else None)
            for key, symbol, size in zip(instruments["instrument_key"], instruments["symbol"], sizes, strict=True)
        }
        self._ticks: dict[str, list[Tick]] = {}
        self._by_time: dict[str, dict[int, Tick]] = {}
        self._ltts: dict[str, list[int]] = {}
        self._prev_close: dict[str, Tick | None] = {}
        self.times: list[int] = []
        self._time_set: set[int] = set()
        self._load_lock = threading.Lock()

    def knows(self, key: str) -> bool:
        return key in self.instruments

    def loaded(self, key: str) -> bool:
        return key in self._ticks

    def missing(self, keys: Iterable[str] | None = None) -> list[str]:
        """The known keys among `keys` (default: every instrument) whose ticks are not derived yet."""
        return [key for key in (self.instruments if keys is None else keys) if self.knows(key) and not self.loaded(key)]

    def preload(self, keys: Iterable[str] | None = None) -> None:
        """Derive the ticks of `keys` (default: every instrument) now; blocking, so run it in a thread."""
        for key in self.missing(keys):
            self.ticks(key)

    def ticks(self, key: str) -> list[Tick]:
        """The day's derived ticks of `key` (empty if unknown or no bars that day)."""
        cached = self._ticks.get(key)
        if cached is not None:
            return cached
        if key not in self.instruments:
            return []
        with self._load_lock:
            cached = self._ticks.get(key)  # another thread may have loaded it while this one waited
            return cached if cached is not None else self._load(key)

    def _load(self, key: str) -> list[Tick]:
        symbol, tick_size = self.instruments[key]
        day_start = pd.Timestamp(datetime.combine(self.day, time(), IST))
        # one read: the day's bars and the previous trading day's close
        frame = self.store.read(symbol, Timeframe.MIN5, self.day - timedelta(days=14), self.day + timedelta(days=1))
        earlier = frame[frame["ts"] < day_start]
        today = frame[frame["ts"] >= day_start]
        previous = None
        if len(earlier):
            last = earlier.iloc[-1]
            close = float(last["close"])
            last_offset = bar_path(close, close, close, close, 0)[-1].offset_ms  # where every path ends
            previous = Tick(key, close, int(last["ts"].timestamp() * 1000) + last_offset, close_prev=close)
        bars = [
            Bar(symbol, ts.to_pydatetime(), o, h, lo, c, int(v), Timeframe.MIN5)
            for ts, o, h, lo, c, v in zip(
                today["ts"], today["open"], today["high"], today["low"], today["close"], today["volume"], strict=True
            )
        ]
        try:
            ticks = day_ticks(key, bars, close_prev=previous.ltp if previous else 0.0, tick_size=tick_size)
        except ValueError as exc:  # an inconsistent bar: leave the instrument out rather than stop the replay
            log.warning("replay: %s (%s) left out on %s: %s", key, symbol, self.day, exc)
            ticks = []
        new_times = {tick.ltt_ms for tick in ticks} - self._time_set
        if new_times:
            self._time_set |= new_times
            self.times = sorted(self._time_set)  # a new list: a reader on the loop keeps a consistent one
        self._prev_close[key] = previous
        self._ltts[key] = [tick.ltt_ms for tick in ticks]
        self._by_time[key] = {tick.ltt_ms: tick for tick in ticks}
        self._ticks[key] = ticks  # last: `loaded(key)` turns true only once everything else is in place
        return ticks

    def previous_close(self, key: str) -> Tick | None:
        """The previous trading day's last derived tick (its close), for `cp` and pre-open snapshots."""
        self.ticks(key)
        return self._prev_close.get(key)

    def at(self, key: str, ltt_ms: int) -> Tick | None:
        if key not in self._by_time:
            self.ticks(key)
        return self._by_time.get(key, {}).get(ltt_ms)

    def latest(self, key: str, now_ms: int) -> Tick | None:
        """The last tick at or before `now_ms` (the previous close before the first tick of the day)."""
        ticks = self.ticks(key)
        index = bisect.bisect_right(self._ltts.get(key, []), now_ms)
        if index:
            return ticks[index - 1]
        return self.previous_close(key)

    def previous(self, key: str, ltt_ms: int) -> Tick | None:
        """The tick before the one at `ltt_ms` (for out-of-order injection)."""
        ticks = self.ticks(key)
        index = bisect.bisect_left(self._ltts.get(key, []), ltt_ms)
        return ticks[index - 1] if index > 0 else None


class FrameTape:
    """Recorded frames (recv_ms, bytes), resent as they are."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.frames = list(read_frames(self.path))
        if not self.frames:
            raise ReplayError(f"{self.path} holds no frames")
        self.frames.sort(key=lambda item: item[0])
        self.times = [recv_ms for recv_ms, _ in self.frames]
        self._ticks: dict[str, list[Tick]] | None = None
        self.market_info_indexes: list[int] = []
        for index, (_, data) in enumerate(self.frames):
            with contextlib.suppress(FrameDecodeError):
                if decode_frame(data).kind is FrameKind.MARKET_INFO:
                    self.market_info_indexes.append(index)

    @property
    def day(self) -> date:
        return _from_ms(self.frames[0][0]).date()

    def preload(self, keys: Iterable[str] | None = None) -> None:
        """Decode every frame into per-key ticks (for `knows` and the candle endpoint); blocking."""
        if self._ticks is None:
            by_key: dict[str, list[Tick]] = {}
            for _, data in self.frames:
                with contextlib.suppress(FrameDecodeError):
                    for tick in decode_frame(data).ticks:
                        by_key.setdefault(tick.instrument_key, []).append(tick)
            self._ticks = {k: sorted(v, key=lambda t: t.ltt_ms) for k, v in by_key.items()}

    @property
    def indexed(self) -> bool:
        return self._ticks is not None

    def ticks(self, key: str) -> list[Tick]:
        self.preload()
        assert self._ticks is not None
        return self._ticks.get(key, [])

    def knows(self, key: str) -> bool:
        return bool(self.ticks(key))


@dataclass(eq=False)
class _Session:
    """One WebSocket connection."""

    connection: ServerConnection
    modes: dict[str, FeedMode] = field(default_factory=dict)
    last_sent: dict[str, int] = field(default_factory=dict)  # instrument_key -> ltt_ms
    stalled_until: datetime | None = None
    stalled_forever: bool = False
    cut_by_fault: bool = False  # a drop or a stall: the consumer is expected back, time moves on meanwhile
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def stalled(self, now: datetime) -> bool:
        return self.stalled_forever or (self.stalled_until is not None and now < self.stalled_until)


class ReplayServer:
    """Serve a replayed day (or a frame file) over Upstox's V3 feed protocol and intraday candle API.

    `async with ReplayServer(data_dir=..., day=date(2024, 6, 4)) as server:` then use `server.api_url`
    (HTTP base, for `Configuration.host` / the client's api_url) and `server.ws_url`."""

    def __init__(
        self,
        *,
        data_dir: Path | str | None = None,
        day: date | None = None,
        frames: Path | str | None = None,
        instruments: pd.DataFrame | None = None,
        clock: Clock | None = None,
        speed: float = 100.0,
        start: time = REPLAY_START,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        faults: FaultPlan | None = None,
        preload: bool = True,
        limits: Mapping[str, ModeLimit] = UPSTOX_V3_LIMITS,
        lockstep: Lockstep | None = None,
    ) -> None:
        if (frames is None) == (day is None):
            raise ReplayError("give exactly one source: `day` (with data_dir) or `frames`")
        refuse_exposed_host(host, token_required=bool(token), remedy=EXPOSED_REMEDY)
        if lockstep is not None:
            if clock is not None and clock is not lockstep.clock:
                raise ReplayError("in lockstep the server drives the lockstep's own clock: pass no other clock")
            clock = lockstep.clock
        self.lockstep = lockstep
        self.tape: BarTape | FrameTape
        if frames is not None:
            self.tape = FrameTape(Path(frames))
        else:
            if data_dir is None:
                raise ReplayError("replaying a day needs data_dir (holding bars/ and instruments.parquet)")
            assert day is not None
            self.tape = BarTape(Path(data_dir), day, instruments)
        self.day = self.tape.day
        self._day_start_ms = _ms(datetime.combine(self.day, time(), IST))  # the "1d" candle's ts in every frame
        self._preload = preload
        self._own_clock = clock is None
        self._clock_start = (
            _from_ms(self.tape.times[0]) if isinstance(self.tape, FrameTape) else datetime.combine(self.day, start, IST)
        )
        self._speed = speed
        self.clock: Clock = clock or SimulatedClock(self._clock_start, speed)
        self.host = host
        self.port = port
        self.faults = faults or FaultPlan()
        self._token = token
        self._token_rejected = self.faults.reject_token
        self._codes: set[str] = set()
        self._sessions: set[_Session] = set()
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._rng = random.Random(self.faults.seed)
        self.limits = dict(limits)
        self.fired: list[tuple[datetime, str]] = []  # faults applied, for tests and logs
        self.injected: Counter[str] = Counter()  # faults by kind that reached at least one open connection
        self.refused: list[tuple[datetime, str]] = []  # subscription requests refused (over a limit), with why

    # ---- lifecycle -------------------------------------------------------------------------------------------
    async def preload(self, keys: Iterable[str] | None = None) -> None:
        """Derive the ticks of `keys` (default: every instrument of the table; a frame file: its tick index) in a
        worker thread, so the event loop keeps serving. Keys already loaded cost nothing.

        Loading does not stop a running clock. A clock the server made itself starts only in `start()`, so call this
        BEFORE `start()` (or keep `preload=True`) and loading costs no replay time. An injected clock runs while
        loading: preload before creating it, or accept the jump (subscriptions get a snapshot at the clock's now)."""
        tape = self.tape
        if isinstance(tape, BarTape):
            keys = tape.missing(keys)
            if not keys:
                return
        elif tape.indexed:
            return
        await asyncio.to_thread(tape.preload, keys)

    async def start(self) -> None:
        """Derive the day's ticks (with `preload`, in a thread), then listen. A clock the server made itself starts
        (again) once the ticks are ready, so slow loading does not eat replay time."""
        if self._server is not None:
            return
        if self._preload:
            await self.preload()
            if isinstance(self.tape, BarTape) and not self.tape.times:
                raise ReplayError(f"no 5-minute bars on {self.day} in {self.tape.store.root} for any instrument")
        if self._own_clock:
            self.clock = SimulatedClock(self._clock_start, self._speed)
        self._server = await serve(
            self._handle, self.host, self.port, process_request=self._process_request, compression=None,
            max_size=2**20, ping_interval=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._spawn(self._fault_loop())
        log.info("replay server for %s on %s (ws %s)", self.day, self.api_url, self.ws_url)

    async def stop(self) -> None:
        """Stop listening, close every connection (1001) and end every task the server started: nothing is left
        pending on the loop."""
        await _cancel_and_wait(self._tasks)  # the fault loop and the pumps: no frame or fault while closing
        if self._server is not None:
            self._server.close()  # closes the connections (1001) and waits until their handlers return
            await self._server.wait_closed()
            self._server = None
        await _cancel_and_wait(self._tasks)  # a pump of a connection that opened meanwhile

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> ReplayServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{FEED_PATH}"

    @property
    def connections(self) -> int:
        return len(self._sessions)

    def set_token(self, token: str | None) -> None:
        """Accept `token` from now on (None: any non-empty token, on loopback only) and lift a token rejection."""
        refuse_exposed_host(self.host, token_required=bool(token), remedy=EXPOSED_REMEDY)
        self._token = token
        self._token_rejected = False
        self._codes.clear()

    @property
    def tasks(self) -> frozenset[asyncio.Task[None]]:
        """The server's unfinished tasks: the fault loop and one pump per open connection (each pump awaits its own
        short-lived waits). Empty once `stop()` returns; holds no pump of a closed connection."""
        return frozenset(task for task in self._tasks if not task.done())

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- HTTP ------------------------------------------------------------------------------------------------
    def _token_ok(self, authorization: str | None) -> bool:
        if self._token_rejected or not authorization or not authorization.startswith("Bearer "):
            return False
        token = authorization.removeprefix("Bearer ").strip()
        return bool(token) and (self._token is None or secrets.compare_digest(token.encode(), self._token.encode()))

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        path = parts.path
        if path == AUTHORIZE_PATH:
            if not self._token_ok(request.headers.get("Authorization")):
                return _error(connection, HTTPStatus.UNAUTHORIZED, INVALID_TOKEN)
            code = secrets.token_hex(16)
            self._codes.add(code)
            uri = f"{self.ws_url}?requestId={secrets.token_hex(8)}&code={code}"
            return _json(connection, HTTPStatus.OK,
                         {"status": "success", "data": {"authorized_redirect_uri": uri, "authorizedRedirectUri": uri}})
        if path == FEED_PATH:
            codes = parse_qs(parts.query).get("code", [])
            code_ok = bool(codes) and codes[0] in self._codes and not self._token_rejected
            if not code_ok and not self._token_ok(request.headers.get("Authorization")):
                return _error(connection, HTTPStatus.UNAUTHORIZED, INVALID_TOKEN)
            return None  # go on with the WebSocket handshake
        if path.startswith(CANDLE_PREFIX):  # no token check: the SDK's HistoryV3Api sends none (auth_settings=[])
            return await self._candles_response(connection, path.removeprefix(CANDLE_PREFIX))
        if path.startswith(DAILY_CANDLE_PREFIX):
            return self._daily_candles_response(connection, path)
        return _error(connection, HTTPStatus.NOT_FOUND, NOT_FOUND)

    def _daily_candles_response(self, connection: ServerConnection, path: str) -> Response:
        """The daily candles (engine/feed/replay_candles.py); 404 for a frame-file replay, which has no bars."""
        if not isinstance(self.tape, BarTape):
            return _error(connection, HTTPStatus.NOT_FOUND, NOT_FOUND)
        try:
            rows = daily_candles(self.tape, self.clock.now(), path)
        except CandleRequestError as exc:
            return _error(connection, HTTPStatus.BAD_REQUEST, {"errorCode": exc.code, "message": str(exc)})
        return _json(connection, HTTPStatus.OK, {"status": "success", "data": {"candles": rows}})

    async def _candles_response(self, connection: ServerConnection, rest: str) -> Response:
        pieces = rest.split("/")
        if len(pieces) != 3:
            return _error(connection, HTTPStatus.NOT_FOUND, NOT_FOUND)
        key, unit, interval_text = unquote(pieces[0]), pieces[1], pieces[2]
        limits = UNIT_LIMITS.get(unit)
        if limits is None or not interval_text.isdigit() or not limits[0] <= int(interval_text) <= limits[1]:
            return _error(connection, HTTPStatus.BAD_REQUEST,
                          {"errorCode": "UDAPI1146", "message": f"Invalid unit/interval: {unit}/{interval_text}"})
        await self.preload([key])  # off the loop, like a subscription
        if not self.tape.knows(key):
            return _error(connection, HTTPStatus.BAD_REQUEST,
                          {"errorCode": "UDAPI1021", "message": "Instrument key is invalid"})
        rows = self.intraday_candles(key, unit, int(interval_text))
        return _json(connection, HTTPStatus.OK, {"status": "success", "data": {"candles": rows}})

    def intraday_candles(self, key: str, unit: str, interval: int) -> list[list[Any]]:
        """Upstox rows [ts_iso, open, high, low, close, volume, oi] of `key`, newest first: the candles complete at
        the replay clock's now (for days: the day so far), from the same tick path the socket streams."""
        now_ms = self.clock.now_ms()
        origin_ms = _ms(datetime.combine(self.day, SESSION_OPEN, IST))
        ticks = [tick for tick in self.tape.ticks(key) if tick.ltt_ms <= now_ms]
        if unit == "days":
            if not ticks:
                return []
            built = candles(ticks, interval_ms=86_400_000, origin_ms=self._day_start_ms)
        else:
            interval_ms = interval * UNIT_LIMITS[unit][2]
            built = [c for c in candles(ticks, interval_ms=interval_ms, origin_ms=origin_ms)
                     if c.start_ms + interval_ms <= now_ms]
        return [
            [_from_ms(c.start_ms).isoformat(), c.open, c.high, c.low, c.close, c.volume, 0]
            for c in reversed(built)
        ]

    # ---- WebSocket -------------------------------------------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        session = _Session(connection)
        self._sessions.add(session)
        pump: asyncio.Task[None] | None = None
        try:
            await self._send(session, self._opening_market_info())
            pump = self._spawn(self._pump(session))
            async for message in connection:
                await self._on_request(session, message)
        except ConnectionClosed:
            pass
        finally:
            if pump is not None:  # the pump (and its waits) end with the connection, also when this is cancelled
                await _cancel_and_wait({pump})
            self._sessions.discard(session)
            if self.lockstep is not None:
                self.lockstep.forget_unread()  # frames of a gone connection will never be read
                if not self._sessions and self._server is not None:
                    self._spawn(self._drive_while_disconnected(grace=not session.cut_by_fault))

    async def _drive_while_disconnected(self, *, grace: bool) -> None:
        """Lockstep without a consumer: time still moves from one clock sleeper to the next, so a client backing
        off before it reconnects is not left waiting forever; after a fault at once, otherwise after a grace period
        (a normal shutdown ends within it). A reconnecting client holds the clock (`Clock.hold`) until it is
        subscribed again. Ends when a consumer connects again or nobody sleeps on the clock."""
        assert self.lockstep is not None
        if grace:
            await asyncio.sleep(DISCONNECTED_GRACE_SECONDS)
        while not self._sessions:
            # One sleeper at a time, its deadline read once all is settled: the client's backoff sleep starts only
            # once it saw the socket go, and a consumer back on line must find time where it reconnected.
            await self.lockstep.settle()
            deadline = self.lockstep.clock.next_deadline()
            if self._sessions or deadline is None:
                return
            await self.lockstep.advance_to(deadline)

    def _opening_market_info(self) -> bytes:
        """The first frame of a connection: the current segment status (a frame file's latest market_info)."""
        now = self.clock.now()
        if isinstance(self.tape, FrameTape):
            index = bisect.bisect_right(self.tape.times, _ms(now))
            earlier = [i for i in self.tape.market_info_indexes if i < index]
            if earlier:
                return self.tape.frames[earlier[-1]][1]
        return encode_market_info(_statuses(market_status_at(now)), current_ts_ms=_ms(now))

    async def _send(self, session: _Session, data: bytes) -> None:
        if session.stalled(self.clock.now()):
            return
        await session.connection.send(data)
        if self.lockstep is not None:
            self.lockstep.frame_sent()

    async def _on_request(self, session: _Session, message: str | bytes) -> None:
        try:
            request = json.loads(message)
            method = request["method"]
            data = request.get("data") or {}
            keys = [str(key) for key in data.get("instrumentKeys") or []]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("replay: ignored a request that is not Upstox V3 JSON (%s): %.200r", exc, message)
            return
        if method == "unsub":
            for key in keys:
                session.modes.pop(key, None)
            return
        if method not in ("sub", "change_mode"):
            log.warning("replay: ignored unknown method %r", method)
            return
        try:
            mode = FeedMode(data.get("mode") or FeedMode.LTPC)
        except ValueError:
            log.warning("replay: ignored %s with unknown mode %r", method, data.get("mode"))
            return
        if method == "change_mode":
            keys = [key for key in keys if key in session.modes]
        if not self._within_limits(session, keys, mode):
            return
        await self.preload(keys)  # reading Parquet blocks: keep the event loop (and other connections) running
        known = [key for key in keys if self.tape.knows(key)]
        if len(known) < len(keys):
            log.warning("replay: no data for %s", sorted(set(keys) - set(known)))
        for key in keys:  # unknown keys too: they count against the limits, as at Upstox
            session.modes[key] = mode
        if isinstance(self.tape, BarTape) and known:
            await self._send_snapshot(session, known)
        session.wake.set()

    def _within_limits(self, session: _Session, keys: list[str], mode: FeedMode) -> bool:
        """Upstox's per-mode key limits (`engine.feed.limits`) on the connection's would-be subscriptions. A request
        that breaks one is refused whole: no key of it is added or moved, nothing is truncated, the keys subscribed
        before keep streaming. Refusals are logged and kept in `refused`."""
        planned = {**session.modes, **dict.fromkeys(keys, mode)}
        by_mode: dict[str, list[str]] = {}
        for key, key_mode in planned.items():
            by_mode.setdefault(key_mode.value, []).append(key)
        try:
            check_limits(by_mode, self.limits)
        except SubscriptionLimitError as exc:
            self.refused.append((self.clock.now(), str(exc)))
            log.warning("replay: refused a %s request for %d key(s): %s", mode.value, len(keys), exc)
            return False
        return True

    async def _send_snapshot(self, session: _Session, keys: Iterable[str]) -> None:
        assert isinstance(self.tape, BarTape)
        now_ms = self.clock.now_ms()
        ticks = [tick for key in keys if (tick := self.tape.latest(key, now_ms)) is not None]
        if not ticks:
            return
        for tick in ticks:
            session.last_sent[tick.instrument_key] = max(session.last_sent.get(tick.instrument_key, 0), tick.ltt_ms)
        await self._send(session, self._encode(session, ticks, FrameKind.INITIAL_FEED, now_ms))

    def _encode(self, session: _Session, ticks: list[Tick], kind: FrameKind, now_ms: int) -> bytes:
        # Serialized protobuf messages concatenate into their merge, so one frame may mix modes.
        by_mode: dict[FeedMode, list[Tick]] = {}
        for tick in ticks:
            by_mode.setdefault(session.modes.get(tick.instrument_key, FeedMode.LTPC), []).append(tick)
        return b"".join(
            encode_ticks(group, current_ts_ms=now_ms, kind=kind, mode=mode, day_start_ms=self._day_start_ms)
            for mode, group in by_mode.items()
        )

    async def _pump(self, session: _Session) -> None:
        try:
            await self._pump_frames(session)
        except (ConnectionClosed, asyncio.CancelledError):
            raise
        except Exception:  # a bug here must not leave a silent socket: log it and close with 1011
            log.exception("replay: stream of a connection failed")
            await session.connection.close(1011, "replay server error")

    async def _pump_frames(self, session: _Session) -> None:
        """Send live frames (and market_info at boundaries) as the replay clock reaches them."""
        clock = self.clock
        status = market_status_at(clock.now())
        cursor_ms = clock.now_ms()  # everything at or before this was covered by snapshots
        frame_index = bisect.bisect_right(self.tape.times, cursor_ms) if isinstance(self.tape, FrameTape) else 0
        lockstep = self.lockstep
        while lockstep is not None and not session.modes:  # time waits for the consumer's subscription
            session.wake.clear()
            await session.wake.wait()
        while True:
            times = self.tape.times
            next_times = []
            if isinstance(self.tape, FrameTape):
                if frame_index < len(times):
                    next_times.append(times[frame_index])
            else:
                position = bisect.bisect_right(times, cursor_ms)
                if position < len(times):
                    next_times.append(times[position])
            boundary = _next_boundary(_from_ms(cursor_ms))
            if boundary is not None:
                next_times.append(_ms(boundary))
            if not next_times:
                return  # the day is over; the socket stays open until the client leaves
            target = min(next_times)
            if lockstep is not None:
                await lockstep.advance_to(_from_ms(target))
            else:
                session.wake.clear()
                await _first_of(clock.sleep_until(_from_ms(target)), session.wake.wait())
            now_ms = clock.now_ms()
            new_status = market_status_at(_from_ms(now_ms))
            if new_status is not status:
                status = new_status
                await self._send(session, encode_market_info(_statuses(status), current_ts_ms=now_ms))
            if isinstance(self.tape, FrameTape):
                while frame_index < len(times) and times[frame_index] <= now_ms:
                    await self._send(session, self.tape.frames[frame_index][1])
                    frame_index += 1
                cursor_ms = max(cursor_ms, now_ms)
                continue
            times = self.tape.times
            position = bisect.bisect_right(times, cursor_ms)
            while position < len(times) and times[position] <= now_ms:
                await self._send_step(session, times[position], now_ms)
                position += 1
            cursor_ms = max(cursor_ms, now_ms)

    async def _send_step(self, session: _Session, ltt_ms: int, now_ms: int) -> None:
        assert isinstance(self.tape, BarTape)
        ticks = []
        for key in session.modes:  # no await in this loop: the modes cannot change under it
            tick = self.tape.at(key, ltt_ms)
            if tick is not None and tick.ltt_ms > session.last_sent.get(key, 0):
                ticks.append(tick)
                session.last_sent[key] = tick.ltt_ms
        if not ticks:
            return
        await self._send(session, self._encode(session, ticks, FrameKind.LIVE_FEED, now_ms))
        faults = self.faults
        if faults.duplicate_rate:
            duplicates = [tick for tick in ticks if self._rng.random() < faults.duplicate_rate]
            if duplicates:
                await self._send(session, self._encode(session, duplicates, FrameKind.LIVE_FEED, now_ms))
        if faults.out_of_order_rate:
            late = [
                older for tick in ticks
                if self._rng.random() < faults.out_of_order_rate
                and (older := self.tape.previous(tick.instrument_key, tick.ltt_ms)) is not None
            ]
            if late:
                await self._send(session, self._encode(session, late, FrameKind.LIVE_FEED, now_ms))

    # ---- faults ----------------------------------------------------------------------------------------------
    async def _resend_latest(self, session: _Session, *, older: bool) -> None:
        """One live frame with the latest tick sent of every instrument again (a duplicate), or with the tick before
        it (`older`: out of order)."""
        if not isinstance(self.tape, BarTape):
            return
        tape = self.tape
        ticks = [
            tick for key, ltt_ms in session.last_sent.items()
            if (tick := tape.previous(key, ltt_ms) if older else tape.at(key, ltt_ms)) is not None
        ]
        if ticks:
            await self._send(session, self._encode(session, ticks, FrameKind.LIVE_FEED, self.clock.now_ms()))

    async def _fault_loop(self) -> None:
        start = self.clock.now()
        for when, kind in self.faults.schedule(self.day):
            if when < start:
                log.warning("replay: %s fault at %s is before the replay start %s; skipped", kind, when, start)
                continue
            await self.clock.sleep_until(when)
            await self.inject(kind)

    async def inject(self, kind: str) -> None:
        """Apply a fault now to every open connection: drop | stall | malformed | duplicate | out_of_order |
        reject_token."""
        now = self.clock.now()
        self.fired.append((now, kind))
        log.info("replay: injecting %s at %s into %d connection(s)", kind, now.time(), len(self._sessions))
        cuts = kind in ("drop", "reject_token")  # a stalled socket is still cut; it receives nothing else
        if any(cuts or not session.stalled(now) for session in self._sessions):
            self.injected[kind] += 1
        if kind == "reject_token":
            self._token_rejected = True
            self._codes.clear()
        for session in list(self._sessions):
            connection = session.connection
            try:
                if kind == "drop":
                    session.cut_by_fault = True
                    connection.transport.abort()
                elif kind == "stall":
                    session.cut_by_fault = True
                    if self.faults.stall_seconds is None:
                        session.stalled_forever = True
                    else:
                        session.stalled_until = now + timedelta(seconds=self.faults.stall_seconds)
                elif kind == "malformed":
                    await self._send(session, MALFORMED_FRAME)
                elif kind in ("duplicate", "out_of_order"):
                    await self._resend_latest(session, older=kind == "out_of_order")
                elif kind == "reject_token":
                    await connection.close(TOKEN_REJECTED_CLOSE_CODE, "Invalid token used to access API")
                else:
                    raise ReplayError(f"unknown fault {kind!r}")
            except ConnectionClosed:
                pass


async def _cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel `tasks` and wait until every one has finished (its exception retrieved), so none is left pending."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, Exception) and not isinstance(result, ConnectionClosed):
            log.warning("replay: a server task failed: %r", result)


async def _first_of(*awaitables: Awaitable[Any]) -> None:
    """Wait until the first of `awaitables` is done. The others are cancelled AND awaited, also when this wait is
    cancelled itself: a pending `Event.wait()` or clock sleep must not outlive its connection."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _cancel_and_wait(tasks)


def _statuses(status: MarketStatus) -> dict[str, MarketStatus]:
    return dict.fromkeys(SEGMENTS, status)


def _json(connection: ServerConnection, status: HTTPStatus, payload: Mapping[str, Any]) -> Response:
    response = connection.respond(status, json.dumps(payload))
    response.headers["Content-Type"] = "application/json"
    return response


def _error(connection: ServerConnection, status: HTTPStatus, error: Mapping[str, str]) -> Response:
    entry = {
        "errorCode": error["errorCode"], "message": error["message"], "propertyPath": None, "invalidValue": None,
        "error_code": error["errorCode"], "property_path": None, "invalid_value": None,
    }
    return _json(connection, status, {"status": "error", "errors": [entry]})


def parse_clock_times(values: Iterable[str]) -> tuple[time, ...]:
    """"HH:MM" or "HH:MM:SS" strings (replay-clock IST) → times; a clear error otherwise."""
    parsed = []
    for value in values:
        try:
            parsed.append(time.fromisoformat(value.strip()))
        except ValueError as exc:
            raise ReplayError(f"time {value!r} is not HH:MM or HH:MM:SS") from exc
    return tuple(parsed)


__all__ = [
    "BAR_MS",
    "FaultPlan",
    "ReplayError",
    "ReplayServer",
    "market_status_at",
    "parse_clock_times",
]
