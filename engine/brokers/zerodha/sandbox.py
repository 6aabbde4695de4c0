"""A Kite Connect v3-compatible loopback server: the adapter's test double, and a product
feature (`KITE_ROOT_URL=sandbox` runs `AUTOTRADER_BROKER=zerodha` with no account).

It speaks Kite's wire contract for what the adapter uses: form-encoded bodies, the
`{"status": "success", "data": …}` envelope, errors `{"status": "error", "message", "error_type"}`
with Kite's HTTP codes, the `X-Kite-Version: 3` header and `Authorization: token api_key:access_token`
(TokenException, 403, otherwise). Routes: POST/GET /orders…, DELETE /orders/{variety}/{id},
GET /orders/{id}, /orders/{id}/trades, /trades, /portfolio/positions, /portfolio/holdings,
/user/profile and
/gtt/triggers (POST, GET, PUT, DELETE).

It is a small exchange too: market orders fill at the last price fed to it (`set_last_price`, or
`on_tick` from the replay feed), limit orders when the price allows, and two-leg GTTs fire when
the price crosses a trigger, placing their SELL LIMIT leg. Books are per day, as at Kite: on a new
day (by its clock) working orders expire and positions move to holdings. With `state_path` the book is
kept in a JSON file, so a replayed week survives one process per day. Faults (`inject`): HTTP 429, HTTP 500,
a timeout after the order was accepted (recorded, then no answer until the client gave up), a
dropped response (recorded, then the connection closed unanswered), and token rejection.
Each answer carries `X-Sandbox-Handling-Ms`, the server's own handling time (also in `handled`).
"""

from __future__ import annotations

import enum
import json
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from engine.brokers.loopback import JsonHandler, LoopbackListener
from engine.brokers.zerodha.config import ZerodhaConfig
from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.clock import Clock, LiveClock
from engine.models import Instrument, Product, Tick


class Fault(enum.StrEnum):
    RATE_LIMIT = "429"  # 429 NetworkException "Too many requests", nothing recorded
    SERVER_ERROR = "500"  # 500 GeneralException, nothing recorded
    TIMEOUT_AFTER_ACCEPT = "timeout"  # recorded, then the answer comes after the client timed out
    DROP_AFTER_ACCEPT = "drop"  # recorded, then the connection is closed without an answer
    TOKEN = "token"  # 403 TokenException


class KiteError(Exception):
    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


@dataclass(slots=True)
class HandledRequest:
    method: str
    path: str
    status: int
    seconds: float


@dataclass(slots=True)
class _Injected:
    fault: Fault
    route: str
    remaining: int


@dataclass(slots=True)
class _State:
    orders: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    gtts: list[dict[str, Any]] = field(default_factory=list)
    prices: dict[str, float] = field(default_factory=dict)
    sequence: int = 0
    day: str = ""  # the trading day of `orders` and `trades` (Kite's books are per day)
    carried: dict[str, list[float]] = field(default_factory=dict)  # "SYMBOL|PRODUCT" -> [quantity, average]


class KiteSandbox:
    """Start with `start()` (or as a context manager); `url` is the KITE_ROOT_URL to use."""

    def __init__(
        self,
        *,
        api_key: str = "sandbox_api_key",
        access_token: str = "sandbox_access_token",
        clock: Clock | None = None,
        timeout_fault_seconds: float = 1.0,
        symbols: dict[str, str] | None = None,
        state_path: Path | None = None,
    ) -> None:
        self.api_key = api_key
        self.access_token = access_token
        self.clock = clock or LiveClock()
        self.timeout_fault_seconds = timeout_fault_seconds
        self.symbols = dict(symbols or {})  # instrument_key -> tradingsymbol, for on_tick
        self.handled: list[HandledRequest] = []
        self.state_path = state_path
        self._state = _State()
        if state_path is not None and state_path.exists():
            self._state = _State(**json.loads(state_path.read_text()))
        self._dirty = False
        self._faults: list[_Injected] = []
        self._lock = threading.RLock()
        self._listener: LoopbackListener | None = None

    # lifecycle --------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> KiteSandbox:
        handler = type("KiteSandboxHandler", (_Handler,), {"sandbox": self})
        self._listener = LoopbackListener(handler, host=host, port=port, name="kite-sandbox")
        return self

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    def __enter__(self) -> KiteSandbox:
        return self.start() if self._listener is None else self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._listener is None:
            raise RuntimeError("the Kite sandbox is not started")
        return self._listener.url

    def config(self, *, timeout: float = 7.0, product: Product = Product.CNC) -> ZerodhaConfig:
        """The adapter's configuration for this sandbox (its key, token and URL)."""
        return ZerodhaConfig(api_key=self.api_key, access_token=self.access_token, root_url=self.url, timeout=timeout,
                             product=product)

    # control ----------------------------------------------------------------------------------
    def inject(self, fault: Fault, *, route: str = "order.place", times: int = 1) -> None:
        """Make the next `times` requests to `route` ("order.place", "gtt.place", "orders", "*")
        fail with `fault`."""
        with self._lock:
            self._faults.append(_Injected(Fault(fault), route, times))

    def expire_token(self) -> None:
        self.access_token = f"expired-{self.access_token}"

    def set_last_price(self, symbol: str, price: float) -> None:
        """A new traded price: fills working orders and fires GTTs of `symbol`."""
        with self._lock:
            self._roll_day()
            self._state.prices[symbol] = price
            for order in self._state.orders:
                if order["tradingsymbol"] == symbol and order["status"] == "OPEN":
                    self._try_fill(order, price)
            for gtt in self._state.gtts:
                if gtt["status"] == "active" and gtt["condition"]["tradingsymbol"] == symbol:
                    self._check_gtt(gtt, price)
            self._save_if_dirty()

    # persistence and days ---------------------------------------------------------------------
    def _save_if_dirty(self) -> None:
        """With `state_path`, the book survives the process (a replayed week runs day by day)."""
        if not self._dirty or self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self._state), default=str))
        temporary.replace(self.state_path)
        self._dirty = False

    def _roll_day(self) -> None:
        """A new day on the clock: working orders expire, today's trades become carried positions
        and the order and trade books start empty, as at Kite."""
        today = self.clock.now().date().isoformat()
        if self._state.day == today:
            return
        if self._state.day:
            for symbol, product, quantity, average in self._net():
                key = f"{symbol}|{product}"
                if quantity:
                    self._state.carried[key] = [quantity, average]
                else:
                    self._state.carried.pop(key, None)
            self._state.orders.clear()
            self._state.trades.clear()
        self._state.day = today
        self._dirty = True

    def _net(self, *, carried: bool = True) -> list[tuple[str, str, int, float]]:
        """(symbol, product, net quantity, average buy price) over today's trades, plus the carried
        holdings unless `carried` is False."""
        books: dict[tuple[str, str], list[float]] = {}
        for key, (quantity, average) in self._state.carried.items() if carried else ():
            symbol, product = key.split("|")
            books[(symbol, product)] = [quantity, quantity * average, 0.0]
        for trade in self._state.trades:
            book = books.setdefault((trade["tradingsymbol"], trade["product"]), [0, 0.0, 0.0])
            if trade["transaction_type"] == "BUY":
                book[0] += trade["quantity"]
                book[1] += trade["quantity"] * trade["average_price"]
            else:
                book[2] += trade["quantity"]
        result = []
        for (symbol, product), (bought, value, sold) in books.items():
            result.append((symbol, product, int(bought - sold), round(value / bought, 4) if bought else 0.0))
        return result

    def on_tick(self, tick: Tick) -> None:
        symbol = self.symbols.get(tick.instrument_key)
        if symbol is not None:
            self.set_last_price(symbol, tick.ltp)

    def place_manual_order(self, symbol: str, side: str, quantity: int, product: str = "CNC") -> str:
        """An order placed outside autotrader (Kite web), e.g. closing a position by hand."""
        with self._lock:
            self._roll_day()
            order_id: str = self._new_order({"tradingsymbol": symbol, "exchange": "NSE", "transaction_type": side,
                                             "quantity": str(quantity), "product": product, "order_type": "MARKET",
                                             "variety": "regular"})["order_id"]
            self._save_if_dirty()
            return order_id

    def orders(self, tag: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(o) for o in self._state.orders if tag is None or o.get("tag") == tag]

    def positions(self) -> list[dict[str, Any]]:
        """Today's net positions, as `GET /portfolio/positions` lists them."""
        with self._lock:
            return list(self._positions()["net"])

    def holdings(self) -> list[dict[str, Any]]:
        """Carried positions, as `GET /portfolio/holdings` lists them."""
        with self._lock:
            return self._holdings()

    def gtts(self) -> list[dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(self._state.gtts))

    def take_fault(self, route: str) -> Fault | None:
        with self._lock:
            for injected in self._faults:
                if injected.remaining > 0 and injected.route in (route, "*"):
                    injected.remaining -= 1
                    return injected.fault
        return None

    # exchange ---------------------------------------------------------------------------------
    def _stamp(self) -> str:
        return self.clock.now().strftime("%Y-%m-%d %H:%M:%S")

    def _next_id(self) -> str:
        self._state.sequence += 1
        return f"{self.clock.now():%y%m%d}{self._state.sequence:09d}"

    def _held(self, symbol: str, product: str) -> int:
        return next((quantity for s, p, quantity, _ in self._net() if (s, p) == (symbol, product)), 0)

    def _new_order(self, form: dict[str, str], tag: str | None = None) -> dict[str, Any]:
        stamp = self._stamp()
        order: dict[str, Any] = {
            "order_id": self._next_id(), "exchange_order_id": None, "parent_order_id": None,
            "variety": form.get("variety", "regular"), "status": "OPEN", "status_message": None,
            "tradingsymbol": form["tradingsymbol"], "exchange": form.get("exchange", "NSE"),
            "instrument_token": 0, "transaction_type": form["transaction_type"],
            "order_type": form["order_type"], "product": form["product"], "validity": form.get("validity", "DAY"),
            "quantity": int(form["quantity"]), "disclosed_quantity": 0,
            "price": float(form.get("price") or 0), "trigger_price": float(form.get("trigger_price") or 0),
            "average_price": 0.0, "filled_quantity": 0, "pending_quantity": int(form["quantity"]),
            "cancelled_quantity": 0, "tag": tag, "tags": [tag] if tag else None,
            "order_timestamp": stamp, "exchange_timestamp": None, "exchange_update_timestamp": None,
            "placed_by": "SB0001", "guid": None,
        }
        self._state.orders.append(order)
        self._dirty = True
        if order["transaction_type"] == "SELL" and order["product"] == "CNC":
            selling = sum(o["pending_quantity"] for o in self._state.orders
                          if o is not order and o["status"] == "OPEN" and o["tradingsymbol"] == order["tradingsymbol"]
                          and o["transaction_type"] == "SELL" and o["product"] == "CNC")
            if order["quantity"] + selling > self._held(order["tradingsymbol"], "CNC"):
                order.update(status="REJECTED", status_message="Insufficient holdings for a CNC sell.",
                             pending_quantity=0)
                return order
        price = self._state.prices.get(order["tradingsymbol"])
        if price is not None:
            self._try_fill(order, price)
        return order

    def _try_fill(self, order: dict[str, Any], price: float) -> None:
        buy = order["transaction_type"] == "BUY"
        beyond_limit = (buy and price > order["price"]) or (not buy and price < order["price"])
        if order["order_type"] == "LIMIT" and beyond_limit:
            return
        if order["order_type"] in ("SL", "SL-M"):
            if (buy and price < order["trigger_price"]) or (not buy and price > order["trigger_price"]):
                return
            if order["order_type"] == "SL" and beyond_limit:
                return
        quantity = order["pending_quantity"]
        stamp = self._stamp()
        self._dirty = True
        order.update(status="COMPLETE", filled_quantity=order["quantity"], pending_quantity=0, average_price=price,
                     exchange_timestamp=stamp, exchange_update_timestamp=stamp,
                     exchange_order_id=f"1{order['order_id']}")
        self._state.trades.append({
            "trade_id": f"T{order['order_id']}", "order_id": order["order_id"],
            "exchange_order_id": order["exchange_order_id"], "tradingsymbol": order["tradingsymbol"],
            "exchange": order["exchange"], "instrument_token": 0, "product": order["product"],
            "transaction_type": order["transaction_type"], "quantity": quantity, "average_price": price,
            "fill_timestamp": stamp, "order_timestamp": order["order_timestamp"], "exchange_timestamp": stamp,
        })

    def _check_gtt(self, gtt: dict[str, Any], price: float) -> None:
        low, high = gtt["condition"]["trigger_values"]
        leg = 0 if price <= low else 1 if price >= high else None
        if leg is None:
            return
        spec = gtt["orders"][leg]
        order = self._new_order({"tradingsymbol": spec["tradingsymbol"], "exchange": spec["exchange"],
                                 "transaction_type": spec["transaction_type"], "quantity": str(spec["quantity"]),
                                 "product": spec["product"], "order_type": spec["order_type"],
                                 "price": str(spec["price"])})
        stamp = self._stamp()
        spec["result"] = {
            "account_id": "SB0001", "exchange": spec["exchange"], "tradingsymbol": spec["tradingsymbol"],
            "validity": "DAY", "product": spec["product"], "order_type": spec["order_type"],
            "transaction_type": spec["transaction_type"], "quantity": spec["quantity"], "price": spec["price"],
            "meta": "", "timestamp": stamp, "triggered_at": price,
            "order_result": {"status": "failed" if order["status"] == "REJECTED" else "success",
                             "order_id": order["order_id"], "rejection_reason": order["status_message"] or ""},
        }
        gtt.update(status="triggered", updated_at=stamp)
        self._dirty = True

    # API --------------------------------------------------------------------------------------
    def route(self, method: str, path: str, form: dict[str, str]) -> tuple[str, Any]:
        """(route name, response data) of a request, or raise `KiteError`."""
        with self._lock:
            self._roll_day()
            try:
                return self._route(method, path, form)
            finally:
                if method != "GET":
                    self._dirty = True
                self._save_if_dirty()

    def _route(self, method: str, path: str, form: dict[str, str]) -> tuple[str, Any]:
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["user", "profile"]:
            return "profile", {"user_id": "SB0001", "user_name": "Kite Sandbox", "broker": "ZERODHA",
                               "exchanges": ["NSE"], "products": ["CNC", "MIS"]}
        if parts[:1] == ["orders"]:
            return self._orders_api(method, parts, form)
        if method == "GET" and parts == ["trades"]:
            return "trades", [dict(t) for t in self._state.trades]
        if method == "GET" and parts == ["portfolio", "positions"]:
            return "positions", self._positions()
        if method == "GET" and parts == ["portfolio", "holdings"]:
            return "holdings", self._holdings()
        if parts[:2] == ["gtt", "triggers"]:
            return self._gtt_api(method, parts[2:], form)
        raise KiteError(404, "GeneralException", f"route not found: {method} {path}")

    def _orders_api(self, method: str, parts: list[str], form: dict[str, str]) -> tuple[str, Any]:
        if method == "GET" and len(parts) == 1:
            return "orders", [dict(o) for o in self._state.orders]
        if method == "POST" and len(parts) == 2:
            self._validate_order(parts[1], form)
            order = self._new_order({**form, "variety": parts[1]}, tag=form.get("tag") or None)
            return "order.place", {"order_id": order["order_id"]}
        if method == "GET" and len(parts) in (2, 3):
            order = self._order(parts[1])
            if len(parts) == 3 and parts[2] == "trades":
                return "order.trades", [dict(t) for t in self._state.trades if t["order_id"] == parts[1]]
            return "order.info", [dict(order)]
        if method == "DELETE" and len(parts) == 3:
            order = self._order(parts[2])
            if order["status"] != "OPEN":
                raise KiteError(400, "OrderException", f"Order cannot be cancelled as it is {order['status']}.")
            order.update(status="CANCELLED", cancelled_quantity=order["pending_quantity"], pending_quantity=0,
                         exchange_update_timestamp=self._stamp())
            return "order.cancel", {"order_id": order["order_id"]}
        raise KiteError(405, "InputException", f"method {method} not allowed on /{'/'.join(parts)}")

    def _order(self, order_id: str) -> dict[str, Any]:
        for order in self._state.orders:
            if order["order_id"] == order_id:
                return order
        raise KiteError(400, "InputException", f"Couldn't find order {order_id}.")

    @staticmethod
    def _validate_order(variety: str, form: dict[str, str]) -> None:
        if variety not in ("regular", "amo"):
            raise KiteError(400, "InputException", f"Invalid variety `{variety}`.")
        for name in ("exchange", "tradingsymbol", "transaction_type", "quantity", "product", "order_type"):
            if not form.get(name):
                raise KiteError(400, "InputException", f"Missing `{name}`.")
        if form["transaction_type"] not in ("BUY", "SELL"):
            raise KiteError(400, "InputException", "Invalid `transaction_type`.")
        if form["order_type"] not in ("MARKET", "LIMIT", "SL", "SL-M"):
            raise KiteError(400, "InputException", "Invalid `order_type`.")
        if not form["quantity"].isdigit() or int(form["quantity"]) <= 0:
            raise KiteError(400, "InputException", "Invalid `quantity`.")
        if form["order_type"] in ("LIMIT", "SL") and float(form.get("price") or 0) <= 0:
            raise KiteError(400, "InputException", "Invalid `price`.")
        if form["order_type"] in ("SL", "SL-M") and float(form.get("trigger_price") or 0) <= 0:
            raise KiteError(400, "InputException", "Invalid `trigger_price`.")
        tag = form.get("tag", "")
        if len(tag) > 20 or (tag and not tag.replace("_", "").replace("-", "").isalnum()):
            raise KiteError(400, "InputException", "Invalid `tag`: up to 20 alphanumeric characters.")

    def _positions(self) -> dict[str, Any]:
        """Today's positions (a sale of a holding shows as a negative quantity, as at Kite)."""
        net = []
        for symbol, product, quantity, average in self._net(carried=False):
            net.append({"tradingsymbol": symbol, "exchange": "NSE", "instrument_token": 0, "product": product,
                        "quantity": quantity, "overnight_quantity": 0, "multiplier": 1,
                        "average_price": average, "last_price": self._state.prices.get(symbol, 0.0)})
        return {"net": net, "day": [dict(p) for p in net]}

    def _holdings(self) -> list[dict[str, Any]]:
        """Positions carried from earlier days, as Kite moves delivered CNC buys to holdings."""
        rows = []
        for key, (quantity, average) in self._state.carried.items():
            symbol, product = key.split("|")
            rows.append({"tradingsymbol": symbol, "exchange": "NSE", "instrument_token": 0, "isin": "",
                         "product": product, "quantity": int(quantity), "t1_quantity": 0, "used_quantity": 0,
                         "average_price": average, "last_price": self._state.prices.get(symbol, 0.0)})
        return rows

    def _gtt_api(self, method: str, rest: list[str], form: dict[str, str]) -> tuple[str, Any]:
        if method == "GET" and not rest:
            return "gtt", json.loads(json.dumps(self._state.gtts))
        if method == "POST" and not rest:
            created = self._gtt_from_form(form)
            self._state.sequence += 1
            stamp = self._stamp()
            created.update(id=self._state.sequence, user_id="SB0001", parent_trigger=None, status="active",
                       created_at=stamp, updated_at=stamp, meta=None,
                       expires_at=(self.clock.now() + timedelta(days=365)).strftime("%Y-%m-%d %H:%M:%S"))
            self._state.gtts.append(created)
            price = self._state.prices.get(created["condition"]["tradingsymbol"])
            if price is not None:
                self._check_gtt(created, price)
            return "gtt.place", {"trigger_id": created["id"]}
        if len(rest) != 1:
            raise KiteError(404, "GeneralException", "route not found")
        gtt = next((g for g in self._state.gtts if str(g["id"]) == rest[0]), None)
        if gtt is None:
            raise KiteError(400, "InputException", f"Trigger {rest[0]} not found.")
        if method == "GET":
            return "gtt.info", json.loads(json.dumps(gtt))
        if gtt["status"] != "active":
            raise KiteError(400, "InputException", f"Trigger {rest[0]} is {gtt['status']}, not active.")
        if method == "PUT":
            gtt.update(self._gtt_from_form(form), updated_at=self._stamp())
            return "gtt.modify", {"trigger_id": gtt["id"]}
        if method == "DELETE":
            gtt.update(status="deleted", updated_at=self._stamp())
            return "gtt.delete", {"trigger_id": gtt["id"]}
        raise KiteError(405, "InputException", f"method {method} not allowed")

    @staticmethod
    def _gtt_from_form(form: dict[str, str]) -> dict[str, Any]:
        try:
            condition = json.loads(form["condition"])
            orders = json.loads(form["orders"])
        except (KeyError, ValueError) as error:
            raise KiteError(400, "InputException", f"Invalid `condition` or `orders`: {error}") from None
        if form.get("type") != "two-leg":
            raise KiteError(400, "InputException", "Only `two-leg` triggers are supported by the sandbox.")
        values = condition.get("trigger_values") or []
        if len(values) != 2 or len(orders) != 2 or not values[0] < float(condition.get("last_price", 0)) < values[1]:
            raise KiteError(400, "InputException", "Invalid trigger values: need [lower, upper] around last_price "
                                                    "and two orders.")
        if any(o.get("order_type") != "LIMIT" for o in orders):
            raise KiteError(400, "InputException", "GTT orders must be LIMIT orders.")
        return {"type": "two-leg", "condition": condition,
                "orders": [{**o, "result": None} for o in orders]}


class _Handler(JsonHandler):
    sandbox: KiteSandbox

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        query = urlparse(self.path).query
        pairs = parse_qs(body, keep_blank_values=True) | parse_qs(query, keep_blank_values=True)
        return {k: v[-1] for k, v in pairs.items()}

    def _send(self, status: int, payload: dict[str, Any], started: float) -> None:
        body = json.dumps(payload, default=str).encode()
        handling = time.perf_counter() - started
        # logged before the answer leaves, so a client that has its answer always finds the entry
        self.sandbox.handled.append(HandledRequest(self.command, urlparse(self.path).path, status, handling))
        self.send_json(status, body, {"X-Sandbox-Handling-Ms": f"{handling * 1000:.3f}"})

    def _handle(self) -> None:
        started = time.perf_counter()
        sandbox = self.sandbox
        path = urlparse(self.path).path
        form = self._form()
        try:
            if self.headers.get("X-Kite-Version") != "3":
                raise KiteError(400, "InputException", "Missing or invalid `X-Kite-Version` header (expected 3).")
            if self.headers.get("Authorization") != f"token {sandbox.api_key}:{sandbox.access_token}":
                raise KiteError(403, "TokenException", "Incorrect `api_key` or `access_token`.")
            route = _route_name(self.command, path)
            fault = sandbox.take_fault(route)
            if fault is Fault.RATE_LIMIT:
                raise KiteError(429, "NetworkException", "Too many requests")
            if fault is Fault.SERVER_ERROR:
                raise KiteError(500, "GeneralException", "Something unexpected went wrong (injected)")
            if fault is Fault.TOKEN:
                raise KiteError(403, "TokenException", "Token is invalid or has expired.")
            _, data = sandbox.route(self.command, path, form)
            if fault is Fault.DROP_AFTER_ACCEPT:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault is Fault.TIMEOUT_AFTER_ACCEPT:
                time.sleep(sandbox.timeout_fault_seconds)
            self._send(200, {"status": "success", "data": data}, started)
        except KiteError as error:
            self._send(error.status, {"status": "error", "message": error.message, "data": None,
                                      "error_type": error.error_type}, started)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _handle


def _route_name(method: str, path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["orders"]:
        return {("POST", 2): "order.place", ("DELETE", 3): "order.cancel", ("GET", 1): "orders"}.get(
            (method, len(parts)), "order.info")
    if parts[:2] == ["gtt", "triggers"]:
        return {"POST": "gtt.place", "PUT": "gtt.modify", "DELETE": "gtt.delete"}.get(method, "gtt")
    return "/".join(parts)


def sandbox_symbols(instruments: Iterable[Instrument]) -> dict[str, str]:
    """instrument_key -> tradingsymbol, for `KiteSandbox(symbols=...)`."""
    return {i.instrument_key: i.symbol for i in instruments}


class SandboxZerodhaBroker(ZerodhaBroker):
    """The real Zerodha adapter (real `kiteconnect` client) against an embedded `KiteSandbox` it
    owns: ticks given to `on_tick` become the sandbox's traded prices; `close()` stops it."""

    def __init__(self, sandbox: KiteSandbox, clock: Clock, *, instruments: Iterable[Instrument] = (),
                 product: Product = Product.CNC, timeout: float = 7.0) -> None:
        self.sandbox = sandbox
        super().__init__(sandbox.config(timeout=timeout, product=product), clock, instruments=instruments)

    @classmethod
    def start(cls, clock: Clock, *, instruments: Iterable[Instrument] = (), product: Product = Product.CNC,
              timeout: float = 7.0, state_path: Path | None = None) -> SandboxZerodhaBroker:
        """Start an embedded sandbox (its book kept in `state_path`, if given) and connect to it."""
        instruments = list(instruments)
        sandbox = KiteSandbox(clock=clock, symbols=sandbox_symbols(instruments), state_path=state_path).start()
        return cls(sandbox, clock, instruments=instruments, product=product, timeout=timeout)

    async def on_tick(self, tick: Tick) -> None:
        symbol = self.sandbox.symbols.get(tick.instrument_key)
        if symbol is None:
            symbol = self.key_symbol(tick.instrument_key)
        if symbol is not None:
            self.sandbox.set_last_price(symbol, tick.ltp)

    def key_symbol(self, instrument_key: str) -> str | None:
        return next((s for s, k in self._by_symbol.items() if k == instrument_key), None)

    async def close(self) -> None:
        await super().close()
        self.sandbox.stop()
