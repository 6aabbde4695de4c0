"""A Kite Connect v3-compatible loopback server: the adapter's test double, and a product
feature (`AUTOTRADER_BROKER=zerodha-sandbox` runs the real Zerodha adapter with no account).

It speaks Kite's wire contract for what the adapter uses: form-encoded bodies, the
`{"status": "success", "data": …}` envelope, errors `{"status": "error", "message", "error_type"}`
with Kite's HTTP codes, the `X-Kite-Version: 3` header and `Authorization: token api_key:access_token`
(TokenException, 403, otherwise). Routes: POST/GET /orders…, DELETE /orders/{variety}/{id},
GET /orders/{id}, /orders/{id}/trades, /trades, /portfolio/positions, /portfolio/holdings,
/user/profile,
/gtt/triggers (POST, GET, PUT, DELETE), and from `sandbox_account.py` GET /user/margins[/segment] and
POST /session/token (the login's token exchange, the one route without a token). Its answers have
the field names and JSON types of Zerodha's published responses (kiteconnect-mocks; checked by
tests/engine/brokers/zerodha/test_sandbox_shapes.py).

Its book is the simulated exchange (`engine.sim`, the one the paper broker and the Upstox sandbox
use; this module is Kite's wire codec over it), fed with `set_last_price` or `on_tick`: orders fill
by its fill model (by default at the last price, on arrival), SL / SL-M remember a crossed
trigger, two-leg GTTs fire when the price crosses a trigger and place their LIMIT leg, a CNC sell
beyond the holding is REJECTED. Kite's 2026 rules hold (`KITE_RULES`): a MARKET / SL-M order without
a non-zero `market_protection` is refused (HTTP 400 InputException), an order request beyond 10 a
second too (HTTP 429 NetworkException), neither booked. Books are per day, as at Kite: on a new day
(by its clock) working orders expire and positions move to holdings. With `state_path` the book is
kept in a JSON file, so a replayed week survives one process per day. Faults (`inject`): HTTP 429, HTTP 500,
a timeout after the order was accepted (recorded, then no answer until the client gave up), a
dropped response (recorded, then the connection closed unanswered), and token rejection.
Each answer carries `X-Sandbox-Handling-Ms`, the server's own handling time (also in `handled`).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from engine.brokers.loopback import JsonHandler, LoopbackListener
from engine.brokers.sim_account import SimAccount
from engine.brokers.zerodha import sandbox_account, sandbox_history
from engine.brokers.zerodha.config import KITE_CAPABILITIES, ZerodhaConfig
from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.brokers.zerodha.sandbox_errors import KiteError
from engine.clock import Clock, LiveClock
from engine.data.daybars import CandleBook
from engine.models import Instrument, OrderStatus, OrderType, Product, Side, Tick
from engine.settings import DEFAULT_MARKET_PROTECTION_PCT
from engine.sim import (
    FillModel,
    GttLeg,
    RejectCode,
    SimFill,
    SimGtt,
    SimOrder,
    SimulatedExchange,
    TriggerDirection,
    VenueRules,
)


class Fault(enum.StrEnum):
    RATE_LIMIT = "429"  # 429 NetworkException "Too many requests", nothing recorded
    SERVER_ERROR = "500"  # 500 GeneralException, nothing recorded
    TIMEOUT_AFTER_ACCEPT = "timeout"  # recorded, then the answer comes after the client timed out
    DROP_AFTER_ACCEPT = "drop"  # recorded, then the connection is closed without an answer
    TOKEN = "token"  # 403 TokenException


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


_KITE_STATUS = {OrderStatus.FILLED: "COMPLETE", OrderStatus.CANCELLED: "CANCELLED", OrderStatus.REJECTED: "REJECTED"}
_KITE_REJECTIONS = {RejectCode.INSUFFICIENT_HOLDINGS: "Insufficient holdings for a CNC sell.",
                    RejectCode.MARKET_PROTECTION: "Market orders without market protection are not allowed via API",
                    RejectCode.RATE_LIMIT: "Too many requests"}
# The rules Kite refuses before booking the order (no order id): HTTP status and error_type of each.
_REFUSED_UNBOOKED = {RejectCode.MARKET_PROTECTION: (400, "InputException"),
                     RejectCode.RATE_LIMIT: (429, "NetworkException")}
# Kite since 1 April 2026 (SEBI's retail-algo rules): MARKET / SL-M only with a non-zero
# `market_protection`, at most 10 order requests a second.
KITE_RULES = VenueRules(daily_books=True, require_market_protection=True,
                        market_protection_message=_KITE_REJECTIONS[RejectCode.MARKET_PROTECTION],
                        orders_per_second=KITE_CAPABILITIES.orders_per_second,
                        rate_limit_message=_KITE_REJECTIONS[RejectCode.RATE_LIMIT])
# What the sandbox applies for Kite's `market_protection = -1` ("automatic", by Kite's bands).
AUTO_MARKET_PROTECTION_PCT = 2.0


class KiteSandbox:
    """Start with `start()` (or as a context manager); `url` is the KITE_ROOT_URL to use. Its book
    is a `SimulatedExchange` keyed by tradingsymbol; this class is Kite's wire codec over it."""

    def __init__(
        self,
        *,
        api_key: str = "sandbox_api_key",
        access_token: str = "sandbox_access_token",
        clock: Clock | None = None,
        timeout_fault_seconds: float = 1.0,
        symbols: dict[str, str] | None = None,
        state_path: Path | None = None,
        fill_model: FillModel | None = None,
        rules: VenueRules = KITE_RULES,
        instruments: Iterable[Instrument] = (),
    ) -> None:
        self.api_key = api_key
        self.access_token = access_token
        self.clock = clock or LiveClock()
        self.timeout_fault_seconds = timeout_fault_seconds
        self.symbols = dict(symbols or {})  # instrument_key -> tradingsymbol, for on_tick
        self.handled: list[HandledRequest] = []
        self.account = SimAccount()  # cash, login codes
        self.history = CandleBook()  # daily candles (sandbox_history.py), empty until a test fills it
        self.state_path = state_path
        self.exchange = SimulatedExchange(
            self.clock, fill_model=fill_model, rules=rules, delivery_products=("CNC",),
            instruments=[dataclasses.replace(i, instrument_key=i.symbol) for i in instruments],
            gtt_id=lambda sequence, _: str(sequence))
        self._varieties: dict[str, str] = {}  # order id -> variety
        self._gtt_specs: dict[str, dict[str, Any]] = {}  # GTT id -> Kite's condition and orders, as sent
        if state_path is not None and state_path.exists():
            saved = json.loads(state_path.read_text())
            self.exchange.restore(saved["exchange"])
            self._varieties, self._gtt_specs = saved["varieties"], saved["gtt_specs"]
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

    def config(self, *, timeout: float = 7.0, product: Product = Product.CNC,
               market_protection: float = DEFAULT_MARKET_PROTECTION_PCT) -> ZerodhaConfig:
        """The adapter's configuration for this sandbox (its key, token and URL)."""
        return ZerodhaConfig(api_key=self.api_key, access_token=self.access_token, root_url=self.url, timeout=timeout,
                             product=product, market_protection=market_protection)

    # control ----------------------------------------------------------------------------------
    def inject(self, fault: Fault, *, route: str = "order.place", times: int = 1) -> None:
        """Make the next `times` requests to `route` ("order.place", "gtt.place", "orders", "*")
        fail with `fault`."""
        with self._lock:
            self._faults.append(_Injected(Fault(fault), route, times))

    def expire_token(self) -> None:
        self.access_token = f"expired-{self.access_token}"

    def set_last_price(self, symbol: str, price: float, *, at_ms: int | None = None) -> None:
        """A new traded price (traded at `at_ms`, when known): fills working orders and fires GTTs of `symbol`."""
        with self._lock:
            revision = self.exchange.revision
            self.exchange.on_price(symbol, price, at_ms=at_ms)
            self._dirty = self._dirty or self.exchange.revision != revision  # a price alone is not saved
            self._save_if_dirty()

    # persistence ------------------------------------------------------------------------------
    def _save_if_dirty(self) -> None:
        """With `state_path`, the book survives the process (a replayed week runs day by day)."""
        if not self._dirty or self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".tmp")
        state = {"exchange": self.exchange.snapshot(), "varieties": self._varieties, "gtt_specs": self._gtt_specs}
        temporary.write_text(json.dumps(state, default=str))
        temporary.replace(self.state_path)
        self._dirty = False

    def on_tick(self, tick: Tick) -> None:
        symbol = self.symbols.get(tick.instrument_key)
        if symbol is not None:
            self.set_last_price(symbol, tick.ltp)

    def place_manual_order(self, symbol: str, side: str, quantity: int, product: str = "CNC") -> str:
        """An order placed outside autotrader (Kite web, whose market orders are protected), e.g.
        closing a position by hand."""
        with self._lock:
            order = self._place({"tradingsymbol": symbol, "exchange": "NSE", "transaction_type": side,
                                 "quantity": str(quantity), "product": product, "order_type": "MARKET",
                                 "variety": "regular", "market_protection": "-1"})
            self._dirty = True
            self._save_if_dirty()
            return order.order_id

    def orders(self, tag: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [self._order_row(o) for o in self.exchange.orders.values() if tag is None or o.tag == tag]

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
            return [self._gtt_row(gtt) for gtt in self.exchange.gtts.values()]

    def take_fault(self, route: str) -> Fault | None:
        with self._lock:
            for injected in self._faults:
                if injected.remaining > 0 and injected.route in (route, "*"):
                    injected.remaining -= 1
                    return injected.fault
        return None

    # wire codec: exchange objects as Kite rows --------------------------------------------------
    @staticmethod
    def _stamp(moment: datetime | None) -> str | None:
        return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else None

    def _token(self, symbol: str) -> int:
        """Kite's `instrument_token` of `symbol` (0 when the instrument master did not give one)."""
        known = self.exchange.instruments.get(symbol)
        return (known.kite_token or 0) if known is not None else 0

    def _place(self, form: dict[str, str], tag: str | None = None) -> SimOrder:
        order = self.exchange.place_order(
            form["tradingsymbol"], Side(form["transaction_type"]), int(form["quantity"]),
            OrderType(form["order_type"]), form["product"], price=float(form.get("price") or 0) or None,
            trigger_price=float(form.get("trigger_price") or 0) or None,
            market_protection=_protection(form.get("market_protection")), tag=tag)
        self._varieties[order.order_id] = form.get("variety", "regular")
        return order

    def _order_row(self, order: SimOrder) -> dict[str, Any]:
        filled = self._stamp(order.updated_at) if order.filled_quantity else None
        message = _KITE_REJECTIONS.get(order.reject_code, order.reason) if order.reject_code else None
        return {
            "order_id": order.order_id, "exchange_order_id": f"1{order.order_id}" if order.filled_quantity else None,
            "parent_order_id": None, "variety": self._varieties.get(order.order_id, "regular"),
            "status": _KITE_STATUS.get(order.status, "OPEN"),
            "status_message": message, "status_message_raw": message, "modified": False,
            "tradingsymbol": order.instrument_key, "exchange": "NSE",
            "instrument_token": self._token(order.instrument_key),
            "transaction_type": order.side.value, "order_type": order.order_type.value, "product": order.product,
            "validity": "DAY", "quantity": order.quantity, "disclosed_quantity": 0, "price": order.price or 0.0,
            "trigger_price": order.trigger_price or 0.0, "average_price": order.average_price,
            "filled_quantity": order.filled_quantity, "pending_quantity": order.pending_quantity,
            "cancelled_quantity": order.cancelled_quantity, "market_protection": order.market_protection or 0,
            "meta": {}, "tag": order.tag, **({"tags": [order.tag]} if order.tag else {}),  # Kite omits `tags` untagged
            "order_timestamp": self._stamp(order.placed_at), "exchange_timestamp": filled,
            "exchange_update_timestamp": filled or (self._stamp(order.updated_at)
                                                    if order.status is OrderStatus.CANCELLED else None),
            "placed_by": "SB0001", "guid": None,
        }

    def _trade_row(self, fill: SimFill) -> dict[str, Any]:
        order = self.exchange.orders[fill.order_id]
        stamp = self._stamp(fill.ts)
        earlier = [f for f in self.exchange.fills if f.order_id == fill.order_id]
        part = earlier.index(fill)
        return {  # the first fill of an order is T<order id>, a later partial fill T<order id>-<n>
            "trade_id": f"T{fill.order_id}" + (f"-{part + 1}" if part else ""), "order_id": fill.order_id,
            "exchange_order_id": f"1{fill.order_id}",
            "tradingsymbol": fill.instrument_key, "exchange": "NSE",
            "instrument_token": self._token(fill.instrument_key), "product": fill.product,
            "transaction_type": fill.side.value, "quantity": fill.quantity, "average_price": fill.price,
            "fill_timestamp": stamp, "exchange_timestamp": stamp,
            "order_timestamp": order.placed_at.strftime("%H:%M:%S"),  # the trade book's is a time of day
        }

    def _gtt_row(self, gtt: SimGtt) -> dict[str, Any]:
        spec = self._gtt_specs[gtt.gtt_id]
        orders = [{**leg_spec, "result": None} for leg_spec in spec["orders"]]
        fired = gtt.fired_leg
        if fired is not None:
            leg_spec = orders[gtt.legs.index(fired)]
            order = self.exchange.orders.get(fired.order_id or "")
            rejected = order is not None and order.status is OrderStatus.REJECTED
            leg_spec["result"] = {
                "account_id": "SB0001", "exchange": leg_spec["exchange"], "tradingsymbol": leg_spec["tradingsymbol"],
                "validity": "DAY", "product": leg_spec["product"], "order_type": leg_spec["order_type"],
                "transaction_type": leg_spec["transaction_type"], "quantity": leg_spec["quantity"],
                "price": leg_spec["price"], "meta": "", "timestamp": self._stamp(gtt.updated_at),
                "triggered_at": fired.triggered_at_price,
                "order_result": {"status": "failed" if rejected else "success", "order_id": fired.order_id or "",
                                 "rejection_reason": _KITE_REJECTIONS.get(order.reject_code, order.reason)
                                 if rejected and order is not None and order.reject_code else ""},
            }
        status = "deleted" if gtt.deleted else "triggered" if fired is not None else "active"
        condition = {**spec["condition"], "instrument_token": self._token(spec["condition"]["tradingsymbol"])}
        return {"type": "two-leg", "condition": condition, "orders": orders, "id": int(gtt.gtt_id),
                "user_id": "SB0001", "parent_trigger": None, "status": status,
                "created_at": self._stamp(gtt.created_at), "updated_at": self._stamp(gtt.updated_at), "meta": None,
                "expires_at": self._stamp(gtt.created_at + timedelta(days=365))}

    # API --------------------------------------------------------------------------------------
    def route(self, method: str, path: str, form: dict[str, str]) -> tuple[str, Any]:
        """(route name, response data) of a request, or raise `KiteError`."""
        with self._lock:
            self.exchange.roll_day()
            try:
                return self._route(method, path, form)
            finally:
                if method != "GET":
                    self._dirty = True
                self._save_if_dirty()

    def _route(self, method: str, path: str, form: dict[str, str]) -> tuple[str, Any]:
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["user", "profile"]:
            return "profile", {"user_id": "SB0001", "user_type": "individual", "email": "sandbox@example.com",
                               "user_name": "Kite Sandbox", "user_shortname": "Sandbox", "broker": "ZERODHA",
                               "exchanges": ["NSE"], "products": ["CNC", "MIS"],
                               "order_types": ["MARKET", "LIMIT", "SL", "SL-M"], "avatar_url": None,
                               "meta": {"demat_consent": "physical"}}
        if parts[:1] == ["orders"]:
            return self._orders_api(method, parts, form)
        if method == "GET" and parts == ["trades"]:
            return "trades", [self._trade_row(fill) for fill in self.exchange.fills]
        if method == "GET" and parts == ["portfolio", "positions"]:
            return "positions", self._positions()
        if method == "GET" and parts == ["portfolio", "holdings"]:
            return "holdings", self._holdings()
        if parts[:2] == ["gtt", "triggers"]:
            return self._gtt_api(method, parts[2:], form)
        if method == "GET" and parts[:2] == ["user", "margins"] and len(parts) <= 3:
            return "margins", sandbox_account.margins(self, parts[2] if len(parts) == 3 else None)
        if method == "GET" and parts[:2] == sandbox_history.HISTORY_PARTS:
            return "market.historical", sandbox_history.historical(self, parts[2:], form)
        if method == "POST" and path == sandbox_account.SESSION_TOKEN_PATH:
            return "session.token", sandbox_account.session_token(self, form)
        raise KiteError(404, "GeneralException", f"route not found: {method} {path}")

    def _orders_api(self, method: str, parts: list[str], form: dict[str, str]) -> tuple[str, Any]:
        if method == "GET" and len(parts) == 1:
            return "orders", self.orders()
        if method == "POST" and len(parts) == 2:
            self._validate_order(parts[1], form)
            order = self._place({**form, "variety": parts[1]}, tag=form.get("tag") or None)
            if order.reject_code in _REFUSED_UNBOOKED:
                self.exchange.withdraw(order.order_id)
                self._varieties.pop(order.order_id, None)
                status, error_type = _REFUSED_UNBOOKED[order.reject_code]
                raise KiteError(status, error_type, order.reason)
            return "order.place", {"order_id": order.order_id}
        if method == "GET" and len(parts) in (2, 3):
            order = self._order(parts[1])
            if len(parts) == 3 and parts[2] == "trades":
                return "order.trades", [self._trade_row(f) for f in self.exchange.fills if f.order_id == parts[1]]
            return "order.info", [self._order_row(order)]
        if method == "DELETE" and len(parts) == 3:
            order = self._order(parts[2])
            if not order.is_working:
                raise KiteError(400, "OrderException",
                                f"Order cannot be cancelled as it is {self._order_row(order)['status']}.")
            self.exchange.cancel_order(order.order_id)
            return "order.cancel", {"order_id": order.order_id}
        raise KiteError(405, "InputException", f"method {method} not allowed on /{'/'.join(parts)}")

    def _order(self, order_id: str) -> SimOrder:
        order = self.exchange.orders.get(order_id)
        if order is None:
            raise KiteError(400, "InputException", f"Couldn't find order {order_id}.")
        return order

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
        protection = form.get("market_protection") or "0"
        if not protection.replace(".", "", 1).lstrip("-").isdigit() or not -1 <= float(protection) <= 100:
            raise KiteError(400, "InputException", "Invalid `market_protection`.")
        tag = form.get("tag", "")
        if len(tag) > 20 or (tag and not tag.replace("_", "").replace("-", "").isalnum()):
            raise KiteError(400, "InputException", "Invalid `tag`: up to 20 alphanumeric characters.")

    def _positions(self) -> dict[str, Any]:
        """Today's positions (a sale of a holding shows as a negative quantity, as at Kite)."""
        net = []
        for symbol, product, quantity, average in self.exchange.net_positions(carried=False):
            last = self.exchange.last_price(symbol) or 0.0
            totals = self._traded_totals(symbol, product)
            value = totals["sell_value"] - totals["buy_value"]
            pnl = round(value + quantity * last, 2)  # Kite: (sell value - buy value) + quantity × last price
            net.append({"tradingsymbol": symbol, "exchange": "NSE", "instrument_token": self._token(symbol),
                        "product": product, "quantity": quantity, "overnight_quantity": 0, "multiplier": 1,
                        "average_price": average, "close_price": 0.0, "last_price": last, "value": value,
                        "pnl": pnl, "m2m": pnl, "unrealised": pnl, "realised": 0, **totals})
        return {"net": net, "day": [dict(p) for p in net]}

    def _traded_totals(self, symbol: str, product: str) -> dict[str, Any]:
        """A position's `buy_*` / `sell_*` and `day_buy_*` / `day_sell_*` fields (all today's: nothing carried)."""
        totals: dict[str, Any] = {}
        for side in Side:
            fills = [f for f in self.exchange.fills if (f.instrument_key, f.product, f.side) == (symbol, product, side)]
            quantity = sum(f.quantity for f in fills)
            value = round(sum(f.quantity * f.price for f in fills), 2)
            price = round(value / quantity, 4) if quantity else 0.0
            name = side.value.lower()
            totals |= {f"{name}_quantity": quantity, f"{name}_price": price, f"{name}_value": value,
                       f"{name}_m2m": value, f"day_{name}_quantity": quantity, f"day_{name}_price": price,
                       f"day_{name}_value": value}
        return totals

    def _holdings(self) -> list[dict[str, Any]]:
        """Positions carried from earlier days, as Kite moves delivered CNC buys to holdings."""
        rows = []
        today = self.clock.now().strftime("%Y-%m-%d 00:00:00")
        for (symbol, product), holding in self.exchange.holdings.items():
            last = self.exchange.last_price(symbol) or 0.0
            known = self.exchange.instruments.get(symbol)
            rows.append({"tradingsymbol": symbol, "exchange": "NSE", "instrument_token": self._token(symbol),
                         "isin": known.isin if known is not None else "", "product": product, "price": 0,
                         "quantity": holding.quantity, "used_quantity": 0, "t1_quantity": 0,
                         "realised_quantity": holding.quantity, "authorised_quantity": 0, "authorised_date": today,
                         "authorisation": {}, "opening_quantity": holding.quantity, "short_quantity": 0,
                         "collateral_quantity": 0, "collateral_type": "", "discrepancy": False,
                         "average_price": holding.average_price, "last_price": last, "close_price": last,
                         "pnl": round((last - holding.average_price) * holding.quantity, 2), "day_change": 0.0,
                         "day_change_percentage": 0.0,
                         "mtf": {"quantity": 0, "used_quantity": 0, "average_price": 0, "value": 0,
                                 "initial_margin": 0}})
        return rows

    def _gtt_api(self, method: str, rest: list[str], form: dict[str, str]) -> tuple[str, Any]:
        if method == "GET" and not rest:
            return "gtt", self.gtts()
        if method == "POST" and not rest:
            spec = self._gtt_from_form(form)
            condition, legs = spec["condition"], spec["orders"]
            first = legs[0]
            created = self.exchange.place_gtt(condition["tradingsymbol"], int(first["quantity"]), first["product"],
                                              self._legs(spec))
            self._gtt_specs[created.gtt_id] = spec
            return "gtt.place", {"trigger_id": int(created.gtt_id)}
        if len(rest) != 1:
            raise KiteError(404, "GeneralException", "route not found")
        gtt = self.exchange.gtts.get(rest[0])
        if gtt is None:
            raise KiteError(400, "InputException", f"Trigger {rest[0]} not found.")
        if method == "GET":
            return "gtt.info", self._gtt_row(gtt)
        if not gtt.active:
            raise KiteError(400, "InputException", f"Trigger {rest[0]} is {self._gtt_row(gtt)['status']}, not active.")
        if method == "PUT":
            spec = self._gtt_from_form(form)
            self._gtt_specs[gtt.gtt_id] = spec
            self.exchange.modify_gtt(gtt.gtt_id, quantity=int(spec["orders"][0]["quantity"]), legs={
                leg.name: (leg.trigger_price, leg.limit_price) for leg in self._legs(spec)})
            return "gtt.modify", {"trigger_id": int(gtt.gtt_id)}
        if method == "DELETE":
            self.exchange.cancel_gtt(gtt.gtt_id)
            return "gtt.delete", {"trigger_id": int(gtt.gtt_id)}
        raise KiteError(405, "InputException", f"method {method} not allowed")

    @staticmethod
    def _legs(spec: dict[str, Any]) -> list[GttLeg]:
        """A two-leg GTT's legs: the first order at or below the lower trigger, the second at or above
        the upper one."""
        (lower, upper), (first, second) = spec["condition"]["trigger_values"], spec["orders"]
        return [GttLeg("lower", TriggerDirection.BELOW, float(lower), Side(first["transaction_type"]),
                       float(first["price"])),
                GttLeg("upper", TriggerDirection.ABOVE, float(upper), Side(second["transaction_type"]),
                       float(second["price"]))]

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
        if any(o.get("transaction_type") not in ("BUY", "SELL") for o in orders):
            raise KiteError(400, "InputException", "Invalid `transaction_type` in GTT orders.")
        return {"type": "two-leg", "condition": condition, "orders": orders}


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
            if path != sandbox_account.SESSION_TOKEN_PATH and (  # the token exchange is how a token is obtained
                    self.headers.get("Authorization") != f"token {sandbox.api_key}:{sandbox.access_token}"):
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


def _protection(value: str | None) -> float | None:
    """A request's `market_protection` percent: None when absent or 0 (none), Kite's -1 ("automatic")
    as `AUTO_MARKET_PROTECTION_PCT`."""
    percent = float(value) if value else 0.0
    if percent == 0:
        return None
    return AUTO_MARKET_PROTECTION_PCT if percent < 0 else percent


def sandbox_symbols(instruments: Iterable[Instrument]) -> dict[str, str]:
    """instrument_key -> tradingsymbol, for `KiteSandbox(symbols=...)`."""
    return {i.instrument_key: i.symbol for i in instruments}


class SandboxZerodhaBroker(ZerodhaBroker):
    """The real Zerodha adapter (real `kiteconnect` client) against an embedded `KiteSandbox` it
    owns: ticks given to `on_tick` become the sandbox's traded prices; `close()` stops it."""

    def __init__(self, sandbox: KiteSandbox, clock: Clock, *, instruments: Iterable[Instrument] = (),
                 product: Product = Product.CNC, timeout: float = 7.0,
                 market_protection: float = DEFAULT_MARKET_PROTECTION_PCT) -> None:
        self.sandbox = sandbox
        super().__init__(sandbox.config(timeout=timeout, product=product, market_protection=market_protection), clock,
                         instruments=instruments)

    @classmethod
    def start(cls, clock: Clock, *, instruments: Iterable[Instrument] = (), product: Product = Product.CNC,
              timeout: float = 7.0, state_path: Path | None = None, fill_model: FillModel | None = None,
              market_protection: float = DEFAULT_MARKET_PROTECTION_PCT) -> SandboxZerodhaBroker:
        """Start an embedded sandbox (its book kept in `state_path`, if given; filling by
        `fill_model`, see `FillModel.from_settings`) and connect to it."""
        instruments = list(instruments)
        sandbox = KiteSandbox(clock=clock, symbols=sandbox_symbols(instruments), state_path=state_path,
                              fill_model=fill_model, instruments=instruments).start()
        return cls(sandbox, clock, instruments=instruments, product=product, timeout=timeout,
                   market_protection=market_protection)

    async def on_tick(self, tick: Tick) -> None:
        self._feed_tick(tick)

    def tick_feed(self) -> Callable[[Tick], None]:
        return self._feed_tick

    def _feed_tick(self, tick: Tick) -> None:
        symbol = self.sandbox.symbols.get(tick.instrument_key)
        if symbol is None:
            symbol = self.key_symbol(tick.instrument_key)
        if symbol is not None:
            self.sandbox.set_last_price(symbol, tick.ltp, at_ms=tick.ltt_ms)

    def key_symbol(self, instrument_key: str) -> str | None:
        return next((s for s, k in self._by_symbol.items() if k == instrument_key), None)

    async def close(self) -> None:
        await super().close()
        self.sandbox.stop()
