"""A minimal Upstox feed stand-in for the client's own tests (no test functions here).

One `websockets` server on 127.0.0.1:0 answers the three contracts the client uses: the authorize endpoint,
the V3 market data WebSocket (binary JSON requests in, FeedResponse protobuf out, via the protocol engineer's
encoder) and the intraday candle endpoint the SDK calls. Ticks are a deterministic function of (key, second),
one per key per simulated second, so the candles are exactly what the socket streamed (or would have).
Faults are methods: drop, stall, malformed, duplicate, out_of_order, token rotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from engine.clock import Clock
from engine.feed.decoder import FrameKind, encode_market_info, encode_ticks
from engine.models import IST, MarketStatus, Tick

AUTHORIZE = "/v3/feed/market-data-feed/authorize"
FEED = "/v3/feed/market-data-feed"
CANDLES = "/v3/historical-candle/intraday/"


def stub_price(index: int, second: int) -> float:
    """Deterministic, on the 0.05 grid, wiggling enough that each minute has a distinct high and low."""
    raw = 100 + index + 3 * math.sin(second / 7 + index) + 2 * math.sin(second / 97)
    return round(round(raw / 0.05) * 0.05, 2)


def stub_volume(index: int, second: int, day_start_s: int) -> int:
    return (index + 1) * max(0, second - day_start_s + 1)


@dataclass
class StubUpstox:
    keys: list[str]
    clock: Clock
    token: str = "token-1"
    status: MarketStatus = MarketStatus.NORMAL_OPEN
    authorize_calls: list[str] = field(default_factory=list)
    candle_calls: int = 0
    connections: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: Server | None = None
    _active: set[ServerConnection] = field(default_factory=set)
    tick_seconds: int = 1  # one tick per key every this many seconds (on a grid from 09:15)
    reject_ws: bool = False  # authorize succeeds, the WebSocket handshake answers 403
    _stall_until_s: int = 0
    _outage_until_s: int = 0
    _pending: list[str] = field(default_factory=list)  # one-shot faults for the next frame
    _sends: set[asyncio.Future[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.index = {key: i for i, key in enumerate(self.keys)}
        start = self.clock.now()
        self.day_start_s = int(start.replace(hour=9, minute=15, second=0, microsecond=0).timestamp())

    # ---- lifecycle -------------------------------------------------------------------------------------------
    async def __aenter__(self) -> StubUpstox:
        self._server = await serve(self._socket, "127.0.0.1", 0, process_request=self._http, max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- the market ------------------------------------------------------------------------------------------
    def tick(self, key: str, second: int) -> Tick:
        i = self.index[key]
        return Tick(
            instrument_key=key, ltp=stub_price(i, second), ltt_ms=second * 1000, ltq=i + 1,
            volume=stub_volume(i, second, self.day_start_s), close_prev=99.0,
            day_open=stub_price(i, self.day_start_s),
        )

    def candles(self, key: str, upto_s: int) -> list[list[Any]]:
        """1-minute candles from the tick function, newest first (Upstox order), up to `upto_s` inclusive."""
        i = self.index[key]
        rows = []
        minute = self.day_start_s
        while minute <= upto_s:
            seconds = range(minute, min(minute + 60, upto_s + 1), self.tick_seconds)
            prices = [stub_price(i, s) for s in seconds]
            before = stub_volume(i, minute - self.tick_seconds, self.day_start_s)
            volume = stub_volume(i, seconds[-1], self.day_start_s) - before
            start = datetime.fromtimestamp(minute, IST).isoformat()
            rows.append([start, prices[0], max(prices), min(prices), prices[-1], volume, 0])
            minute += 60
        return rows[::-1]

    # ---- faults ----------------------------------------------------------------------------------------------
    def drop(self) -> None:
        for ws in list(self._active):
            ws.transport.abort()

    def outage(self, seconds: float) -> None:
        """Drop every connection and answer authorize with 503 for `seconds` of clock time."""
        self._outage_until_s = int(self.clock.now().timestamp() + seconds)
        self.drop()

    def stall(self, seconds: float) -> None:
        self._stall_until_s = int(self.clock.now().timestamp() + seconds)

    def inject(self, fault: str) -> None:
        assert fault in ("malformed", "duplicate", "out_of_order")
        self._pending.append(fault)

    def set_status(self, status: MarketStatus) -> None:
        self.status = status
        frame = encode_market_info({"NSE_EQ": status}, current_ts_ms=self.clock.now_ms())
        for ws in list(self._active):
            self._sends.add(asyncio.ensure_future(ws.send(frame)))

    # ---- HTTP ------------------------------------------------------------------------------------------------
    def _json(self, status: int, body: dict[str, Any]) -> Response:
        return Response(status, "OK" if status == 200 else "Error",
                        Headers({"Content-Type": "application/json"}), json.dumps(body).encode())

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urllib.parse.urlsplit(request.path)
        bearer = request.headers.get("Authorization", "")
        authorized = bearer == f"Bearer {self.token}"
        if url.path == AUTHORIZE:
            self.authorize_calls.append(bearer)
            if self.clock.now().timestamp() < self._outage_until_s:
                return self._json(503, {"status": "error"})
            if not authorized:
                return self._json(401, {"status": "error", "errors": [{"errorCode": "UDAPI100050"}]})
            uri = f"ws://127.0.0.1:{self.port}{FEED}?code=stub"
            return self._json(200, {"status": "success", "data": {"authorized_redirect_uri": uri}})
        if url.path == FEED:
            return None if authorized and not self.reject_ws else self._json(403, {"status": "error"})
        if url.path.startswith(CANDLES):
            self.candle_calls += 1
            key = urllib.parse.unquote(url.path[len(CANDLES):].split("/")[0])
            if key not in self.index:
                return self._json(400, {"status": "error"})
            rows = self.candles(key, int(self.clock.now().timestamp()))
            return self._json(200, {"status": "success", "data": {"candles": rows}})
        return self._json(404, {"status": "error"})

    # ---- WebSocket -------------------------------------------------------------------------------------------
    async def _socket(self, ws: ServerConnection) -> None:
        self.connections += 1
        self._active.add(ws)
        subscribed: set[str] = set()
        reader = asyncio.create_task(self._read(ws, subscribed))
        try:
            now_ms = self.clock.now_ms()
            await ws.send(encode_market_info({"NSE_EQ": self.status}, current_ts_ms=now_ms))
            step = self.tick_seconds
            second = int(self.clock.now().timestamp()) // step * step
            while True:
                await self.clock.sleep_until(datetime.fromtimestamp(second + step, IST))
                second += step
                if reader.done():  # the client went away: a silent (unsubscribed or stalled) loop would not notice
                    return
                if second < self._stall_until_s or not subscribed:
                    continue
                ticks = [self.tick(key, second) for key in sorted(subscribed)]
                frame = encode_ticks(ticks, current_ts_ms=second * 1000, day_start_ms=self.day_start_s * 1000)
                await ws.send(frame)
                while self._pending:
                    fault = self._pending.pop(0)
                    if fault == "malformed":
                        await ws.send(b"\xff\xfe not a protobuf \x00")
                    elif fault == "duplicate":
                        await ws.send(frame)
                    else:
                        old = [self.tick(key, second - 5 * step) for key in sorted(subscribed)]
                        await ws.send(encode_ticks(old, current_ts_ms=second * 1000, kind=FrameKind.LIVE_FEED))
        except Exception:
            pass
        finally:
            reader.cancel()
            self._active.discard(ws)

    async def _read(self, ws: ServerConnection, subscribed: set[str]) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                request = json.loads(message)
                self.requests.append(request)
                keys = request["data"]["instrumentKeys"]
                if request["method"] in ("sub", "change_mode"):
                    subscribed.update(keys)
                elif request["method"] == "unsub":
                    subscribed.difference_update(keys)
