"""A loopback server that speaks Upstox's REST contract, so autotrader can run with
`AUTOTRADER_BROKER=upstox` and no account, and tests can drive the real upstox-python-sdk.

It implements what the adapter uses, with Upstox's paths, JSON bodies, `{"status": "success",
"data": ...}` envelopes, `{"status": "error", "errors": [{"errorCode": "UDAPI...", ...}]}` bodies
and status codes, and a bearer-token check:

    POST   /v3/order/place                     PUT /v3/order/modify    DELETE /v3/order/cancel
    GET    /v2/order/retrieve-all              GET /v2/order/details   GET /v2/order/history
    GET    /v2/order/trades/get-trades-for-day GET /v2/portfolio/short-term-positions
    GET    /v2/portfolio/long-term-holdings
    POST   /v3/order/gtt/place                 PUT /v3/order/gtt/modify
    DELETE /v3/order/gtt/cancel                GET /v3/order/gtt
    GET    /v2/user/get-funds-and-margin   POST /v2/login/authorization/token   (sandbox_account.py)
    POST   /sandbox/last-price   (not Upstox: feeds a price, for a sandbox run in its own process)

Its book is the simulated exchange (`engine.sim`, the one the paper broker and the Kite sandbox
use; this module is Upstox's wire codec over it). Orders fill against the price fed with
`set_last_price` by its fill model (by default at that price, on arrival; LIMIT when marketable;
SL / SL-M remember a crossed trigger). A delivery (D) SELL needs holdings (`set_holding`) or bought
shares, as at Upstox's RMS; a refused order is `rejected` with its reason. Books are per day (on a
new day by the clock working orders expire and delivery positions move to holdings); with
`state_path` the book is kept in a JSON file across processes.
GTTs: a SINGLE GTT's ENTRY rule fires when the price crosses its trigger (ABOVE: >=, BELOW: <=,
IMMEDIATE: at once) and places a LIMIT order `market_protection` percent beyond its trigger (at the
traded price when the rule has none);
a MULTIPLE GTT arms its TARGET and STOPLOSS once the ENTRY order filled, and one cancels the
other. Error codes for business refusals other than the documented common ones (UDAPI100036
invalid input, UDAPI100050 token, UDAPI10005 rate limit, UDAPI100500 server) are illustrative.

Upstox's order rules of 2026, on its order APIs (place/modify/cancel order, GTT place/modify/cancel):
each takes at most `orders_per_second` requests per second of the clock (beyond: HTTP 429 UDAPI10005,
not acted on), and each must carry the app's Algo Name in the `X-Algo-Name` header (missing or another
name: refused with HTTP 400). `market_protection` (MARKET / SL-M orders, GTT rules) is optional, as
Upstox documents it: 0 or absent (none), up to 25 percent, or -1 (automatic: Upstox's percent for the
price band of the last or trigger price, `_AUTO_PROTECTION_BANDS`); anything else is refused.

Faults (`inject_fault`): HTTP 429, HTTP 500 (both refuse the request without acting on it), a
timeout after accepting (acts, then holds the answer until the client gave up) and a dropped
response (acts, then closes the connection without answering).
"""

from __future__ import annotations

import argparse
import enum
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from engine.brokers.loopback import JsonHandler, LoopbackListener
from engine.brokers.sim_account import SimAccount
from engine.brokers.upstox.config import (
    AUTO_MARKET_PROTECTION,
    MAX_MARKET_PROTECTION,
    UPSTOX_CAPABILITIES,
    UpstoxConfig,
    valid_market_protection,
)
from engine.brokers.upstox.execution import UpstoxBroker
from engine.brokers.upstox.sandbox_account import LOGIN_PATH, funds_route, token_answer
from engine.brokers.upstox.sandbox_errors import ApiError
from engine.brokers.upstox.sandbox_history import history_route
from engine.brokers.upstox.sandbox_holidays import HOLIDAYS_PATH, SandboxHolidays, holidays_route
from engine.clock import Clock, LiveClock
from engine.data.daybars import CandleBook
from engine.models import IST, Instrument, OrderStatus, OrderType, Product, Side, Tick
from engine.settings import DEFAULT_MARKET_PROTECTION_PCT
from engine.sim import (
    FillModel,
    GttLeg,
    OrderRateLimit,
    SimFill,
    SimGtt,
    SimOrder,
    SimulatedExchange,
    TriggerDirection,
    VenueRules,
)

_INSTRUMENT_KEY = re.compile(r"^[A-Z_]+\|[A-Za-z0-9 _\-&.]+$")
_ORDER_TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
_PRODUCTS = ("I", "D", "MTF")
_SIDES = ("BUY", "SELL")
_TRIGGER_TYPES = ("ABOVE", "BELOW", "IMMEDIATE")
ALGO_NAME_HEADER = "X-Algo-Name"
SANDBOX_ALGO_NAME = "autotrader-sandbox"  # the Algo Name the sandbox's app is registered with
# Upstox's automatic protection (`market_protection` -1) of equity orders by price: (below, percent),
# from Upstox's MPP table (community.upstox.com, "Market Price Protection (MPP) on Upstox")
_AUTO_PROTECTION_BANDS = ((50.0, 3.0), (500.0, 2.0), (10_000.0, 1.0), (math.inf, 0.5))
# Upstox's order APIs: rate-limited each on its own, and refused without the algo name
ORDER_APIS = frozenset({("POST", "/v3/order/place"), ("PUT", "/v3/order/modify"), ("DELETE", "/v3/order/cancel"),
                        ("POST", "/v3/order/gtt/place"), ("PUT", "/v3/order/gtt/modify"),
                        ("DELETE", "/v3/order/gtt/cancel")})


class Fault(enum.StrEnum):
    RATE_LIMIT = "429"
    SERVER_ERROR = "500"
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"
    DROP_RESPONSE = "drop_response"


def _invalid(path: str, value: Any, message: str) -> ApiError:
    return ApiError(400, "UDAPI100036", message, path, value)


@dataclass
class HandledRequest:
    method: str
    path: str
    port: int  # which listener served it (API host or order host)
    seconds: float = 0.0  # the server's own handling time, up to the answer leaving


@dataclass
class _FaultRule:
    method: str
    path: str
    fault: Fault | int
    remaining: int
    skip: int = 0  # matching requests to let through first


# The error an injected HTTP status answers with (documented common codes).
_STATUS_ERRORS = {
    400: ("UDAPI100036", "Invalid Input"),
    401: ("UDAPI100050", "Invalid token used to access API"),
    403: ("UDAPI100050", "Invalid token used to access API"),
    404: ("UDAPI10000", "This request is not supported by Upstox API"),
    429: ("UDAPI10005", "Too Many Request Sent"),
}


def status_error(status: int) -> ApiError:
    fallback = ("UDAPI100500", "Something went wrong... please contact us") if status >= 500 else _STATUS_ERRORS[400]
    code, message = _STATUS_ERRORS.get(status, fallback)
    return ApiError(status, code, message)

_UPSTOX_STATUS = {OrderStatus.FILLED: "complete", OrderStatus.CANCELLED: "cancelled", OrderStatus.REJECTED: "rejected"}
# Upstox moves delivery buys to holdings overnight; the order and trade books are per day
UPSTOX_RULES = VenueRules(daily_books=True, insufficient_holdings_message="Insufficient holdings:",
                          market_protection_message="Market protection is required for MARKET and SL-M orders",
                          rate_limit_message="Too Many Request Sent")


class UpstoxSandbox:
    """The server and Upstox's wire codec over its book, a `SimulatedExchange` keyed by instrument
    key. Thread-safe; start/stop it or use it as a context manager."""

    def __init__(
        self,
        *,
        access_token: str = "sandbox-token",
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        hold_seconds: float = 30.0,
        symbols: dict[str, str] | None = None,
        fill_model: FillModel | None = None,
        rules: VenueRules = UPSTOX_RULES,
        instruments: Iterable[Instrument] = (),
        state_path: Path | None = None,
        algo_name: str | None = SANDBOX_ALGO_NAME,
        orders_per_second: float | None = UPSTOX_CAPABILITIES.orders_per_second,
    ) -> None:
        """`algo_name`: the X-Algo-Name every order request must carry (None: not checked);
        `orders_per_second`: the limit of each order API (None: unlimited)."""
        self.access_token = access_token
        self.algo_name = algo_name
        self.orders_per_second = orders_per_second
        self._order_rates: dict[tuple[str, str], OrderRateLimit] = {}
        self.symbols = dict(symbols or {})  # instrument key → trading symbol shown in answers
        self.clock = clock or LiveClock()
        self.hold_seconds = hold_seconds  # how long a "timeout after accept" answer is held back
        self._address = (host, port)
        self._lock = threading.RLock()
        self._release = threading.Event()
        self._listeners: list[LoopbackListener] = []
        self._faults: list[_FaultRule] = []
        self.account = SimAccount()  # cash, login codes
        self.holidays = SandboxHolidays()  # the shipped calendar until a test changes it
        self.history = CandleBook()  # daily candles (sandbox_history.py), empty until a test fills it
        self.exchange = SimulatedExchange(
            self.clock, fill_model=fill_model, rules=rules, instruments=instruments, delivery_products=("D",),
            order_id=lambda sequence, now: f"{now.astimezone(IST):%y%m%d}{sequence:09d}",
            gtt_id=lambda sequence, now: f"GTT-C{now.astimezone(IST):%y%m%d}{sequence:09d}")
        self._order_fields: dict[str, dict[str, Any]] = {}  # order id → what the request said beyond the exchange's
        self._gtt_fields: dict[str, dict[str, Any]] = {}  # gtt id → type and each rule's trigger_type, extras
        self.state_path = state_path
        if state_path is not None and state_path.exists():
            saved = json.loads(state_path.read_text())
            self.exchange.restore(saved["exchange"])
            self._order_fields, self._gtt_fields = saved["order_fields"], saved["gtt_fields"]
        self.request_log: list[HandledRequest] = []

    # --- lifecycle ---
    @property
    def url(self) -> str:
        """The first listener's URL (serves every path, like both Upstox hosts in one)."""
        if not self._listeners:
            raise RuntimeError("the Upstox sandbox is not running; call start() first")
        return self._listeners[0].url

    def config(self, order_url: str | None = None, **settings: Any) -> UpstoxConfig:
        """The adapter's configuration for this sandbox: its token and algo name, both hosts on it
        (the order host on `order_url`, e.g. from `listen()`, else the first port), plus `settings`."""
        settings.setdefault("access_token", self.access_token)
        settings.setdefault("algo_name", self.algo_name)
        return UpstoxConfig(api_url=self.url, order_url=order_url or self.url, **settings)

    def start(self) -> UpstoxSandbox:
        if not self._listeners:
            self._release.clear()
            self.listen()
        return self

    def listen(self) -> str:
        """Open one more port on the same book (e.g. a separate "order host"); returns its URL."""
        host, port = self._address
        listener = LoopbackListener(_make_handler(self), host=host, port=port if not self._listeners else 0,
                                    name="upstox-sandbox")
        self._listeners.append(listener)
        return listener.url

    def stop(self) -> None:
        self._release.set()  # frees handlers holding back a "timed out" answer
        for listener in self._listeners:
            listener.stop()
        self._listeners = []

    def __enter__(self) -> UpstoxSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test and feed controls ---
    def inject_fault(self, method: str, path: str, fault: Fault | str | int, times: int = 1, *, after: int = 0) -> None:
        """`times` requests to `method path`, after letting `after` through, meet `fault`: a `Fault`,
        or an HTTP error status (answered with Upstox's error body for it, the request not acted on)."""
        kind: Fault | int = fault if isinstance(fault, int) else Fault(fault)
        with self._lock:
            self._faults.append(_FaultRule(method.upper(), path, kind, times, after))

    def set_holding(self, instrument_key: str, quantity: int, average_price: float = 0.0) -> None:
        """Shares held from earlier days (what a delivery SELL may sell)."""
        with self._lock:
            self.exchange.set_holding(instrument_key, "D", quantity, average_price)

    def set_last_price(self, instrument_key: str, price: float, *, at_ms: int | None = None) -> None:
        """A new traded price (traded at `at_ms`, when known): fills marketable orders and fires GTT rules it
        crosses."""
        with self._lock:
            revision = self.exchange.revision
            self.exchange.on_price(instrument_key, price, at_ms=at_ms)
            if self.exchange.revision != revision:  # a price alone is not saved
                self._save()

    # --- the book, as Upstox rows ---
    @property
    def last_prices(self) -> dict[str, float]:
        return {key: core.last_price for key, core in self.exchange.cores.items() if core.last_price is not None}

    @property
    def holdings(self) -> dict[str, tuple[int, float]]:
        """instrument key → (quantity, average price) of the delivery holdings."""
        return {key: (h.quantity, h.average_price) for (key, product), h in self.exchange.holdings.items()
                if product == "D"}

    @property
    def orders(self) -> dict[str, dict[str, Any]]:
        """order id → order book row."""
        return {order.order_id: self._order_row(order) for order in self.exchange.orders.values()}

    @property
    def trades(self) -> list[dict[str, Any]]:
        """The trade book, in fill order; an order's later partial fills are numbered from 2."""
        parts: dict[str, int] = {}
        rows = []
        for fill in self.exchange.fills:
            parts[fill.order_id] = part = parts.get(fill.order_id, 0) + 1
            rows.append(self._trade_row(fill, part))
        return rows

    @property
    def gtts(self) -> dict[str, dict[str, Any]]:
        """gtt id → GTT details row."""
        return {gtt.gtt_id: self._gtt_row(gtt) for gtt in self.exchange.gtts.values()}

    def _save(self) -> None:
        """With `state_path`, the book survives the process (a replayed week runs day by day)."""
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".tmp")
        state = {"exchange": self.exchange.snapshot(), "order_fields": self._order_fields,
                 "gtt_fields": self._gtt_fields}
        temporary.write_text(json.dumps(state, default=str))
        temporary.replace(self.state_path)

    def orders_tagged(self, tag: str) -> list[dict[str, Any]]:
        with self._lock:
            return [row for row in self.orders.values() if row["tag"] == tag]

    def calls(self, method: str, path: str, *, url: str | None = None) -> int:
        """How many `method path` requests arrived (at the listener of `url`, if given)."""
        port = int(url.rsplit(":", 1)[1]) if url else None
        with self._lock:
            return sum(
                1
                for entry in self.request_log
                if (entry.method, entry.path) == (method.upper(), path) and port in (None, entry.port)
            )

    # --- request handling (called by the handler threads) ---
    def take_fault(self, method: str, path: str) -> Fault | int | None:
        with self._lock:
            for rule in self._faults:
                if rule.remaining > 0 and rule.method == method and rule.path == path:
                    if rule.skip > 0:
                        rule.skip -= 1
                        continue
                    rule.remaining -= 1
                    return rule.fault
        return None

    def hold_answer(self) -> None:
        self._release.wait(self.hold_seconds)

    def check_token(self, authorization: str | None) -> None:
        if authorization != f"Bearer {self.access_token}":
            raise ApiError(401, "UDAPI100050", "Invalid token used to access API")

    def check_order_api(self, method: str, path: str, algo_name: str | None) -> None:
        """Upstox's rules for an order API request (module docstring): the rate limit first, as
        Upstox's gateway counts every request, then the algo name."""
        if (method, path) not in ORDER_APIS:
            return
        if self.orders_per_second is not None:
            with self._lock:
                rate = self._order_rates.setdefault((method, path), OrderRateLimit(self.orders_per_second))
                if not rate.allow(self.clock.now()):
                    raise status_error(429)
        if self.algo_name is not None and algo_name != self.algo_name:
            # the code is illustrative: Upstox documents the rule, not its error code
            raise ApiError(400, "UDAPI100600", f"Orders from an algo app must carry the {ALGO_NAME_HEADER} header "
                           "with the app's configured Algo Name", ALGO_NAME_HEADER, algo_name)

    def record(self, method: str, path: str, port: int) -> HandledRequest:
        entry = HandledRequest(method, path, port)
        with self._lock:
            self.request_log.append(entry)
        return entry

    def dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        with self._lock:
            route = (_ROUTES.get((method, path)) or holidays_route(method, path) or funds_route(method, path)
                     or history_route(method, path))
            if route is None:
                raise ApiError(404, "UDAPI10000", "This request is not supported by Upstox API")
            self.exchange.roll_day()
            try:
                return route(self, query, body)
            finally:
                if method != "GET":
                    self._save()

    # --- helpers ---
    @staticmethod
    def _time(moment: datetime | None) -> str | None:
        return moment.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S") if moment is not None else None

    @staticmethod
    def _us(moment: datetime) -> int:
        return int(moment.timestamp() * 1_000_000)

    def _symbol(self, key: str) -> str:
        return self.symbols.get(key) or key.split("|", 1)[1]

    # --- wire codec: exchange objects as Upstox rows ---
    def _new_order(self, fields: dict[str, Any], *, tag: str | None) -> SimOrder:
        order = self.exchange.place_order(
            fields["instrument_token"], Side(fields["transaction_type"]), int(fields["quantity"]),
            OrderType(fields["order_type"]), fields["product"], price=float(fields.get("price") or 0.0) or None,
            trigger_price=float(fields.get("trigger_price") or 0.0) or None,
            market_protection=_protection(fields.get("market_protection"), self._reference_price(fields)), tag=tag)
        self._order_fields[order.order_id] = {"validity": fields.get("validity", "DAY"),
                                              "disclosed_quantity": int(fields.get("disclosed_quantity") or 0)}
        return order

    def _reference_price(self, fields: dict[str, Any]) -> float | None:
        """The price Upstox's automatic protection is taken from: an SL-M's trigger, else the last price."""
        if fields["order_type"] == "SL-M":
            return float(fields["trigger_price"])
        return self.last_prices.get(fields["instrument_token"])

    def _order_row(self, order: SimOrder) -> dict[str, Any]:
        key = order.instrument_key
        symbol = self._symbol(key)
        extra = self._order_fields.get(order.order_id, {})
        status = _UPSTOX_STATUS.get(order.status, "trigger pending" if order.trigger_pending else "open")
        message = order.reason if order.status is OrderStatus.REJECTED else None
        filled = self._time(order.updated_at) if order.filled_quantity else None
        return {
            "exchange": key.split("_", 1)[0],
            "product": order.product,
            "price": order.price or 0.0,
            "quantity": order.quantity,
            "status": status,
            "guid": None,
            "tag": order.tag,
            "instrument_token": key,
            "placed_by": "SANDBOX",
            "trading_symbol": symbol,
            "tradingsymbol": symbol,
            "order_type": order.order_type.value,
            "validity": extra.get("validity", "DAY"),
            "trigger_price": order.trigger_price or 0.0,
            "disclosed_quantity": extra.get("disclosed_quantity", 0),
            "transaction_type": order.side.value,
            "average_price": order.average_price,
            "filled_quantity": order.filled_quantity,
            "pending_quantity": order.pending_quantity,
            "status_message": message,
            "status_message_raw": message,
            "exchange_order_id": f"1{order.order_id}" if order.filled_quantity else None,
            "parent_order_id": None,
            "order_id": order.order_id,
            "variety": "SIMPLE",
            "order_timestamp": self._time(order.placed_at),
            "exchange_timestamp": filled,
            "is_amo": False,
            "order_request_id": "1",
            "order_ref_id": order.gtt_id,
        }

    def _trade_row(self, fill: SimFill, part: int) -> dict[str, Any]:
        order = self.exchange.orders[fill.order_id]
        symbol = self._symbol(fill.instrument_key)
        return {
            "exchange": fill.instrument_key.split("_", 1)[0],
            "product": fill.product,
            "trading_symbol": symbol,
            "tradingsymbol": symbol,
            "instrument_token": fill.instrument_key,
            "order_type": order.order_type.value,
            "transaction_type": fill.side.value,
            "quantity": fill.quantity,
            "exchange_order_id": f"1{fill.order_id}",
            "order_id": fill.order_id,
            "exchange_timestamp": self._time(fill.ts),
            "average_price": fill.price,
            "trade_id": f"T{fill.order_id}" + (f"-{part}" if part > 1 else ""),  # T<order id>-<n>: later partials
            "order_ref_id": order.gtt_id,
            "order_timestamp": self._time(order.placed_at),
        }

    def _gtt_row(self, gtt: SimGtt) -> dict[str, Any]:
        extra = self._gtt_fields[gtt.gtt_id]
        rules = [
            {
                "strategy": leg.name,
                "status": leg.state.value,
                "message": leg.message,
                "trigger_type": extra["trigger_types"][leg.name],
                "trigger_price": leg.trigger_price,
                "transaction_type": leg.side.value,
                "order_id": leg.order_id,
                "trailing_gap": extra["trailing_gaps"].get(leg.name),
            }
            for leg in gtt.legs
        ]
        return {
            "type": extra["type"],
            "exchange": gtt.instrument_key.split("|", 1)[0],
            "quantity": gtt.quantity,
            "product": gtt.product,
            "rules": rules,
            "trading_symbol": self._symbol(gtt.instrument_key),
            "instrument_token": gtt.instrument_key,
            "gtt_order_id": gtt.gtt_id,
            "expires_at": self._us(gtt.created_at) + 365 * 86_400 * 1_000_000,
            "created_at": self._us(gtt.created_at),
        }

    @staticmethod
    def _leg(rule: dict[str, Any], entry_side: Side) -> GttLeg:
        """A rule as an exchange GTT leg. ENTRY fires by its trigger_type; the exits of a BUY entry
        sell (TARGET at or above, STOPLOSS at or below its trigger), of a SELL entry buy back. The
        leg's LIMIT is `market_protection` percent beyond the trigger (worse for us, so it stays
        marketable), or the traded price itself when the rule has none."""
        strategy = rule["strategy"]
        side = entry_side if strategy == "ENTRY" else entry_side.opposite
        if strategy == "ENTRY":
            direction = TriggerDirection(rule["trigger_type"])
        else:
            rises = (strategy == "TARGET") == (entry_side is Side.BUY)
            direction = TriggerDirection.ABOVE if rises else TriggerDirection.BELOW
        trigger = float(rule["trigger_price"])
        protection = _protection(rule.get("market_protection"), trigger) or 0.0
        limit = None
        if protection:
            sell = side is Side.SELL
            raw = trigger * (1 - protection / 100 if sell else 1 + protection / 100)
            ticks = math.floor(raw / 0.05 + 1e-9) if sell else math.ceil(raw / 0.05 - 1e-9)
            limit = round(ticks * 0.05, 2)
        return GttLeg(strategy, direction, trigger, side, limit)

    def _check_rules(self, gtt_type: Any, rules: Any, key: str) -> list[dict[str, Any]]:
        if gtt_type not in ("SINGLE", "MULTIPLE"):
            raise _invalid("type", gtt_type, "type must be SINGLE or MULTIPLE")
        if not isinstance(rules, list) or not rules or len(rules) > 3:
            raise _invalid("rules", rules, "rules must hold one to three rules")
        strategies = [r.get("strategy") if isinstance(r, dict) else None for r in rules]
        if strategies.count("ENTRY") != 1 or len(set(strategies)) != len(strategies):
            raise _invalid("rules", strategies, "exactly one ENTRY rule and no duplicate strategies are allowed")
        if any(s not in ("ENTRY", "TARGET", "STOPLOSS") for s in strategies):
            raise _invalid("rules[].strategy", strategies, "strategy must be ENTRY, TARGET or STOPLOSS")
        if (gtt_type == "SINGLE") != (len(rules) == 1):
            raise _invalid("type", gtt_type, "a SINGLE GTT has one rule, a MULTIPLE GTT two or three")
        ordered = sorted(rules, key=lambda r: ("ENTRY", "TARGET", "STOPLOSS").index(r["strategy"]))
        price = self.last_prices.get(key)
        for rule in ordered:
            if rule.get("trigger_type") not in _TRIGGER_TYPES:
                raise _invalid(
                    "rules[].trigger_type", rule.get("trigger_type"), "trigger_type must be ABOVE, BELOW or IMMEDIATE"
                )
            trigger = rule.get("trigger_price")
            if not isinstance(trigger, int | float) or trigger <= 0:
                raise _invalid("rules[].trigger_price", trigger, "trigger_price must be a positive number")
            _check_market_protection("rules[].market_protection", rule.get("market_protection"))
            if rule["strategy"] == "ENTRY" and price is not None:
                if rule["trigger_type"] == "ABOVE" and trigger <= price:
                    raise _invalid("rules[].trigger_price", trigger, f"trigger price must be above the LTP {price}")
                if rule["trigger_type"] == "BELOW" and trigger >= price:
                    raise _invalid("rules[].trigger_price", trigger, f"trigger price must be below the LTP {price}")
        return ordered

    def _gtt(self, gtt_id: Any) -> SimGtt:
        gtt = self.exchange.gtts.get(str(gtt_id))
        if gtt is None:
            raise ApiError(400, "UDAPI1126", f"GTT order {gtt_id} not found", "gtt_order_id", gtt_id)
        return gtt

    # --- routes ---
    def _place_order(self, query: dict[str, str], body: Any) -> Any:
        fields = _require(
            body,
            (
                "quantity",
                "product",
                "validity",
                "price",
                "instrument_token",
                "order_type",
                "transaction_type",
                "disclosed_quantity",
                "trigger_price",
                "is_amo",
            ),
        )
        _check_order_fields(fields)
        _check_market_protection("market_protection", fields.get("market_protection"))
        tag = fields.get("tag")
        if tag is not None and (not isinstance(tag, str) or len(tag) > 40):
            raise _invalid("tag", tag, "tag must be a string of at most 40 characters")
        order = self._new_order(fields, tag=tag)
        return {"order_ids": [order.order_id]}

    def _modify_order(self, query: dict[str, str], body: Any) -> Any:
        fields = _require(body, ("order_id", "order_type", "validity", "price", "trigger_price"))
        order = self._order(fields["order_id"])
        if not order.is_working:
            raise ApiError(400, "UDAPI100040", f"Order cannot be modified as it is in {self._status(order)} state")
        if body.get("validity") is not None:
            self._order_fields.setdefault(order.order_id, {})["validity"] = body["validity"]
        quantity, price, trigger = body.get("quantity"), body.get("price"), body.get("trigger_price")
        self.exchange.modify_order(
            order.order_id, quantity=int(quantity) if quantity is not None else None,
            price=float(price) if price is not None else None,
            trigger_price=float(trigger) if trigger is not None else None,
            order_type=OrderType(body["order_type"]) if body.get("order_type") in _ORDER_TYPES else None)
        return {"order_id": order.order_id}

    def _order(self, order_id: Any) -> SimOrder:
        order = self.exchange.orders.get(str(order_id))
        if order is None:
            raise ApiError(400, "UDAPI100010", f"Order {order_id} not found", "order_id", order_id)
        return order

    def _status(self, order: SimOrder) -> str:
        return str(self._order_row(order)["status"])

    def _cancel_order(self, query: dict[str, str], body: Any) -> Any:
        order = self._order(query.get("order_id"))
        if not order.is_working:
            raise ApiError(400, "UDAPI100040", f"Order cannot be cancelled as it is in {self._status(order)} state")
        self.exchange.cancel_order(order.order_id)
        return {"order_id": order.order_id}

    def _order_book(self, query: dict[str, str], body: Any) -> Any:
        return list(self.orders.values())

    def _order_details(self, query: dict[str, str], body: Any) -> Any:
        return self._order_row(self._order(query.get("order_id")))

    def _order_history(self, query: dict[str, str], body: Any) -> Any:
        rows = [
            row
            for row in self.orders.values()
            if (not query.get("order_id") or row["order_id"] == query["order_id"])
            and (not query.get("tag") or row["tag"] == query["tag"])
        ]
        if not rows:
            raise ApiError(400, "UDAPI100010", "Order not found", "order_id", query.get("order_id"))
        return rows

    def _trades(self, query: dict[str, str], body: Any) -> Any:
        return self.trades

    def _positions(self, query: dict[str, str], body: Any) -> Any:
        rows = []
        by_position: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for trade in self.trades:
            by_position.setdefault((trade["instrument_token"], trade["product"]), []).append(trade)
        last_prices = self.last_prices
        for (key, product), mine in sorted(by_position.items()):
            buys = [t for t in mine if t["transaction_type"] == "BUY"]
            sells = [t for t in mine if t["transaction_type"] == "SELL"]
            buy_qty = sum(t["quantity"] for t in buys)
            sell_qty = sum(t["quantity"] for t in sells)
            buy_value = sum(t["quantity"] * t["average_price"] for t in buys)
            sell_value = sum(t["quantity"] * t["average_price"] for t in sells)
            buy_price = buy_value / buy_qty if buy_qty else 0.0
            sell_price = sell_value / sell_qty if sell_qty else 0.0
            last = last_prices.get(key, 0.0)
            quantity = buy_qty - sell_qty
            realised = min(buy_qty, sell_qty) * (sell_price - buy_price) if buy_qty and sell_qty else 0.0
            average = buy_price if quantity > 0 else sell_price if quantity < 0 else 0.0
            unrealised = quantity * (last - average) if quantity else 0.0
            symbol = self._symbol(key)
            rows.append(
                {
                    "exchange": key.split("_", 1)[0],
                    "multiplier": 1.0,
                    "value": round(sell_value - buy_value, 2),
                    "pnl": round(realised + unrealised, 2),
                    "product": product,
                    "instrument_token": key,
                    "average_price": round(average, 4),
                    "buy_value": round(buy_value, 2),
                    "overnight_quantity": 0,
                    "day_buy_value": round(buy_value, 2),
                    "day_buy_price": round(buy_price, 4),
                    "overnight_buy_amount": 0.0,
                    "overnight_buy_quantity": 0,
                    "day_buy_quantity": buy_qty,
                    "day_sell_value": round(sell_value, 2),
                    "day_sell_price": round(sell_price, 4),
                    "overnight_sell_amount": 0.0,
                    "overnight_sell_quantity": 0,
                    "day_sell_quantity": sell_qty,
                    "quantity": quantity,
                    "last_price": last,
                    "unrealised": round(unrealised, 2),
                    "realised": round(realised, 2),
                    "sell_value": round(sell_value, 2),
                    "trading_symbol": symbol,
                    "tradingsymbol": symbol,
                    "close_price": last,
                    "buy_price": round(buy_price, 4),
                    "sell_price": round(sell_price, 4),
                }
            )
        return rows

    def _holdings(self, query: dict[str, str], body: Any) -> Any:
        """Holdings keep their quantity through the day; today's delivery sells of them show in
        `cnc_used_quantity` here and as negative short-term positions."""
        rows = []
        sold_today: dict[str, int] = {}
        for trade in self.trades:
            if trade["product"] == "D" and trade["transaction_type"] == "SELL":
                sold_today[trade["instrument_token"]] = sold_today.get(trade["instrument_token"], 0) + trade["quantity"]
        last_prices = self.last_prices
        for key, (quantity, average) in self.holdings.items():
            sold = sold_today.get(key, 0)
            last = last_prices.get(key, average)
            symbol = self._symbol(key)
            rows.append(
                {
                    "isin": key.split("|", 1)[1],
                    "cnc_used_quantity": min(sold, quantity),
                    "collateral_type": "WC",
                    "company_name": symbol,
                    "haircut": 0.2,
                    "product": "D",
                    "quantity": quantity,
                    "trading_symbol": symbol,
                    "tradingsymbol": symbol,
                    "last_price": last,
                    "close_price": last,
                    "pnl": round(quantity * (last - average), 2),
                    "day_change": 0.0,
                    "day_change_percentage": 0.0,
                    "instrument_token": key,
                    "average_price": average,
                    "collateral_quantity": 0,
                    "collateral_update_quantity": 0,
                    "t1_quantity": 0,
                    "exchange": key.split("_", 1)[0],
                }
            )
        return rows

    def _place_gtt(self, query: dict[str, str], body: Any) -> Any:
        fields = _require(body, ("type", "quantity", "product", "rules", "instrument_token", "transaction_type"))
        _check_order_fields({**fields, "order_type": "LIMIT", "price": 1.0, "validity": "DAY"})
        key = fields["instrument_token"]
        side = Side(fields["transaction_type"])
        rules = self._check_rules(fields["type"], fields["rules"], key)
        gtt = self.exchange.place_gtt(key, int(fields["quantity"]), fields["product"],
                                      [self._leg(rule, side) for rule in rules], has_entry=len(rules) > 1)
        self._gtt_fields[gtt.gtt_id] = {
            "type": fields["type"],
            "trigger_types": {rule["strategy"]: rule["trigger_type"] for rule in rules},
            "trailing_gaps": {rule["strategy"]: rule.get("trailing_gap") for rule in rules},
        }
        return {"gtt_order_ids": [gtt.gtt_id]}

    def _modify_gtt(self, query: dict[str, str], body: Any) -> Any:
        fields = _require(body, ("type", "quantity", "rules", "gtt_order_id"))
        gtt = self._gtt(fields["gtt_order_id"])
        extra = self._gtt_fields[gtt.gtt_id]
        if extra["type"] != fields["type"]:
            raise _invalid("type", fields["type"], f"GTT {gtt.gtt_id} is of type {extra['type']}")
        if not gtt.active:
            raise ApiError(400, "UDAPI1127", f"GTT {gtt.gtt_id} is no longer active and cannot be modified")
        if not isinstance(fields["quantity"], int) or fields["quantity"] <= 0:
            raise _invalid("quantity", fields["quantity"], "quantity must be a positive integer")
        by_strategy = {leg.name: leg for leg in gtt.legs}
        entry_side = gtt.legs[0].side
        changed: dict[str, tuple[float, float | None]] = {}
        for rule in self._check_rules(fields["type"], fields["rules"], gtt.instrument_key):
            mine = by_strategy.get(rule["strategy"])
            if mine is None:
                raise _invalid("rules[].strategy", rule["strategy"], "a modify cannot add a strategy")
            if mine.state.waiting:
                leg = self._leg(rule, entry_side)
                mine.direction = leg.direction
                changed[leg.name] = (leg.trigger_price, leg.limit_price)
                extra["trigger_types"][leg.name] = rule["trigger_type"]
        self.exchange.modify_gtt(gtt.gtt_id, quantity=fields["quantity"], legs=changed)
        return {"gtt_order_ids": [gtt.gtt_id]}

    def _cancel_gtt(self, query: dict[str, str], body: Any) -> Any:
        fields = _require(body, ("gtt_order_id",))
        gtt = self._gtt(fields["gtt_order_id"])
        if not gtt.active:
            raise ApiError(400, "UDAPI1127", f"GTT {gtt.gtt_id} is no longer active and cannot be cancelled")
        self.exchange.cancel_gtt(gtt.gtt_id)
        return {"gtt_order_ids": [gtt.gtt_id]}

    def _gtt_details(self, query: dict[str, str], body: Any) -> Any:
        if query.get("gtt_order_id"):
            return [self._gtt_row(self._gtt(query["gtt_order_id"]))]
        return list(self.gtts.values())

    def _feed_price(self, query: dict[str, str], body: Any) -> Any:
        fields = _require(body, ("instrument_key", "price"))
        self.exchange.on_price(fields["instrument_key"], float(fields["price"]))
        return {}


def _protection(value: Any, reference: float | None) -> float | None:
    """The percent a (validated) `market_protection` applies: None when absent or 0; for -1, Upstox's
    automatic percent for the `reference` price (the last price, or the trigger of a triggered order)."""
    if not value:
        return None
    if value != AUTO_MARKET_PROTECTION:
        return float(value)
    if reference is None:
        return None
    return next(percent for below, percent in _AUTO_PROTECTION_BANDS if reference < below)


def _check_market_protection(path: str, value: Any) -> None:
    """Upstox's range for `market_protection` (absent is fine: it is optional)."""
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not valid_market_protection(value):
        raise _invalid(path, value, f"market_protection must be {AUTO_MARKET_PROTECTION:g} (automatic) "
                                    f"or from 0 to {MAX_MARKET_PROTECTION:g} percent")


def _require(body: Any, names: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _invalid("body", None, "the request body must be a JSON object")
    for name in names:
        if body.get(name) is None:
            raise _invalid(name, None, f"{name} is required")
    return body


def _check_order_fields(fields: dict[str, Any]) -> None:
    quantity = fields["quantity"]
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
        raise _invalid("quantity", quantity, "quantity must be a positive integer")
    checks = (
        ("product", _PRODUCTS),
        ("order_type", _ORDER_TYPES),
        ("transaction_type", _SIDES),
        ("validity", ("DAY", "IOC")),
    )
    for name, allowed in checks:
        if fields[name] not in allowed:
            raise _invalid(name, fields[name], f"{name} must be one of {', '.join(allowed)}")
    if not isinstance(fields["instrument_token"], str) or not _INSTRUMENT_KEY.match(fields["instrument_token"]):
        raise _invalid("instrument_token", fields["instrument_token"], "invalid instrument_token")
    if fields["order_type"] in ("LIMIT", "SL") and not fields.get("price"):
        raise _invalid("price", fields.get("price"), "price is required for LIMIT and SL orders")
    if fields["order_type"] in ("SL", "SL-M") and not fields.get("trigger_price"):
        raise _invalid("trigger_price", fields.get("trigger_price"), "trigger_price is required for SL orders")


_ROUTES = {
    ("POST", "/v3/order/place"): UpstoxSandbox._place_order,
    ("PUT", "/v3/order/modify"): UpstoxSandbox._modify_order,
    ("DELETE", "/v3/order/cancel"): UpstoxSandbox._cancel_order,
    ("GET", "/v2/order/retrieve-all"): UpstoxSandbox._order_book,
    ("GET", "/v2/order/details"): UpstoxSandbox._order_details,
    ("GET", "/v2/order/history"): UpstoxSandbox._order_history,
    ("GET", "/v2/order/trades/get-trades-for-day"): UpstoxSandbox._trades,
    ("GET", "/v2/portfolio/short-term-positions"): UpstoxSandbox._positions,
    ("GET", "/v2/portfolio/long-term-holdings"): UpstoxSandbox._holdings,
    ("POST", "/v3/order/gtt/place"): UpstoxSandbox._place_gtt,
    ("PUT", "/v3/order/gtt/modify"): UpstoxSandbox._modify_gtt,
    ("DELETE", "/v3/order/gtt/cancel"): UpstoxSandbox._cancel_gtt,
    ("GET", "/v3/order/gtt"): UpstoxSandbox._gtt_details,
    ("POST", "/sandbox/last-price"): UpstoxSandbox._feed_price,
}


def _make_handler(sandbox: UpstoxSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def _handle(self) -> None:
            url = urlparse(self.path)
            method = self.command
            query = {name: values[-1] for name, values in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            started = time.perf_counter()
            entry = sandbox.record(method, url.path, int(self.connection.getsockname()[1]))
            fault = sandbox.take_fault(method, url.path)
            if fault in (Fault.RATE_LIMIT, Fault.SERVER_ERROR) or isinstance(fault, int):
                status = int(fault)
                data = json.dumps(status_error(status).body()).encode()
                entry.seconds = time.perf_counter() - started
                self.send_json(status, data)
                return
            if (method, url.path) == ("POST", LOGIN_PATH):  # form-encoded, no token, answered without an envelope
                status, answer = token_answer(sandbox, raw)
                entry.seconds = time.perf_counter() - started
                self.send_json(status, json.dumps(answer).encode())
                return
            try:
                if not url.path.startswith(("/sandbox/", HOLIDAYS_PATH)):  # holidays are public
                    sandbox.check_token(self.headers.get("Authorization"))
                sandbox.check_order_api(method, url.path, self.headers.get(ALGO_NAME_HEADER))
                try:
                    body = json.loads(raw) if raw.strip() else None
                except ValueError:
                    raise _invalid("body", None, "the request body is not valid JSON") from None
                status, payload = (
                    200,
                    {
                        "status": "success",
                        "data": sandbox.dispatch(method, url.path, query, body),
                    },
                )
                if url.path.startswith("/v3/"):
                    payload["metadata"] = {"latency": 1}
            except ApiError as error:
                status, payload = error.status, error.body()
            data = json.dumps(payload).encode()
            entry.seconds = time.perf_counter() - started
            if fault is Fault.DROP_RESPONSE:
                self.close_connection = True
                return
            if fault is Fault.TIMEOUT_AFTER_ACCEPT:
                sandbox.hold_answer()
                self.close_connection = True
            try:
                self.send_json(status, data)
            except OSError:  # the client gave up waiting
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return Handler


class SandboxUpstoxBroker(UpstoxBroker):
    """The real Upstox adapter (real upstox-python-sdk) against an embedded `UpstoxSandbox` it owns:
    ticks given to `on_tick` become the sandbox's traded prices; `close()` stops it. Chosen with
    `AUTOTRADER_BROKER=upstox-sandbox` (see `engine.brokers.factory.make_broker`)."""

    def __init__(
        self,
        sandbox: UpstoxSandbox,
        clock: Clock,
        *,
        instruments: Iterable[Instrument] = (),
        product: Product = Product.CNC,
        limit_offset_pct: float = 0.5,
        market_protection: float = DEFAULT_MARKET_PROTECTION_PCT,
    ) -> None:
        self.sandbox = sandbox
        config = sandbox.config(product=product, limit_offset_pct=limit_offset_pct,
                                market_protection=market_protection)
        super().__init__(config, clock, instruments=instruments)

    @classmethod
    def start(
        cls,
        clock: Clock,
        *,
        instruments: Iterable[Instrument] = (),
        product: Product = Product.CNC,
        limit_offset_pct: float = 0.5,
        fill_model: FillModel | None = None,
        state_path: Path | None = None,
        market_protection: float = DEFAULT_MARKET_PROTECTION_PCT,
    ) -> SandboxUpstoxBroker:
        """Start an embedded sandbox (filling by `fill_model`, see `FillModel.from_settings`; its
        book kept in `state_path`, if given) and connect to it. The adapter sends the sandbox's
        algo name and paces its order APIs at Upstox's default 10/s, which the sandbox enforces."""
        instruments = list(instruments)
        sandbox = UpstoxSandbox(clock=clock, symbols={i.instrument_key: i.symbol for i in instruments},
                                fill_model=fill_model, instruments=instruments, state_path=state_path).start()
        return cls(sandbox, clock, instruments=instruments, product=product, limit_offset_pct=limit_offset_pct,
                   market_protection=market_protection)

    async def on_tick(self, tick: Tick) -> None:
        self._feed_tick(tick)

    def tick_feed(self) -> Callable[[Tick], None]:
        return self._feed_tick

    def _feed_tick(self, tick: Tick) -> None:
        self.sandbox.set_last_price(tick.instrument_key, tick.ltp, at_ms=tick.ltt_ms)

    async def close(self) -> None:
        await super().close()
        self.sandbox.stop()


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> None:
    """Run the sandbox on its own: point UPSTOX_API_URL and UPSTOX_ORDER_URL at it, and feed prices
    with POST /sandbox/last-price {"instrument_key": ..., "price": ...}. It accepts the token in
    UPSTOX_ACCESS_TOKEN (never from argv, never printed)."""
    parser = argparse.ArgumentParser(description="Upstox-compatible loopback REST server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--algo-name", default=SANDBOX_ALGO_NAME, help="the X-Algo-Name order requests must carry")
    args = parser.parse_args(argv)
    token = environ.get("UPSTOX_ACCESS_TOKEN", "")
    if not token:
        parser.exit(2, "error: set UPSTOX_ACCESS_TOKEN to the token the sandbox should accept\n")
    sandbox = UpstoxSandbox(access_token=token, port=args.port, algo_name=args.algo_name).start()
    print(f"UPSTOX_API_URL={sandbox.url}\nUPSTOX_ORDER_URL={sandbox.url}\n"
          f"AUTOTRADER_UPSTOX__ALGO_NAME={args.algo_name}\n"
          "(it accepts the token in UPSTOX_ACCESS_TOKEN)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
